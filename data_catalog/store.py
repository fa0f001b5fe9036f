"""Atomic Parquet parts and DuckDB views.

Layout of a catalog folder::

    CATALOG/
      tables/<table>/<key>.parquet   one part per partition key (call_id, ticker, study_id)
      catalog.duckdb                 views: one per table, over tables/<table>/*.parquet

Every write goes to a temporary file in the destination folder, then ``os.replace``:
a crash leaves the old part or the new one, never half of one.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_catalog.schemas import TABLES, TableSchema


class CatalogError(RuntimeError):
    """A catalog operation failed (bad table, bad schema, unwritable folder)."""


_KEY_RE = re.compile(r"^[A-Za-z0-9_.^=\-]+$")


def _safe_key(key: str) -> str:
    if not key or not _KEY_RE.match(key) or key.startswith("."):
        raise CatalogError(f"invalid partition key {key!r}: use letters, digits, '_', '-', '.', '^', '='")
    return key


def to_arrow(data: Any) -> pa.Table:
    """Accept a pyarrow Table, a pandas/polars DataFrame or a list of dict rows."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    if hasattr(data, "to_arrow"):  # polars
        return data.to_arrow()
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise CatalogError(f"cannot convert {type(data).__name__} to an Arrow table")


def conform(table: pa.Table, spec: TableSchema) -> pa.Table:
    """Cast to the declared schema: required columns first, declared extras after."""
    missing = [c for c in spec.columns if c not in table.column_names]
    if missing:
        raise CatalogError(f"table {spec.name!r}: missing columns {missing}")
    extras = [c for c in table.column_names if c not in spec.columns]
    bad = [c for c in extras if not any(c.startswith(p) for p in spec.extra_prefixes)]
    if bad:
        raise CatalogError(f"table {spec.name!r}: unknown columns {bad}")
    arrays, fields = [], []
    for f in spec.schema:
        col = table.column(f.name)
        try:
            arrays.append(col.cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CatalogError(f"table {spec.name!r}: column {f.name!r} is not {f.type}: {exc}") from exc
        fields.append(f)
    for c in extras:
        col = table.column(c)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            col = col.cast(pa.float64())
        arrays.append(col)
        fields.append(pa.field(c, col.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Catalog:
    """A folder of Parquet parts with DuckDB views over them."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()

    # -- paths -----------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.root / "catalog.duckdb"

    def table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise CatalogError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
        return self.root / "tables" / table

    def part_path(self, table: str, key: str) -> Path:
        return self.table_dir(table) / f"{_safe_key(key)}.parquet"

    # -- writes ------------------------------------------------------------------------
    def ensure_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"{self.root}: cannot create catalog folder ({exc.strerror})") from exc
        if not os.access(self.root, os.W_OK):
            raise CatalogError(f"{self.root}: catalog folder is read-only")

    def write(self, table: str, key: str, data: Any) -> Path:
        """Replace the part ``key`` of ``table`` with ``data`` (atomic)."""
        spec = TABLES[table] if table in TABLES else None
        if spec is None:
            raise CatalogError(f"unknown table {table!r}")
        arrow = conform(to_arrow(data), spec)
        keys = set(arrow.column(spec.partition_by).to_pylist()) if arrow.num_rows else {key}
        if keys != {key}:
            raise CatalogError(f"table {table!r}: rows for {sorted(keys)} written to part {key!r}")
        self.ensure_writable()
        path = self.part_path(table, key)
        atomic_write_parquet(arrow, path)
        return path

    def delete(self, table: str, key: str) -> bool:
        path = self.part_path(table, key)
        if path.exists():
            path.unlink()
            return True
        return False

    # -- reads -------------------------------------------------------------------------
    def has(self, table: str, key: str) -> bool:
        return self.part_path(table, key).exists()

    def keys(self, table: str) -> list[str]:
        d = self.table_dir(table)
        return sorted(p.stem for p in d.glob("*.parquet")) if d.exists() else []

    def read(self, table: str, key: str | None = None) -> pa.Table:
        """One part, or all parts of a table concatenated (empty table with schema if none)."""
        spec = TABLES[table]
        if key is not None:
            path = self.part_path(table, key)
            if not path.exists():
                raise CatalogError(f"{path}: no {table!r} rows for {key!r}")
            return pq.read_table(path)
        parts = [pq.read_table(self.part_path(table, k)) for k in self.keys(table)]
        if not parts:
            return spec.schema.empty_table()
        return pa.concat_tables(parts, promote_options="permissive")

    # -- DuckDB views ------------------------------------------------------------------
    def refresh_views(self) -> None:
        """(Re)create one DuckDB view per table over its Parquet parts."""
        import duckdb

        self.ensure_writable()
        con = duckdb.connect(str(self.db_path))
        try:
            for name, spec in TABLES.items():
                d = self.table_dir(name)
                if self.keys(name):
                    glob = (d / "*.parquet").as_posix().replace("'", "''")
                    sql = f"SELECT * FROM read_parquet('{glob}', union_by_name=true)"
                else:
                    cols = ", ".join(
                        f"CAST(NULL AS {_duck_type(f.type)}) AS \"{f.name}\"" for f in spec.schema
                    )
                    sql = f"SELECT {cols} WHERE false"
                con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {sql}')
        finally:
            con.close()

    def query(self, sql: str) -> pa.Table:
        """Run ``sql`` on a read-only DuckDB connection and return an Arrow table."""
        import duckdb

        if not self.db_path.exists():
            raise CatalogError(f"{self.root}: no catalog here (run `speechfin run` first)")
        con = duckdb.connect(str(self.db_path), read_only=True)
        try:
            rel = con.sql(sql)
            if rel is None:  # a statement without a result
                return pa.table({})
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {str(exc).splitlines()[0]}") from exc
        finally:
            con.close()


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    raise CatalogError(f"no DuckDB type for {t}")
