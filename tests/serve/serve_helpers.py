"""An archive to watch, with the pyannote sample call, and a small study priced from a file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

FIELDS = ["file", "event_type", "entity", "event_time", "title", "speakers_hint"]
SAMPLE_ROW = {"file": "sample.wav", "event_type": "earnings_call", "entity": "ACME", "event_time": "2018-06-01T12:00:00Z",
              "title": "ACME sample call"}
STUDY = """name = "acme_calls"
title = "ACME calls: day-0 and day-1 abnormal returns"
sample = {event_type = "earnings_call", entities = ["ACME"]}
prices = {source = "file", path = "prices.parquet", calendar = "XNYS"}
model = {expected = "constant", estimation = [-250, -30], min_estimation_obs = 100, windows = [[0, 0], [0, 1]]}
"""

def pyannote_sample() -> Path:
    import pyannote.audio

    return Path(pyannote.audio.__file__).parent / "sample" / "sample.wav"


def write_manifest(archive: Path, rows: list[dict]) -> None:
    archive.mkdir(parents=True, exist_ok=True)
    with (archive / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in FIELDS})


def add_sample_call(archive: Path) -> None:
    archive.mkdir(parents=True, exist_ok=True)
    shutil.copy(pyannote_sample(), archive / "sample.wav")
    write_manifest(archive, [SAMPLE_ROW])


def acme_study(folder: Path, seed: int = 0) -> Path:
    """A spec over ACME's calls with daily prices of ACME and MKT (2017-2018) in a Parquet file."""
    from finance.calendars import get_calendar

    folder.mkdir(parents=True, exist_ok=True)
    days = pd.DatetimeIndex(get_calendar("XNYS").between("2017-01-03", "2018-07-31"))
    rng = np.random.default_rng(seed)
    mkt = rng.normal(3e-4, 0.008, len(days))
    acme = 1.1 * mkt + rng.normal(0, 0.012, len(days))
    frames = [pd.DataFrame({"ticker": t, "date": days, "adj_close": 30 * np.cumprod(1 + r),
                            "close": 30 * np.cumprod(1 + r), "volume": rng.lognormal(12, 0.3, len(days))})
              for t, r in (("MKT", mkt), ("ACME", acme))]
    pd.concat(frames, ignore_index=True).to_parquet(folder / "prices.parquet")
    (folder / "acme_calls.toml").write_text(STUDY)
    return folder / "acme_calls.toml"
