"""Atomic Parquet parts, read back with pyarrow; SQL over them lives in ``data_catalog.query``.

Layout of a catalog folder::

    CATALOG/
      tables/<table>/<key>.parquet   one part per partition key (call_id, ticker, study_id)

There is no database file: the DuckDB views are built per connection, in memory, from the
folder's own ``tables/`` (``data_catalog.query``).  A copied or moved catalog reads its own
data, and no reader can lock a writer out.  A ``catalog.duckdb`` left by older versions held
absolute paths (a copy read the original's data); it is not read any more, and
``Catalog.refresh_views`` removes it.

Every write goes to a temporary file ``.<key>.parquet.<random>.tmp`` in the destination
folder, then ``os.replace``: a crash leaves the old part or the new one, never half of one.
Parts get the mode the umask gives (0644 under umask 022), not mkstemp's 0600.  Temporary
files older than an hour are left-overs of killed writers; the first write of a process and
``speechfin catalog verify`` remove them.

Per-call tables (``partition_by == "call_id"``) are written before the call's ``calls`` part,
which marks the call complete.  The SQL views (and ``Catalog.read(..., complete_only=True)``)
only see the parts of complete calls, so a killed write is invisible.

Per-call tables are compacted (``speechfin catalog compact``, and after a large batch): their
parts become a few large files under ``tables/<table>/_compacted/`` listed by a manifest, and
a pending part overrides the compacted rows of its call (``data_catalog.compacted``).  Every
read here (``keys``, ``has``, ``read``, ``stamp``) and every SQL view sees both.

Write failures (disk full, permission denied) raise ``CatalogIOError``: a ``CatalogError``
and an ``OSError`` whose message is one line naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_catalog import compacted
from data_catalog.schemas import TABLES, TableSchema

log = logging.getLogger("data_catalog")

LEGACY_DB = "catalog.duckdb"
STALE_TMP_AGE_S = 3600.0
TMP_GLOB = ".*.tmp"


class CatalogError(RuntimeError):
    """A catalog operation failed (bad table, bad schema, unwritable folder, refused query)."""


class CatalogIOError(CatalogError, OSError):
    """Writing a catalog file failed in the operating system (disk full, permission denied)."""

    def __init__(self, path: str | os.PathLike[str], exc: BaseException):
        code = getattr(exc, "errno", None)
        reason = os.strerror(code) if isinstance(code, int) and code > 0 else first_line(exc)
        super().__init__(f"{path}: cannot write ({reason})")
        self.errno, self.path = code, str(path)

    def __str__(self) -> str:  # OSError's own would print "[Errno 28] None: 'path'"
        return str(self.args[0])


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    for c in spec.optional:
        if c not in table.column_names:
            table = table.append_column(c, pa.nulls(table.num_rows, spec.schema.field(c).type))
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


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (no window in which
    another thread creates files with a wrong mode)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_replace(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Create or replace ``path`` atomically: ``write(tmp)`` fills a temporary file in the same
    folder, which gets the umask's mode and is then renamed over ``path``.  On any error the
    temporary file is removed; OS errors raise ``CatalogIOError`` (one line naming ``path``)."""
    path = Path(path)
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError) and not isinstance(exc, CatalogError):
            raise CatalogIOError(path, exc) from exc
        raise
    return path


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temporary file in the same folder."""
    atomic_replace(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_part(path: Path) -> pa.Table:
    """One Parquet part; an unreadable one raises ``CatalogError`` naming it."""
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise
    except PermissionError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror or 'permission denied'})") from exc
    except (OSError, pa.ArrowException) as exc:
        raise CatalogError(f"{path}: unreadable Parquet part ({first_line(exc)}); "
                           "run `speechfin catalog verify --repair`") from exc


def part_readable(path: Path) -> bool:
    """Cheap check: the file exists and its Parquet footer can be read."""
    try:
        pq.read_metadata(path)
        return True
    except (OSError, pa.ArrowException):
        return False


_CLEANED: set[Path] = set()


class Catalog:
    """A folder of Parquet parts; SQL views over them are built per connection (``query``)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()

    # -- paths -----------------------------------------------------------------------
    @property
    def tables_root(self) -> Path:
        return self.root / "tables"

    def table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise CatalogError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
        return self.tables_root / table

    def part_path(self, table: str, key: str) -> Path:
        return self.table_dir(table) / f"{_safe_key(key)}.parquet"

    @staticmethod
    def per_call(table: str) -> bool:
        """Partitioned by call: such tables are compacted."""
        return TABLES[table].partition_by == "call_id"

    def manifest(self, table: str) -> compacted.Manifest:
        try:
            return compacted.read_manifest(self.table_dir(table))
        except compacted.ManifestError as exc:
            raise CatalogError(str(exc)) from None

    # -- writes ------------------------------------------------------------------------
    def ensure_writable(self) -> None:
        """Create the catalog folder if needed; the first call of a process for this catalog
        also removes stale temporary files of killed writers."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise CatalogError(f"{self.root}: catalog folder is read-only")
            self.tables_root.mkdir(exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"{self.root}: cannot create catalog folder ({exc.strerror or first_line(exc)})") from exc
        if self.root not in _CLEANED:
            _CLEANED.add(self.root)
            for p in self.clean_stale_temps():
                log.info("removed stale temporary file %s", p)

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
        if not self.per_call(table):
            atomic_write_parquet(arrow, path)
            return path
        try:
            lock = compacted.write_lock(path.parent)
            with lock:
                atomic_write_parquet(arrow, path)
        except OSError as exc:
            raise CatalogIOError(path, exc) from exc
        return path

    def delete(self, table: str, key: str) -> bool:
        """Remove the rows of ``key`` (its part, and its rows in compacted files)."""
        path = self.part_path(table, key)
        try:
            forgot = self.per_call(table) and compacted.forget(path.parent, key)
            with (compacted.write_lock(path.parent) if self.per_call(table) else contextlib.nullcontext()):
                path.unlink()
            return True
        except FileNotFoundError:
            return forgot
        except OSError as exc:
            raise CatalogIOError(path, exc) from exc

    def compact(self, full: bool = False, tables: list[str] | None = None) -> list[compacted.CompactionResult]:
        """Compact the pending parts of complete calls of every per-call table (``calls`` last);
        ``full`` also merges the older compacted files into one per table."""
        self.ensure_writable()
        complete = self.keys("calls")
        out = []
        for table in sorted(tables or [t for t in TABLES if self.per_call(t)], key=lambda t: t == "calls"):
            if self.table_dir(table).is_dir():
                try:
                    out.append(compacted.compact_table(self.table_dir(table), set(complete), full))
                except compacted.ManifestError as exc:
                    raise CatalogError(str(exc)) from None
                except OSError as exc:
                    raise CatalogIOError(self.table_dir(table), exc) from exc
        return out

    def pending_calls(self) -> int:
        """Complete calls with a part not yet compacted (in ``calls``)."""
        return len(compacted.list_parts(self.table_dir("calls")))

    def stale_temps(self, max_age_s: float = STALE_TMP_AGE_S) -> list[Path]:
        """Temporary files of writers older than ``max_age_s`` (a live writer's are newer)."""
        if not self.tables_root.is_dir():
            return []
        cutoff = time.time() - max_age_s
        out = []
        for p in sorted(self.tables_root.glob(f"*/{TMP_GLOB}")):
            try:
                if p.stat().st_mtime < cutoff:
                    out.append(p)
            except FileNotFoundError:  # its writer finished meanwhile
                pass
        return out

    def clean_stale_temps(self, max_age_s: float = STALE_TMP_AGE_S) -> list[Path]:
        """Remove ``stale_temps``; return what was removed (unremovable ones are skipped)."""
        removed = []
        for p in self.stale_temps(max_age_s):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
        return removed

    # -- reads -------------------------------------------------------------------------
    def has(self, table: str, key: str) -> bool:
        if self.part_path(table, key).exists():
            return True
        return self.per_call(table) and key in self.manifest(table).location()

    def keys(self, table: str) -> list[str]:
        """Keys of ``table``: of its parts, and for per-call tables of its compacted calls
        (every call with rows, complete or not)."""
        d = self.table_dir(table)
        if not self.per_call(table):
            return sorted(p.stem for p in d.glob("*.parquet")) if d.exists() else []
        return sorted(self.snapshot([table])[table].keys())

    def snapshot(self, tables: list[str]) -> dict[str, compacted.Snapshot]:
        """Consistent parts-and-manifest listings of per-call tables (``compacted.snapshot``)."""
        try:
            snaps = compacted.snapshot([self.table_dir(t) for t in tables])
        except compacted.ManifestError as exc:
            raise CatalogError(str(exc)) from None
        return {t: snaps[self.table_dir(t)] for t in tables}

    def stamp(self, table: str, key: str) -> int | None:
        """The version of ``key``'s rows: its part's mtime (ns), or for a compacted call the
        mtime of the part it was compacted from; None if there are no rows."""
        try:
            return self.part_path(table, key).stat().st_mtime_ns
        except FileNotFoundError:
            pass
        if self.per_call(table):
            f = self.manifest(table).location().get(key)
            if f is not None:
                return f.stamps[key]
        return None

    def complete_keys(self, table: str) -> list[str]:
        """Keys of complete calls only, for per-call tables (their ``calls`` part exists)."""
        keys = self.keys(table)
        if table != "calls" and TABLES[table].partition_by == "call_id":
            done = set(self.keys("calls"))
            keys = [k for k in keys if k in done]
        return keys

    def read(self, table: str, key: str | None = None, complete_only: bool = False,
             skip_unreadable: bool = False) -> pa.Table:
        """One part, or all parts of a table concatenated (empty table with schema if none);
        ``complete_only`` leaves out the parts of incomplete calls, as the SQL views do.  An
        unreadable part raises ``CatalogError``, or with ``skip_unreadable`` is left out with a
        warning."""
        spec = TABLES[table]
        if key is not None:
            return self._read_key(table, key)
        if self.per_call(table):
            return self._read_per_call(table, complete_only, skip_unreadable)
        parts = []
        for k in self.keys(table):
            try:
                parts.append(read_part(self.part_path(table, k)))
            except FileNotFoundError:  # deleted since the listing
                continue
            except CatalogError as exc:
                if not skip_unreadable:
                    raise
                log.warning("skipped %s", exc)
        return _concat(parts, spec)

    def _read_key(self, table: str, key: str) -> pa.Table:
        path = self.part_path(table, key)
        for _ in range(3):
            try:
                return read_part(path)
            except FileNotFoundError:
                if not self.per_call(table):
                    break
            m = self.manifest(table)
            f = m.location().get(key)
            if f is not None:
                try:
                    return _read_compacted(m.path_of(f), [("call_id", "=", key)])
                except FileNotFoundError:  # dropped by a full compaction since the manifest was read
                    continue
            if not path.exists():
                break
        raise CatalogError(f"{path}: no {table!r} rows for {key!r}")

    def _read_per_call(self, table: str, complete_only: bool, skip_unreadable: bool) -> pa.Table:
        import pyarrow.compute as pc

        for _ in range(3):
            snaps = self.snapshot([table, "calls"] if complete_only and table != "calls" else [table])
            keys = snaps["calls"].keys() if complete_only and table != "calls" else None
            part_paths, files = snaps[table].sources(keys)
            pieces = []
            try:
                for path, leave_out in files:
                    t = _read_compacted(path)
                    if leave_out:
                        t = t.filter(pc.invert(pc.is_in(t.column("call_id"), pa.array(sorted(leave_out)))))
                    pieces.append(t)
            except FileNotFoundError:  # dropped by a full compaction since the listing: list again
                continue
            except CatalogError as exc:
                if not skip_unreadable:
                    raise
                log.warning("skipped %s", exc)
            for path in part_paths:
                try:
                    pieces.append(read_part(path))
                except FileNotFoundError:  # compacted or deleted since the listing
                    if path.stem in self.manifest(table).location():
                        break
                except CatalogError as exc:
                    if not skip_unreadable:
                        raise
                    log.warning("skipped %s", exc)
            else:
                return _concat(pieces, TABLES[table])
        raise CatalogError(f"{self.table_dir(table)}: the table kept changing while it was read; try again")

    # -- SQL ---------------------------------------------------------------------------
    def refresh_views(self) -> None:
        """Kept for callers: views are built per connection now, so there is nothing to refresh.
        Removes a ``catalog.duckdb`` of older versions (its views held absolute paths, so a copy
        read the original's data).  Never raises."""
        for name in (LEGACY_DB, LEGACY_DB + ".wal"):
            try:
                (self.root / name).unlink()
            except OSError:
                pass

    def query(self, sql: str, **limits: Any) -> pa.Table:
        """Run one read-only query (``data_catalog.query.open_query``) and return all its rows."""
        from data_catalog.query import open_query

        with open_query(self.root, sql, **limits) as result:
            return result.read_all()


def _concat(pieces: list[pa.Table], spec: TableSchema) -> pa.Table:
    if not pieces:
        return spec.schema.empty_table()
    return pa.concat_tables(pieces, promote_options="permissive")


def _read_compacted(path: Path, filters: list | None = None) -> pa.Table:
    """A compacted file (or the rows of one call of it: row groups are pruned by statistics)."""
    try:
        return pq.read_table(path, filters=filters)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise CatalogError(f"{path}: unreadable compacted file ({first_line(exc)}); "
                           "run `speechfin catalog verify`") from exc


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
