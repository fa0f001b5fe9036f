"""Research reports from the catalog: a call report and a study report, as HTML or PDF.

    from reports import render_call_report, render_study_report
    render_call_report(Catalog("speechfin_catalog"), "3f2a...", Path("call.html"))        # or .pdf
    render_study_report(Catalog("speechfin_catalog"), "press_conferences.toml", Path("study.pdf"))

The HTML is self-contained (figures embedded, no network needed); the PDF is the same page
printed by WeasyPrint.  Bad input (unknown call or study, a spec with an unknown column or
window, a missing or read-only catalog, an unwritable output) raises ``ReportError`` with a
one-line message, and nothing is written: the output goes to a temporary file first, then
``os.replace``.  Each rendered report is recorded in the catalog's ``reports`` table.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from data_catalog import Catalog, CatalogError
from reports.common import (ReportError, fingerprint, git_commit, is_stale, open_catalog, output_format,
                            record_report, render_html, write_output)

__all__ = ["ReportError", "render_call_report", "render_study_report", "call_report_inputs", "study_report_inputs",
           "is_stale"]

log = logging.getLogger("speechfin.reports")


def _page(template: str, catalog: Catalog, context: dict) -> str:
    return render_html(template, **context, catalog_root=str(catalog.root), git_commit=git_commit(),
                       rendered_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def call_report_inputs(catalog: Catalog, call_id: str) -> str:
    """Fingerprint of the catalog parts a call report reads (changes when any of them is rewritten)."""
    from reports.call import CALL_PARTS

    return fingerprint(catalog, [(t, call_id) for t in CALL_PARTS])


def study_report_inputs(catalog: Catalog, study_id: str) -> str:
    from reports.study import STUDY_PARTS

    return fingerprint(catalog, [(t, study_id) for t in STUDY_PARTS])


def render_call_report(catalog: Catalog | str | Path, call_id: str, out: str | Path, model_id: str | None = None) -> Path:
    """Render the report of one call to ``out`` (.html or .pdf) and return its path.

    ``model_id``: the SER model whose scores to show (default: the only one, else the one
    whose card ships with speechfin)."""
    from reports.call import call_context, load_call

    t0 = time.perf_counter()
    out = Path(out)
    fmt = output_format(out)
    cat = open_catalog(catalog)
    try:
        inputs = call_report_inputs(cat, call_id)  # before reading: a part rewritten meanwhile makes the report stale
    except CatalogError:
        inputs = ""  # not a valid call id: load_call says so
    data = load_call(cat, call_id, model_id)
    html = _page("call.html.j2", cat, call_context(data))
    write_output(html, out, fmt)
    record_report(cat, "call", data.call_id, out, fmt, inputs, t0)
    log.info("call report of %s (%d segments, model %s) written to %s in %.1f s", call_id, len(data.segments),
             data.model_id or "none", out, time.perf_counter() - t0)
    return out


def render_study_report(catalog: Catalog | str | Path, study_id_or_spec: str | Path, out: str | Path) -> Path:
    """Render the report of a study already run into the catalog (by study id, or by its spec file,
    which must match the spec the study was run with) to ``out`` (.html or .pdf)."""
    from reports.study import load_study, study_context

    t0 = time.perf_counter()
    out = Path(out)
    fmt = output_format(out)
    cat = open_catalog(catalog)
    data = load_study(cat, study_id_or_spec)
    inputs = study_report_inputs(cat, data.study_id)
    html = _page("study.html.j2", cat, study_context(data))
    write_output(html, out, fmt)
    record_report(cat, "study", data.study_id, out, fmt, inputs, t0)
    log.info("study report of %s (%d events) written to %s in %.1f s", data.study_id, len(data.events), out,
             time.perf_counter() - t0)
    return out
