"""`speechfin serve` without PREFECT_API_URL starts its own local Prefect server
(``supervisor.prefect_api``); two started together must each get their own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = ("import httpx\nfrom pipelines.flows.supervisor import prefect_api\n"
          "with prefect_api() as url:\n    print('health', httpx.get(url + '/health').status_code, url)\n")


def test_two_serves_started_together_each_start_their_own_server(tmp_path):
    """Both used to take the preferred port 4200: one server failed to bind, and both processes
    then talked to the other's server, which stops when its owner does. Under the start lock
    the second picks its port after the first server is up, and neither run prints a traceback."""
    script = tmp_path / "api.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONPATH=str(REPO), PREFECT_LOGGING_LEVEL="WARNING", PREFECT_HOME=str(tmp_path / "home"))
    runs = [subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [r.communicate(timeout=300)[0] for r in runs]
    urls = []
    for r, out in zip(runs, outs):
        assert r.returncode == 0 and "Traceback" not in out, out[-2000:]
        urls += re.findall(r"^health 200 (\S+)$", out, re.M)
    assert len(urls) == 2 and urls[0] != urls[1], outs
