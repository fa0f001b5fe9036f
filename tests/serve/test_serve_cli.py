"""`speechfin serve` and prefect.yaml: the deployment and its schedule on a real Prefect API, bad
arguments, and an archive folder deleted while being served."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import pipelines.flows.serve  # noqa: F401 - Prefect sets its console log handler on the session's stderr,
from serve_helpers import write_manifest  # not on the stream CliRunner swaps in (and closes) below

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api_url(prefect_api):
    return prefect_api


def test_served_deployment_runs_then_stops_when_the_archive_is_deleted(api_url, tmp_path):
    """`speechfin serve` registers the deployment with its schedule, executes a run of it triggered
    through the API, and stops with one line and exit 1 when the archive folder is deleted."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    archive, cat = tmp_path / "archive", tmp_path / "catalog"
    write_manifest(archive, [])
    env = dict(os.environ, PREFECT_API_URL=api_url, PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_RUNNER_POLL_FREQUENCY="1")
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--archive", str(archive), "--catalog",
                             str(cat), "--cron", "15 5 * * 1-5", "--name", "watch-test"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, dep = time.monotonic() + 120, None
        with get_client(sync_client=True) as client:
            while dep is None and time.monotonic() < deadline and proc.poll() is None:
                try:
                    dep = client.read_deployment_by_name("watch_archive/watch-test")
                except Exception:  # noqa: BLE001 - not registered yet
                    time.sleep(0.5)
        assert dep is not None, proc.communicate(timeout=30)
        assert [s.schedule.cron for s in dep.schedules] == ["15 5 * * 1-5"]
        assert dep.parameters["archive"] == str(archive.resolve()) and dep.parameters["catalog_dir"] == str(cat.resolve())
        run = run_deployment("watch_archive/watch-test", timeout=120)      # executed by the served process
        assert run.state.is_completed(), run.state
        assert not any((cat / "tables").rglob("*.parquet"))                # an empty archive: nothing written
        shutil.rmtree(archive)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, (out, err)
    assert err.strip().splitlines()[-1] == f"error: {archive}: archive folder was deleted while being served; stopped serving"
    assert f"serving {archive}" in out
    assert not (cat / "tables").exists() or not any((cat / "tables").rglob("*.parquet"))


@pytest.mark.parametrize("args, message", [
    (["--archive", "{tmp}/none"], "{tmp}/none: no manifest.csv here"),
    (["--archive", "{tmp}/archive", "--cron", "every morning"], "--cron 'every morning': not a valid cron schedule"),
    (["--archive", "{tmp}/archive", "--format", "docx"], "--format 'docx': use html or pdf"),
    (["--archive", "{tmp}/archive", "--study", "nope.toml"], "nope.toml: spec file not found"),
])
def test_bad_arguments(tmp_path, args, message):
    from pipelines.cli.main import app

    write_manifest(tmp_path / "archive", [])
    r = CliRunner().invoke(app, ["serve", "--catalog", str(tmp_path / "cat"), *[a.format(tmp=tmp_path) for a in args]])
    assert r.exit_code in (1, 2)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message.format(tmp=tmp_path)), r.stderr
    assert not (tmp_path / "cat").exists()


def test_serve_once(api_url, tmp_path):
    from pipelines.cli.main import app

    write_manifest(tmp_path / "archive", [])
    r = CliRunner().invoke(app, ["serve", "-a", str(tmp_path / "archive"), "-c", str(tmp_path / "cat"), "--once"])
    assert r.exit_code == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith(f"watch {tmp_path / 'archive'} -> catalog {(tmp_path / 'cat').resolve()}: nothing new "
                           f"(0 file(s) known); studies and reports up to date")


def test_deployment_of_the_serve_command(tmp_path):
    from pipelines.flows.serve import build_deployment, watch_archive

    write_manifest(tmp_path / "a", [])
    dep = build_deployment(tmp_path / "a", tmp_path / "c", "0 7 * * *", studies=["press_conferences.toml"],
                           formats=["html", "pdf"])
    assert dep.name == "watch-a" and dep.flow_name == "watch_archive"
    assert [s.schedule.cron for s in dep.schedules] == ["0 7 * * *"]
    assert dep.parameters == {"archive": str((tmp_path / "a").resolve()), "catalog_dir": str((tmp_path / "c").resolve()),
                              "reports_dir": "", "studies": ["press_conferences.toml"], "profile": "embedded",
                              "formats": ["html", "pdf"], "runner": "sequential", "workers": 0, "address": ""}
    assert set(dep.parameters) <= set(inspect.signature(watch_archive.fn).parameters)
    dask = build_deployment(tmp_path / "a", tmp_path / "c", runner="dask", workers=4, address="tcp://10.0.0.5:8786")
    assert {k: dask.parameters[k] for k in ("runner", "workers", "address")} == {
        "runner": "dask", "workers": 4, "address": "tcp://10.0.0.5:8786"}


def test_prefect_yaml_deploys_the_watch_flow():
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = spec["deployments"]
    assert [d["name"] for d in deployments] == ["watch-demo-archive", "watch-earnings-calls"]
    for d in deployments:
        path, name = d["entrypoint"].split(":")
        flow = load_flow_from_entrypoint(f"{REPO / path}:{name}")
        assert flow.name == "watch_archive"
        params = inspect.signature(flow.fn).parameters
        assert set(d["parameters"]) <= set(params) and {"archive", "catalog_dir"} <= set(d["parameters"])
        for s in d["schedules"]:
            assert CronSchedule(cron=s["cron"], timezone=s["timezone"]).cron == s["cron"]
        assert d["work_pool"]["name"] == "speechfin"
    demo = deployments[0]["parameters"]
    assert (REPO / demo["archive"] / "manifest.csv").is_file()
    from finance.studies import load_spec

    assert [load_spec(s).study_id for s in demo["studies"]] == ["press_conferences"]
