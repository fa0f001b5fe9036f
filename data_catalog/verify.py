"""``speechfin catalog verify [--repair]``: check every part of a catalog, drop what is broken.

A part is good when it is readable Parquet, has its table's columns with their types (plus
declared extras), and every row's partition key is the file name.  A complete call (one with a
``calls`` part) also has every part in ``schemas.REQUIRED_CALL_PARTS``.

Compacted files (``data_catalog.compacted``) are checked the same way: readable, the table's
schema, and only calls their manifest lists.  A broken one is repaired by dropping the calls
it holds (the next run reprocesses them); a file no manifest lists (a killed compaction's) is
removed once it is an hour old.

``--repair`` removes a broken part; for a per-call table it removes the whole call, its ``calls``
part (the completion marker) first, so the next ``speechfin run`` reprocesses the call.  It also
removes temporary files and parts of incomplete calls older than an hour (a killed writer's;
a live writer's are newer) and a ``catalog.duckdb`` of older versions.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_catalog import compacted
from data_catalog.schemas import REQUIRED_CALL_PARTS, TABLES
from data_catalog.store import LEGACY_DB, STALE_TMP_AGE_S, Catalog, CatalogError, first_line


@dataclass
class Problem:
    path: Path
    problem: str
    repair: str = ""  # what --repair did, '' if nothing

    def line(self) -> str:
        return f"{self.path}: {self.problem}" + (f"; {self.repair}" if self.repair else "")


@dataclass
class Report:
    root: Path
    n_parts: int
    problems: list[Problem]

    @property
    def n_left(self) -> int:
        return sum(not p.repair for p in self.problems)

    def summary(self) -> str:
        fixed = len(self.problems) - self.n_left
        return (f"{self.root}: {self.n_parts} parts checked, {len(self.problems)} problem(s)"
                + (f", {fixed} repaired" if fixed else ""))


def check_part(table: str, path: Path, keys: set[str] | None = None) -> str:
    """What is wrong with the part at ``path`` of ``table`` ('' if nothing); a compacted file
    may hold the calls ``keys`` (its manifest's), a part only its own name's."""
    spec = TABLES[table]
    try:
        data = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable Parquet ({first_line(exc)})"
    for f in spec.schema:
        if f.name not in data.column_names:
            if f.name in spec.optional:   # a part written before the column existed: read as NULL
                continue
            return f"column {f.name!r} is missing"
        got = data.schema.field(f.name).type
        if not got.equals(f.type):
            return f"column {f.name!r} is {got}, not {f.type}"
    extras = [c for c in data.column_names if c not in spec.columns]
    bad = [c for c in extras if not any(c.startswith(p) for p in spec.extra_prefixes)]
    if bad:
        return f"unknown columns {bad}"
    found = set(data.column(spec.partition_by).to_pylist())
    if keys is not None:
        if found - keys:
            return f"rows for {sorted(map(str, found - keys))[:3]} that its manifest does not list"
    elif data.num_rows and found != {path.stem}:
        return f"rows for {sorted(map(str, found))[:3]} in the part of {path.stem!r}"
    return ""


def call_parts(catalog: Catalog, call_id: str) -> list[Path]:
    """Every part of a call, its ``calls`` part (the completion marker) first."""
    tables = ["calls"] + [t for t, spec in TABLES.items() if spec.partition_by == "call_id" and t != "calls"]
    return [p for p in (catalog.part_path(t, call_id) for t in tables) if p.exists()]


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def verify(root: str | Path, repair: bool = False, stale_age_s: float = STALE_TMP_AGE_S) -> Report:
    """Check every part of the catalog at ``root``; with ``repair``, drop what is broken."""
    catalog = Catalog(root)
    if not catalog.tables_root.is_dir():
        raise CatalogError(f"{catalog.root}: no catalog here (no tables/ folder)")
    problems: list[Problem] = []

    def found(path: Path, problem: str, fix: list[Path] | None = None, done: str = "", call: str = "") -> None:
        # a dropped call's calls row goes first, also from a compacted file
        ok = repair and fix is not None and (not call or _forget_call(catalog, call)) and all(_remove(p) for p in fix)
        problems.append(Problem(path, problem, done if ok else ""))

    legacy = catalog.root / LEGACY_DB
    if legacy.exists():
        found(legacy, "view database of an older version (not read any more)", [legacy], "removed")
    for d in sorted(p for p in catalog.tables_root.iterdir() if p.is_dir() and p.name not in TABLES):
        found(d, "not a table of the catalog (left alone)")
    for tmp in catalog.stale_temps(stale_age_s):
        found(tmp, "temporary file of a killed writer", [tmp], "removed")

    n_files = 0
    for table in TABLES:
        if not catalog.per_call(table) or not catalog.table_dir(table).is_dir():
            continue
        tdir = catalog.table_dir(table)
        try:
            m = compacted.read_manifest(tdir)
        except compacted.ManifestError as exc:
            raise CatalogError(str(exc)) from None
        for f in m.files:
            n_files += 1
            path = m.path_of(f)
            problem = check_part(table, path, set(f.stamps)) if path.exists() else "listed in the manifest, missing"
            if problem:
                lost = sorted(f.live())
                ok = repair and _drop_calls(catalog, table, lost)
                problems.append(Problem(path, problem, f"dropped {len(lost)} call(s): the next run reprocesses them"
                                        if ok else ""))
        for path in compacted.unlisted_files(tdir):
            old = _mtime(path) < time.time() - stale_age_s
            found(path, "compacted file no manifest lists (a killed compaction's)"
                  + ("" if old else ", written in the last hour (a compaction in progress?), left alone"),
                  [path] if old else None, "removed")

    parts = [(table, p.stem) for table in TABLES if catalog.table_dir(table).is_dir()
             for p in sorted(catalog.table_dir(table).glob("*.parquet"))]
    for table, key in parts:
        path = catalog.part_path(table, key)
        if not path.exists():  # gone: repaired with its call above
            continue
        if not os.access(path, os.R_OK):  # a colleague's part, not a broken one: never removed
            found(path, "not readable by this user (permission denied); left alone")
            continue
        problem = check_part(table, path)
        if not problem:
            continue
        if TABLES[table].partition_by == "call_id":
            found(path, problem, call_parts(catalog, key), f"dropped call {key}: the next run reprocesses it", key)
        else:
            found(path, problem, [path], "dropped")

    complete = set(catalog.keys("calls"))  # after the repairs above
    cutoff = time.time() - stale_age_s
    for key in sorted(complete):
        missing = [t for t in REQUIRED_CALL_PARTS if not catalog.has(t, key)]
        if missing:
            found(catalog.part_path("calls", key), f"complete call without its {', '.join(missing)} part(s)",
                  call_parts(catalog, key), f"dropped call {key}: the next run reprocesses it", key)
    orphans: dict[str, list[Path]] = {}
    for table, spec in TABLES.items():
        if spec.partition_by == "call_id" and table != "calls":
            loc = catalog.manifest(table).location()
            for key in catalog.keys(table):
                if key in loc and key not in complete:  # compacted rows of a dropped call
                    found(catalog.table_dir(table) / compacted.COMPACT_DIR / loc[key].name,
                          f"rows of call {key}, which is not complete (invisible to queries)",
                          [] if repair and catalog.delete(table, key) else None, "removed")
                elif key not in complete:
                    orphans.setdefault(key, []).append(catalog.part_path(table, key))
    for key, paths in sorted(orphans.items()):
        old = all(_mtime(p) < cutoff for p in paths)
        found(paths[0].parent.parent / f"*/{key}.parquet",
              f"incomplete call {key} ({len(paths)} part(s), no calls part): invisible to queries"
              + ("" if old else ", written in the last hour (a run in progress?), left alone"),
              paths if old else None, "removed")
    return Report(catalog.root, len(parts) + n_files, problems)


def _forget_call(catalog: Catalog, call_id: str) -> bool:
    try:
        compacted.forget(catalog.table_dir("calls"), call_id)
        return True
    except (OSError, compacted.ManifestError):
        return False


def _drop_calls(catalog: Catalog, table: str, keys: list[str]) -> bool:
    """Drop calls whose rows are lost (their ``calls`` rows first), so that they are reprocessed."""
    try:
        for k in keys:
            catalog.delete("calls", k)
            catalog.delete(table, k)
        return True
    except CatalogError:
        return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
