"""``speechfin explore``: a local web application over a catalog (it reads, it computes nothing).

    app = create_app("speechfin_catalog", token=None)      # FastAPI; the CLI serves it with uvicorn

Pages: ``/`` (calls: filter, sort, paginate), ``/calls/<call_id>`` (audio player, speaker
lanes, transcript with the segment and word being spoken highlighted, segment table with the
emotion columns; a click seeks), ``/speakers/<voice_id>``, ``/studies/<study_id>``, ``/sql``
(the read-only console of ``data_catalog.query``: one SELECT, no file access outside the
catalog, DuckDB's ``enable_external_access = false`` and ``lock_configuration``, a time and a
row limit; results as a table, CSV or Parquet).  JSON and files: ``/calls/<id>/data.json``,
``/calls/<id>/audio`` (the recording the catalog records for that call, nothing else; HTTP
Range requests, so a long mp3 starts at once), ``/calls/<id>/rows.csv``.

Safety: binds 127.0.0.1 unless told otherwise; an optional token (``--token`` or
``SPEECHFIN_EXPLORE_TOKEN``) is checked on every request (query ``?token=``, header
``X-Speechfin-Token`` or the cookie set on the first good request); every text is escaped
(Jinja autoescape); unknown ids are a 404 page; audio is looked up by call id only, so no URL
can name another file.
"""

from __future__ import annotations

import io
import logging
import math
import os
import secrets
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_catalog import compacted
from data_catalog.store import Catalog, CatalogError

log = logging.getLogger(__name__)
TOKEN_ENV = "SPEECHFIN_EXPLORE_TOKEN"
PAGE_SIZE = 50
SQL_ROWS = 1000
SQL_TIMEOUT_S = 10.0
SORTABLE = ("entity", "event_type", "event_time", "duration_s", "n_speakers", "call_tone", "call_text_tone",
            "tone_change_prepared_to_qa")
HERE = Path(__file__).parent


class CallIndex:
    """The calls list (one row per complete call, with its speakers and tone features), read
    once and read again when the catalog's ``calls`` or ``call_features`` folders change."""

    def __init__(self, catalog: Catalog):
        import threading

        self.catalog = catalog
        self._stamp: tuple = ()
        self.frame = pd.DataFrame()
        self.people = pd.DataFrame()
        self._lock = threading.Lock()

    def preload(self) -> None:
        """Read the index in the background now, so that the first page does not wait for it."""
        import threading

        def run():
            try:
                t0 = time.perf_counter()
                self.get()
                log.info("explorer: %d calls indexed in %.1f s", len(self.frame), time.perf_counter() - t0)
            except (CatalogError, OSError) as exc:
                log.info("explorer: index not preloaded (%s)", exc)

        if self.catalog.tables_root.is_dir():
            threading.Thread(target=run, daemon=True).start()

    def _state(self) -> tuple:
        out = []
        for t in ("calls", "call_features", "speakers"):
            d = self.catalog.table_dir(t)
            out.append(d.stat().st_mtime_ns if d.exists() else 0)
            out.append(compacted.file_identity(d / compacted.COMPACT_DIR / compacted.MANIFEST))
        return tuple(out)

    def get(self) -> pd.DataFrame:
        with self._lock:
            stamp = self._state()
            if stamp != self._stamp:
                self._load()
                self._stamp = stamp
            return self.frame

    def _load(self) -> None:
        """The complete calls' ``calls``, ``call_features`` and ``speakers`` parts, read by DuckDB in
        one parallel scan per table (10,000 calls in seconds; a part-by-part read takes minutes)."""
        import duckdb

        from data_catalog.query import view_sql

        c = self.catalog
        views = view_sql(c)  # parts and compacted files of complete calls
        con = duckdb.connect(":memory:", config={"threads": 2})

        def scan(table: str, cols: list[str]) -> pd.DataFrame:
            try:
                sql = f"select {', '.join(cols)} from ({views[table]})"
                return con.sql(sql).to_arrow_table().to_pandas()
            except duckdb.Error as exc:   # a part written or removed meanwhile: one part at a time, skipping bad ones
                log.info("explorer: %s read part by part (%s)", table, str(exc).splitlines()[0])
                return c.read(table, complete_only=True, skip_unreadable=True).to_pandas().reindex(columns=cols)

        calls = scan("calls", ["call_id", "event_type", "entity", "event_time", "duration_s", "source_uri", "title"])
        feats = scan("call_features", ["call_id", "call_tone", "call_text_tone", "tone_change_prepared_to_qa"])
        spk = scan("speakers", ["call_id", "speaker", "role", "name", "voice_id"])
        con.close()
        n = spk.groupby("call_id").size().rename("n_speakers")
        df = calls.merge(feats.drop_duplicates("call_id"), on="call_id", how="left").merge(n, on="call_id", how="left")
        df["event_time"] = pd.to_datetime(df["event_time"], utc=True)
        self.frame = df
        self.people = spk.fillna("")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating,)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: _clean(v) for k, v in r.items()} for r in df.to_dict("records")]


def create_app(catalog_dir: str | os.PathLike[str], token: str | None = None):
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    catalog = Catalog(catalog_dir)
    index = CallIndex(catalog)
    index.preload()
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda v, d=3: "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.{d}f}"
    app = FastAPI(title="speechfin explorer", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    token = token or os.environ.get(TOKEN_ENV) or None

    def page(name: str, status: int = 200, **ctx) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(catalog=str(catalog.root), **ctx), status_code=status)

    def not_found(what: str) -> HTMLResponse:
        return page("explore_error.html.j2", 404, title="Not found", message=what)

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        if token is None:
            return await call_next(request)
        given = (request.query_params.get("token") or request.headers.get("x-speechfin-token")
                 or request.cookies.get("speechfin_token") or "")
        if not secrets.compare_digest(given, token):
            return HTMLResponse("<h1>403</h1><p>An access token is needed (?token=...).</p>", status_code=403)
        response = await call_next(request)
        response.set_cookie("speechfin_token", token, httponly=True, samesite="strict")
        return response

    def calls_or_message() -> tuple[pd.DataFrame | None, str]:
        if not catalog.tables_root.is_dir():
            return None, f"No catalog at {catalog.root}: run `speechfin run` first."
        try:
            df = index.get()
        except CatalogError as exc:
            return None, f"The catalog cannot be read right now ({exc}); reload in a moment."
        if df.empty:
            return None, f"The catalog at {catalog.root} has no calls yet."
        return df, ""

    @app.get("/", response_class=HTMLResponse)
    def calls_page(entity: str = "", event_type: str = "", date_from: str = "", date_to: str = "", speaker: str = "",
                   role: str = "", sort: str = "event_time", desc: int = 1, page_no: int = 1):
        t0 = time.perf_counter()
        df, message = calls_or_message()
        if df is None:
            return page("explore_calls.html.j2", title="Calls", rows=[], message=message, total=0, filters={},
                        pages=0, page_no=1, sort=sort, desc=desc, seconds=0.0)
        sel = df
        if entity:
            sel = sel[sel["entity"].str.contains(entity, case=False, regex=False)]
        if event_type:
            sel = sel[sel["event_type"] == event_type]
        for bound, op in ((date_from, "ge"), (date_to, "le")):
            if bound:
                try:
                    ts = pd.Timestamp(date.fromisoformat(bound), tz="UTC")
                except ValueError:
                    return page("explore_error.html.j2", 400, title="Bad filter",
                                message=f"date {bound!r} is not ISO 8601 (YYYY-MM-DD)")
                sel = sel[getattr(sel["event_time"], op)(ts if op == "ge" else ts + pd.Timedelta(days=1))]
        if speaker or role:
            p = index.people
            if speaker:
                p = p[p["name"].str.contains(speaker, case=False, regex=False)]
            if role:
                p = p[p["role"] == role]
            sel = sel[sel["call_id"].isin(p["call_id"])]
        key = sort if sort in SORTABLE else "event_time"
        sel = sel.sort_values(key, ascending=not desc, na_position="last")
        pages = max(1, math.ceil(len(sel) / PAGE_SIZE))
        page_no = min(max(1, page_no), pages)
        rows = _records(sel.iloc[(page_no - 1) * PAGE_SIZE: page_no * PAGE_SIZE][
            ["call_id", "entity", "event_type", "event_time", "duration_s", "n_speakers", "call_tone", "call_text_tone",
             "tone_change_prepared_to_qa", "title"]])
        filters = dict(entity=entity, event_type=event_type, date_from=date_from, date_to=date_to, speaker=speaker,
                       role=role)
        return page("explore_calls.html.j2", title="Calls", rows=rows, message="", total=len(sel), filters=filters,
                    pages=pages, page_no=page_no, sort=key, desc=desc, seconds=time.perf_counter() - t0)

    def call_row(call_id: str) -> dict | None:
        df, _ = calls_or_message()
        if df is None:
            return None
        hit = df[df["call_id"] == call_id]
        return _records(hit)[0] if len(hit) else None

    def call_tables(call_id: str) -> dict[str, pd.DataFrame]:
        out = {}
        for t in ("segments", "words", "speakers", "emotions", "qa_pairs", "trajectories"):
            out[t] = catalog.read(t, call_id).to_pandas() if catalog.has(t, call_id) else pd.DataFrame()
        return out

    @app.get("/calls/{call_id}", response_class=HTMLResponse)
    def call_page(call_id: str):
        row = call_row(call_id)
        if row is None:
            return not_found(f"No call {call_id!r} in the catalog.")
        audio_ok = Path(str(row["source_uri"])).is_file()
        reports = sorted(p.name for p in (catalog.root / "reports").glob(f"call_{call_id}.*")) \
            if (catalog.root / "reports").is_dir() else []
        return page("explore_call.html.j2", title=row.get("title") or call_id, call=row, audio_ok=audio_ok,
                    reports=reports)

    @app.get("/calls/{call_id}/data.json")
    def call_data(call_id: str):
        row = call_row(call_id)
        if row is None:
            return JSONResponse({"error": f"no call {call_id!r}"}, status_code=404)
        t = call_tables(call_id)
        seg = t["segments"]
        emo = t["emotions"]
        if len(emo):
            keep = ["segment_id", "tone", "tone_abs", "text_tone", "fused_tone", "hawkish", "lm_tone",
                    "attention_top15_share", "skip_reason", *[c for c in emo.columns if c.startswith("p_")]]
            seg = seg.merge(emo.reindex(columns=keep), on="segment_id", how="left")
        words = t["words"].reindex(columns=["segment_id", "word", "start_s", "end_s"]).sort_values("start_s")

        def rows(df: pd.DataFrame) -> str:   # pandas writes the JSON (NaN -> null) at C speed
            return df.drop(columns=["call_id"], errors="ignore").to_json(orient="records", date_format="iso")

        import json

        threshold = None
        if len(emo):
            from ser_models.cards import find_card

            card, _ = find_card(str(emo["model_id"].iloc[0]))
            threshold = ((card or {}).get("calibration") or {}).get("hotspot_threshold")
        body = (f'{{"call": {json.dumps(row)}, "hotspot_threshold": {json.dumps(threshold)}, '
                f'"speakers": {rows(t["speakers"])}, '
                f'"segments": {rows(seg.sort_values("start_s"))}, "words": {rows(words)}, '
                f'"qa_pairs": {rows(t["qa_pairs"])}, "trajectories": '
                f'{rows(t["trajectories"].reindex(columns=["speaker", "segment_id", "t_s", "tone", "tone_smooth"]))}}}')
        return Response(body, media_type="application/json")

    @app.get("/calls/{call_id}/audio")
    def call_audio(call_id: str):
        row = call_row(call_id)
        if row is None:
            return not_found(f"No call {call_id!r} in the catalog.")
        path = Path(str(row["source_uri"]))
        if not path.is_file():
            return page("explore_error.html.j2", 404, title="Recording not found",
                        message=f"The recording of call {call_id} is no longer at {path}.")
        return FileResponse(path)   # Range requests: 206 with Content-Range

    @app.get("/calls/{call_id}/rows.csv")
    def call_rows_csv(call_id: str):
        if call_row(call_id) is None:
            return not_found(f"No call {call_id!r} in the catalog.")
        t = call_tables(call_id)
        df = t["segments"].merge(t["emotions"].drop(columns=["call_id"], errors="ignore"), on="segment_id", how="left") \
            if len(t["emotions"]) else t["segments"]
        return Response(df.to_csv(index=False), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="call_{call_id}.csv"'})

    @app.get("/speakers/{voice_id}", response_class=HTMLResponse)
    def speaker_page(voice_id: str):
        df, message = calls_or_message()
        if df is None:
            return not_found(message)
        p = index.people[index.people["voice_id"] == voice_id]
        if p.empty:
            return not_found(f"No voice {voice_id!r} in the catalog.")
        rows = p.merge(df[["call_id", "entity", "event_time", "title", "call_tone"]], on="call_id").sort_values("event_time")
        tone = []
        for r in rows.itertuples():
            if catalog.has("speaker_baselines", r.call_id):
                b = catalog.read("speaker_baselines", r.call_id).to_pandas()
                b = b[b["voice_id"] == voice_id]
                tone.append(float(b["voice_tone"].iloc[0]) if len(b) else None)
            else:
                tone.append(None)
        rows = rows.assign(voice_tone=tone)
        names = sorted({n for n in p["name"] if n})
        chart = {"x": [int(pd.Timestamp(t).timestamp()) for t in rows["event_time"]], "xTime": True, "xLabel": "date",
                 "yLabel": "tone", "series": [{"label": "this voice's tone", "values": [_clean(v) for v in rows["voice_tone"]]},
                                              {"label": "call tone", "color": "#888",
                                               "values": [_clean(v) for v in rows["call_tone"]]}]}
        return page("explore_speaker.html.j2", title=names[0] if names else voice_id, voice_id=voice_id, names=names,
                    rows=_records(rows), chart=chart)

    @app.get("/studies/{study_id}", response_class=HTMLResponse)
    def study_page(study_id: str):
        if not catalog.has("study_results", study_id):
            return not_found(f"No study {study_id!r} in the catalog.")
        r = catalog.read("study_results", study_id).to_pandas()
        meta = dict(zip(r.loc[r["kind"] == "meta", "name"], r.loc[r["kind"] == "meta", "value"].fillna("")))
        kinds = {k: _records(r[r["kind"] == k].drop(columns=["study_id"])) for k in
                 ("test", "caar", "regression", "regression_mi", "regression_fit")}
        dropped = catalog.read("study_dropped", study_id).to_pandas() if catalog.has("study_dropped", study_id) \
            else pd.DataFrame()
        caar = r[r["kind"] == "caar"].sort_values("rel_day")
        est, se = caar["estimate"].to_numpy(float), caar["std_error"].to_numpy(float)
        chart = {"x": [int(d) for d in caar["rel_day"]], "xTime": False, "xLabel": "trading days from day 0",
                 "yLabel": "CAAR", "series": [{"label": "CAAR", "values": [_clean(v) for v in est],
                                               "band": [[_clean(v) for v in est - 1.96 * se],
                                                        [_clean(v) for v in est + 1.96 * se]]}]}
        return page("explore_study.html.j2", title=meta.get("title") or study_id, study_id=study_id, meta=meta,
                    kinds=kinds, dropped=_records(dropped.head(200)), chart=chart)

    @app.get("/sql", response_class=HTMLResponse)
    def sql_page(q: str = "", format: str = ""):
        if not q:
            return page("explore_sql.html.j2", title="SQL", q="", columns=[], rows=[], message="", seconds=0.0)
        from data_catalog.query import open_query

        t0 = time.perf_counter()
        try:
            res = open_query(catalog.root, q, timeout_s=SQL_TIMEOUT_S, max_rows=SQL_ROWS if not format else 1_000_000)
            table = res.read_all()
            truncated = res.truncated
            res.close()
        except CatalogError as exc:
            return page("explore_sql.html.j2", 400, title="SQL", q=q, columns=[], rows=[], message=str(exc),
                        seconds=time.perf_counter() - t0)
        if format in ("csv", "parquet"):
            buf = io.BytesIO()
            if format == "csv":
                table.to_pandas().to_csv(buf, index=False)
            else:
                import pyarrow.parquet as pq

                pq.write_table(table, buf)
            return Response(buf.getvalue(), media_type="text/csv" if format == "csv" else "application/octet-stream",
                            headers={"content-disposition": f'attachment; filename="query.{format}"'})
        df = table.to_pandas()
        note = f"first {SQL_ROWS} rows shown; the result has more (download it)" if truncated else ""
        return page("explore_sql.html.j2", title="SQL", q=q, columns=list(df.columns),
                    rows=[[_clean(v) for v in r] for r in df.itertuples(index=False)], message=note,
                    seconds=time.perf_counter() - t0)

    @app.get("/reports/{name}")
    def report_file(name: str):
        folder = (catalog.root / "reports").resolve()
        names = {p.name: p for p in folder.iterdir() if p.is_file() and not p.is_symlink()} if folder.is_dir() else {}
        # only a regular file of the catalog's reports folder, by its exact name (no symlink out of it)
        if name not in names or names[name].resolve().parent != folder:
            return not_found(f"No report {name!r}.")
        return FileResponse(names[name])

    @app.exception_handler(404)
    async def missing(request: Request, exc):
        return not_found(f"Nothing at {request.url.path}.")

    return app
