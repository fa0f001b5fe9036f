"""Two `speechfin run`s started together into one catalog (on two archives, and on one), with a
20 Hz query loop beside them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from front_paths import REPO, copy_demo_call
from data_catalog import Catalog

CHECK = ("select c.call_id, (select count(*) from segments s where s.call_id = c.call_id) n, "
         "(select sum(n_segments) from speakers k where k.call_id = c.call_id) expected from calls c")


@pytest.mark.parametrize("dates", [("20151216", "20161214"), ("20151216", "20151216")], ids=["two-archives", "one-call-twice"])
def test_two_runs_and_a_query_loop_into_one_catalog(tmp_path, dates):
    """Both runs process their call; with the same recording in both, the catalog holds it once
    (its voices linked once: both runs give the same ids)."""
    cat = tmp_path / "catalog"
    archives = [copy_demo_call(tmp_path / f"archive_{i}", date=d) for i, d in enumerate(dates)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "pipelines.cli", "run"]
    runs = [subprocess.Popen(cmd + [str(a), "--catalog", str(cat), "--no-study", "--no-report", "--no-progress"],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for a in archives]

    answers, errors, stop = [], [], threading.Event()

    def loop() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                answers.append(Catalog(cat).query(CHECK).to_pylist())
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))

    reader = threading.Thread(target=loop)
    reader.start()
    try:
        outs = [r.communicate(timeout=600)[0] for r in runs]
    finally:
        stop.set()
        reader.join()
    for r, out in zip(runs, outs):
        assert r.returncode == 0, out[-3000:]
        # on one recording the later run may find the call already complete
        assert ("processed 1," in out or (dates[0] == dates[1] and "skipped 1" in out)) and "Traceback" not in out
    final = Catalog(cat).query(CHECK).to_pylist()
    n_calls = len(set(dates))
    assert len(final) == n_calls and all(row["n"] == row["expected"] > 0 for row in final)
    voices = Catalog(cat).query("select count(*) n, count(distinct voice_id) v, sum((voice_id = '')::int) unlinked "
                                "from voices").to_pylist()[0]
    assert voices["unlinked"] == 0 and voices["v"] >= n_calls
    # the catalog did not exist when the loop started: early queries fail with "no catalog here"
    assert all("no catalog" in e for e in errors), errors[:3]
    seen = [a for a in answers if a]
    assert len(answers) > 20 and seen
    # every answer shows whole calls only: a call's segments appear with (never before) its calls row
    assert all(row["n"] == row["expected"] for a in seen for row in a)
    assert sorted({len(a) for a in seen}) in (([1, 2], [2]) if n_calls == 2 else ([1],))


def test_runs_started_together_share_neither_a_port_nor_a_first_migration(tmp_path):
    """Prefect draws its temporary server's port with `random`; runs that draw alike (seeded
    here, by chance in the wild) would bind one port, and the loser printed a bind error and a
    traceback. And each temporary server migrates the SQLite database in a new PREFECT_HOME as
    it starts: without the start lock, three runs there at once printed a migration traceback
    (`duplicate column name`, `table ... already exists`) in 2 of 6 tries, and with Prefect's
    telemetry on in 5 of 6, some runs timing out. All three are clean. Prefect's own startup
    timeout is set to 1 s here: a start waits at least `STARTUP_TIMEOUT_S` whatever it says (its
    default 20 s timed out on two busy cores, the first start of a database taking 26 s)."""
    script = tmp_path / "one_flow.py"
    script.write_text("import random\nrandom.seed(1)\n"
                      "from pipelines.flows.supervisor import start_temporary_server\nstart_temporary_server()\n"
                      "from prefect import flow\n\n@flow\ndef one() -> int:\n    return 41 + 1\n\nprint('answer', one())\n")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONPATH=str(REPO), PREFECT_LOGGING_LEVEL="WARNING", PREFECT_HOME=str(tmp_path / "home"),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    runs = [subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outs = [r.communicate(timeout=300)[0] for r in runs]
    for r, out in zip(runs, outs):
        assert r.returncode == 0 and "answer 42" in out, out[-2000:]
        assert "Errno 98" not in out and "Traceback" not in out, out[-2000:]
