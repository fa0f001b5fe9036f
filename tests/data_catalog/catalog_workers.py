"""Processes for the concurrency test: ``writer ROOT NAME N`` writes N synthetic calls (and
rewrites a shared one) through ``Catalog.write``; ``reader ROOT STOPFILE`` queries at 20 Hz
until STOPFILE exists and prints one JSON line of what it saw; ``compactor ROOT STOPFILE``
compacts the catalog in a loop (every other pass a full compaction) until STOPFILE exists."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from catalog_rows import call_row, segment_rows, speaker_rows, voice_rows, word_rows

from data_catalog import Catalog

CHECK = ("select (select count(*) from calls) c, (select count(*) from segments) s, "
         "(select count(distinct call_id) from segments) d, "
         "(select count(*) from (select distinct call_id, segment_id from segments)) u")


def writer(root: str, name: str, n: int) -> None:
    cat = Catalog(root)
    for i in range(n):
        for cid in (f"{name}{i:03d}", "shared"):
            cat.write("speakers", cid, speaker_rows(cid))
            cat.write("segments", cid, segment_rows(cid, 5))
            cat.write("words", cid, word_rows(cid, 5))
            cat.write("voices", cid, voice_rows(cid))
            cat.write("calls", cid, call_row(cid, entity=name))
            cat.refresh_views()  # what a run does after writing: must not lock or break readers


def reader(root: str, stop: str) -> None:
    cat, seen, errors, bad, sizes = Catalog(root), 0, [], [], set()
    while not Path(stop).exists() or seen < 5:
        t0 = time.monotonic()
        try:
            row = cat.query(CHECK, timeout_s=30).to_pylist()[0]
            seen += 1
            sizes.add(row["c"])
            if not (row["s"] == 5 * row["c"] and row["d"] == row["c"] and row["u"] == row["s"]):
                bad.append(row)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))
    print(json.dumps({"queries": seen, "errors": errors[:5], "n_errors": len(errors), "inconsistent": bad[:5],
                      "sizes": len(sizes)}))


def compactor(root: str, stop: str) -> None:
    cat, passes = Catalog(root), 0
    while not Path(stop).exists():
        cat.compact(full=passes % 2 == 1)
        passes += 1
        time.sleep(0.05)
    print(json.dumps({"passes": passes}))


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    if role == "writer":
        writer(args[0], args[1], int(args[2]))
    elif role == "compactor":
        compactor(args[0], args[1])
    else:
        reader(args[0], args[1])
