"""The explorer's server: pages, JSON shapes, Range requests on the audio, status codes, the
SQL console's sandbox and every bad input of issue 13 that the server handles (through
FastAPI's test client; the browser tests are separate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from data_catalog.store import Catalog
from reports.explorer import PAGE_SIZE, create_app
from reports_synth import synthetic_call

CALL = "5a1e5f0c0ffee000"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    cat = Catalog(root / "catalog")
    synthetic_call(cat, CALL, n_segments=120)
    wav = root / "call.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(16_000 * 20) / 10)).astype(np.float32), 16_000)
    calls = cat.read("calls", CALL).to_pandas().assign(source_uri=str(wav))
    cat.write("calls", CALL, calls)
    seg = cat.read("segments", CALL).to_pandas()
    seg.loc[0, "text"] = "<script>alert('x')</script> and the margin"
    cat.write("segments", CALL, seg)
    spk = cat.read("speakers", CALL).to_pandas()
    spk.loc[0, "name"] = "<b>Jane</b> Doe"
    cat.write("speakers", CALL, spk)
    for i in range(3):   # more calls for the list: other entities and dates
        cid = f"c{i:015d}"
        synthetic_call(cat, cid, n_segments=20, seed=i + 1)
        c = cat.read("calls", cid).to_pandas().assign(entity=["BOLT", "CORE", "BOLT"][i],
                                                      event_time=pd.Timestamp(f"201{i + 5}-03-01", tz="UTC"))
        cat.write("calls", cid, c)
    return root, cat, TestClient(create_app(cat.root))


def test_calls_list_filters_sorts_and_paginates(env):
    _, cat, client = env
    r = client.get("/")
    assert r.status_code == 200 and r.text.count('data-call="') == 4
    r = client.get("/", params={"entity": "bolt"})
    assert r.text.count('data-call="') == 2 and "<td>ACME</td>" not in r.text
    r = client.get("/", params={"date_from": "2016-01-01", "date_to": "2016-12-31"})
    assert r.text.count('data-call="') == 1
    r = client.get("/", params={"sort": "event_time", "desc": 0})
    order = [x.split('"')[0] for x in r.text.split('data-call="')[1:]]
    times = cat.read("calls").to_pandas().set_index("call_id").loc[order, "event_time"]
    assert list(times) == sorted(times)
    assert client.get("/", params={"date_from": "01/05/2019"}).status_code == 400
    assert PAGE_SIZE == 50


def test_call_page_and_data_are_escaped_and_complete(env):
    _, cat, client = env
    r = client.get(f"/calls/{CALL}")
    assert r.status_code == 200 and 'id="player"' in r.text and "<script>alert" not in r.text
    d = client.get(f"/calls/{CALL}/data.json").json()
    seg = cat.read("segments", CALL).to_pandas()
    assert len(d["segments"]) == len(seg) and d["segments"][0]["text"].startswith("<script>")   # data, shown as text
    assert {"tone", "text_tone", "fused_tone", "start_s", "end_s", "speaker"} <= set(d["segments"][0])
    assert len(d["words"]) == cat.read("words", CALL).num_rows
    assert any(s["name"] == "<b>Jane</b> Doe" for s in d["speakers"])
    csv = client.get(f"/calls/{CALL}/rows.csv")
    assert csv.status_code == 200 and csv.text.count("\n") >= len(seg)


def test_audio_range_requests(env):
    root, _, client = env
    size = (root / "call.wav").stat().st_size
    full = client.get(f"/calls/{CALL}/audio")
    assert full.status_code == 200 and len(full.content) == size and full.headers["accept-ranges"] == "bytes"
    part = client.get(f"/calls/{CALL}/audio", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == full.content[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{size}"
    tail = client.get(f"/calls/{CALL}/audio", headers={"Range": f"bytes={size - 10}-"})
    assert tail.status_code == 206 and tail.content == full.content[-10:]
    assert client.get(f"/calls/{CALL}/audio", headers={"Range": f"bytes={size + 5}-"}).status_code == 416


@pytest.mark.parametrize("path", ["/calls/nope", "/calls/nope/audio", "/calls/..%2F..%2Fetc%2Fpasswd/audio",
                                  "/calls/../../etc/passwd/audio", "/speakers/nobody", "/studies/none",
                                  "/reports/..%2Fcatalog.duckdb", "/no/such/page"])
def test_unknown_ids_and_traversal_are_404_pages(env, path):
    _, _, client = env
    r = client.get(path)
    assert r.status_code == 404 and "Not found" in r.text and "Traceback" not in r.text
    assert "root:" not in r.text


def test_missing_recording_says_so(env, tmp_path):
    root, cat, _ = env
    cid = "c000000000000001"
    assert cat.read("calls", cid).to_pandas()["source_uri"].iloc[0].startswith("/archive/")   # never existed
    client = TestClient(create_app(cat.root))
    page = client.get(f"/calls/{cid}")
    assert page.status_code == 200 and 'id="audio-missing"' in page.text
    r = client.get(f"/calls/{cid}/audio")
    assert r.status_code == 404 and "no longer at" in r.text


def test_sql_console_sandbox(env):
    _, _, client = env
    r = client.get("/sql", params={"q": "select entity, count(*) n from calls group by 1 order by 1"})
    assert r.status_code == 200 and r.text.count("<tr>") == 4        # header + 3 entities
    for q in ["COPY (select 1) TO '/tmp/x.csv'", "select * from read_csv('/etc/passwd')", "ATTACH 'x.db'",
              "INSTALL httpfs", "SET threads = 1", "select 1; select 2"]:
        r = client.get("/sql", params={"q": q})
        assert r.status_code == 400 and 'id="message"' in r.text, q
        assert "refused" in r.text or "exactly one statement" in r.text or "disabled" in r.text.lower() \
            or "Permission" in r.text, (q, r.text[-500:])
    many = client.get("/sql", params={"q": "select * from range(5000)"})
    assert many.status_code == 200 and "the result has more" in many.text and many.text.count("<tr>") == 1001
    csv = client.get("/sql", params={"q": "select * from range(5000)", "format": "csv"})
    assert csv.text.count("\n") == 5001
    pq = client.get("/sql", params={"q": "select 1 as x", "format": "parquet"})
    assert pq.content[:4] == b"PAR1"


def test_token_is_checked_on_every_request(env):
    _, cat, _ = env
    client = TestClient(create_app(cat.root, token="s3cret"))
    assert client.get("/").status_code == 403
    assert client.get(f"/calls/{CALL}/audio").status_code == 403
    assert client.get("/", params={"token": "wrong"}).status_code == 403
    assert client.get("/", params={"token": "s3cret"}).status_code == 200
    assert client.get("/sql").status_code == 200                      # the cookie set by the good request
    assert TestClient(create_app(cat.root, token="s3cret")).get("/", headers={"X-Speechfin-Token": "s3cret"}).status_code == 200


def test_empty_and_missing_catalogs_give_a_clear_page(tmp_path):
    r = TestClient(create_app(tmp_path / "nothing")).get("/")
    assert r.status_code == 200 and "No catalog at" in r.text
    Catalog(tmp_path / "empty").ensure_writable()
    r = TestClient(create_app(tmp_path / "empty")).get("/")
    assert r.status_code == 200 and ("has no calls yet" in r.text or "No catalog at" in r.text)


def test_reports_are_served_by_name_and_symlinks_are_refused(env):
    root, cat, client = env
    folder = cat.root / "reports"
    folder.mkdir(exist_ok=True)
    (folder / f"call_{CALL}.html").write_text("<html>report</html>")
    (folder / "evil.html").symlink_to("/etc/passwd")
    assert client.get(f"/reports/call_{CALL}.html").text == "<html>report</html>"
    r = client.get("/reports/evil.html")
    assert r.status_code == 404 and "root:" not in r.text
    assert f'href="/reports/call_{CALL}.html"' in client.get(f"/calls/{CALL}").text


def test_explore_command_warns_when_not_on_localhost(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import uvicorn
    from pipelines.cli import main as cli

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, log_level: served.update(host=host, port=port))
    r = CliRunner().invoke(cli.app, ["explore", "--catalog", str(tmp_path), "--host", "0.0.0.0", "--port", "8099"])
    assert r.exit_code == 0 and "warning: binding 0.0.0.0" in r.output and "no --token given" in r.output
    assert served == {"host": "0.0.0.0", "port": 8099}
    r = CliRunner().invoke(cli.app, ["explore", "--catalog", str(tmp_path)])
    assert "warning" not in r.output and served["host"] == "127.0.0.1"


def test_a_catalog_written_while_browsed(tmp_path):
    """A call being written (parts present, no ``calls`` part yet) is invisible; once its ``calls``
    part lands the list shows it without a restart; an unreadable part does not break the list."""
    cat = Catalog(tmp_path / "c")
    synthetic_call(cat, CALL, n_segments=10)
    client = TestClient(create_app(cat.root))
    assert client.get("/").text.count('data-call="') == 1
    other = "b" * 16
    synthetic_call(Catalog(tmp_path / "staging"), other, n_segments=10)
    staged = Catalog(tmp_path / "staging")
    for table in ("speakers", "segments", "words", "emotions", "call_features"):
        cat.write(table, other, staged.read(table, other))
    r = client.get("/")
    assert r.status_code == 200 and r.text.count('data-call="') == 1          # not complete yet: not listed
    assert client.get(f"/calls/{other}").status_code == 404
    cat.write("calls", other, staged.read("calls", other))
    assert client.get("/").text.count('data-call="') == 2                    # listed without a restart
    cat.part_path("speakers", other).write_bytes(b"not parquet")             # a part broken meanwhile
    r = client.get("/")
    assert r.status_code == 200 and "Traceback" not in r.text and r.text.count('data-call="') >= 1
