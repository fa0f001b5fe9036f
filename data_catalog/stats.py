"""``speechfin catalog stats``: rows, files and bytes per table, pending and compacted."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


from data_catalog.schemas import TABLES
from data_catalog.store import Catalog, CatalogError


@dataclass
class TableStats:
    table: str
    rows: int  # what the SQL view shows (complete calls; a pending part overrides its compacted rows)
    keys: int
    parts: int  # pending part files
    compacted_files: int
    bytes: int


@dataclass
class CatalogStats:
    root: Path
    tables: list[TableStats] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.root}", f"{'table':<20}{'rows':>12}{'keys':>9}{'parts':>8}{'compacted':>10}{'MB':>10}"]
        for t in self.tables:
            lines.append(f"{t.table:<20}{t.rows:>12,}{t.keys:>9,}{t.parts:>8,}{t.compacted_files:>10,}"
                         f"{t.bytes / 1e6:>10.1f}")
        pending = next((t.parts for t in self.tables if t.table == "calls"), 0)
        lines.append(f"{pending} call(s) not compacted yet" + (" (run `speechfin catalog compact`)" if pending else ""))
        return "\n".join(lines)


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def catalog_stats(root: str | Path) -> CatalogStats:
    """Row counts per table (through the same views as ``speechfin query``) and the files behind them."""
    from data_catalog.query import connect

    catalog = Catalog(root)
    if not catalog.tables_root.is_dir():
        raise CatalogError(f"{catalog.root}: no catalog here (no tables/ folder)")
    con = connect(catalog.root)
    out = CatalogStats(catalog.root)
    try:
        for table in TABLES:
            d = catalog.table_dir(table)
            parts = sorted(d.glob("*.parquet")) if d.is_dir() else []
            files = []
            if catalog.per_call(table):
                m = catalog.manifest(table)
                files = [m.path_of(f) for f in m.files]
            rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            out.tables.append(TableStats(table, int(rows), len(catalog.keys(table)), len(parts), len(files),
                                         sum(_size(p) for p in parts + files)))
    finally:
        con.close()
    return out
