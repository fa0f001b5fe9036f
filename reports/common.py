"""What both report kinds share: checks, number formats, figures as data URIs, atomic output.

A report reads the catalog, renders one self-contained HTML page (figures embedded as PNG
data URIs, CSS inline, nothing fetched from the network) and, for ``.pdf``, prints that
same page with WeasyPrint.  The file is written to a temporary file beside ``out`` and
moved into place with ``os.replace``; then a row of the catalog's ``reports`` table
records it (path, time, git commit and a fingerprint of the catalog parts it read, which
``speechfin serve`` uses to find stale reports).
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from data_catalog import Catalog

FORMATS = {".html": "html", ".pdf": "pdf"}
TEMPLATES = Path(__file__).resolve().parent / "templates"


class ReportError(ValueError):
    """A report cannot be made; the one-line message names the file, table or id and the problem."""


# -- checks -------------------------------------------------------------------------------------------


def is_read_only(path: Path) -> bool:
    """No write access, or no write permission bit at all (a folder marked read-only, even for root)."""
    return not os.access(path, os.W_OK) or not stat.S_IMODE(path.stat().st_mode) & 0o222


def open_catalog(catalog: Catalog | str | os.PathLike) -> Catalog:
    """The catalog, if its folder exists and is writable (reports are recorded in its ``reports`` table)."""
    cat = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
    if not cat.root.is_dir():
        raise ReportError(f"{cat.root}: catalog folder not found")
    if is_read_only(cat.root):
        raise ReportError(f"{cat.root}: catalog folder is read-only (reports are recorded in its 'reports' table)")
    if not (cat.root / "tables").is_dir():
        raise ReportError(f"{cat.root}: not a speechfin catalog (no tables/ folder; run `speechfin run` first)")
    return cat


def output_format(out: Path) -> str:
    """'html' or 'pdf' from the suffix of ``out``; its folder must be writable."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ReportError(f"{out}: the output file must end in .html or .pdf")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or is_read_only(parent):
        raise ReportError(f"{out}: cannot write here ({parent} is read-only or not a folder)")
    return fmt


def has_part(catalog: Catalog, table: str, key: str) -> bool:
    """``catalog.has`` that answers False for a key that cannot be a part name (e.g. '../x')."""
    from data_catalog import CatalogError

    try:
        return catalog.has(table, key)
    except CatalogError:
        return False


def read_part(catalog: Catalog, table: str, key: str):
    """One part of a table as pandas (an empty frame with the table's columns if absent)."""
    if has_part(catalog, table, key):
        return catalog.read(table, key).to_pandas()
    from data_catalog import TABLES

    return TABLES[table].schema.empty_table().to_pandas()


def fingerprint(catalog: Catalog, parts: list[tuple[str, str]]) -> str:
    """A short hash of the versions (``Catalog.stamp``) of the given parts (absent parts count too)."""
    h = hashlib.sha256()
    for table, key in sorted(parts):
        stamp = catalog.stamp(table, key)
        h.update(f"{table}/{key}:{-1 if stamp is None else stamp};".encode())
    return h.hexdigest()[:16]


def git_commit() -> str:
    """The git commit of the speechfin checkout (``+dirty`` if changed), else the package version."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(here.parent), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"speechfin {version('speechfin')} (not a git checkout)"
    except PackageNotFoundError:
        return "unknown"


# -- numbers -------------------------------------------------------------------------------------------


def is_missing(x: Any) -> bool:
    """None, NaN, pandas NA/NaT."""
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return str(x) in ("<NA>", "NaT")


def num(x: Any, digits: int = 4, signed: bool = False) -> str:
    """A number for a table: fixed decimals, scientific when tiny or huge, '–' when missing."""
    if is_missing(x):
        return "–"
    x = float(x)
    if x != 0 and (abs(x) < 10 ** -digits or abs(x) >= 1e7):
        return f"{x:+.{max(1, digits - 1)}e}" if signed else f"{x:.{max(1, digits - 1)}e}"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def sig(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, without exponent between 1e-8 and 1e7 (0.000547, 0.0233, 995)."""
    if is_missing(x):
        return "–"
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:.0f}" if x == 0 else str(x)
    if abs(x) < 1e-8 or abs(x) >= 1e7:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def pval(p: Any) -> str:
    if is_missing(p):
        return "–"
    return "<0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def stars(p: Any) -> str:
    """Significance stars of the finance tables: *** p<0.01, ** p<0.05, * p<0.10."""
    if is_missing(p):
        return ""
    p = float(p)
    return "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.10 else ""


def clock(seconds: Any) -> str:
    """Seconds as m:ss (h:mm:ss past an hour)."""
    if is_missing(seconds):
        return "–"
    s = int(round(float(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# -- figures -----------------------------------------------------------------------------------------


@dataclass
class Figure:
    """A rendered figure: ``uri`` is a PNG data URI; ``caption`` says what is shown."""

    id: str
    title: str
    caption: str
    uri: str
    width_px: int
    height_px: int


def new_figure(width_in: float, height_in: float):
    """A matplotlib Figure without pyplot (no global state, Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_figure(fig, id: str, title: str, caption: str, dpi: int = 130) -> Figure:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    w, h = (int(round(v * dpi)) for v in fig.get_size_inches())
    return Figure(id, title, caption, "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), w, h)


# -- output ------------------------------------------------------------------------------------------


def render_html(template: str, **context: Any) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=jinja2.select_autoescape(),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, sig=sig, pval=pval, stars=stars, clock=clock)
    env.globals["css"] = (TEMPLATES / "style.css").read_text()
    return env.get_template(template).render(**context)


def write_output(html: str, out: Path, fmt: str) -> Path:
    """Write ``html`` (or its PDF print) to ``out`` through a temporary file and ``os.replace``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        if fmt == "pdf":
            import logging

            from weasyprint import HTML

            logging.getLogger("weasyprint").setLevel(logging.ERROR)
            logging.getLogger("fontTools").setLevel(logging.ERROR)
            HTML(string=html, base_url=str(out.parent)).write_pdf(tmp)
        else:
            Path(tmp).write_text(html, encoding="utf-8")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def report_id(kind: str, subject: str, out: Path) -> str:
    return hashlib.sha256(f"{kind}:{subject}:{out.resolve()}".encode()).hexdigest()[:16]


def record_report(catalog: Catalog, kind: str, subject: str, out: Path, fmt: str, inputs: str, t0: float) -> None:
    rid = report_id(kind, subject, out)
    catalog.write("reports", rid, [{
        "report_id": rid, "kind": kind, "subject": subject, "path": str(out.resolve()), "format": fmt,
        "inputs": inputs, "rendered_at": datetime.now(timezone.utc), "seconds": time.perf_counter() - t0,
        "git_commit": git_commit()}])


def is_stale(catalog: Catalog, kind: str, subject: str, out: Path, inputs: str) -> bool:
    """True when ``out`` is missing, or was rendered from other catalog parts than ``inputs``."""
    rid = report_id(kind, subject, out)
    if not out.is_file() or not catalog.has("reports", rid):
        return True
    row = catalog.read("reports", rid).to_pylist()
    return not row or row[0]["inputs"] != inputs
