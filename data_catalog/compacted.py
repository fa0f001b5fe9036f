"""Compaction of per-call tables: many small parts become a few large, immutable files.

Layout, per table partitioned by ``call_id``::

    tables/<table>/<call_id>.parquet             pending parts: the write path, one per call
    tables/<table>/_compacted/<name>.parquet      compacted files (immutable, rows sorted by call_id)
    tables/<table>/_compacted/manifest.json       which calls each compacted file holds

Rules that keep the catalog's guarantees:

- **A pending part wins.**  A call's rows are its pending part if there is one, else the rows of
  the one compacted file whose manifest entry lists the call as live.  So re-processing a call
  is still one atomic ``os.replace`` of its part, and a compacted call that is written again is
  simply overridden until the next compaction.
- **Compaction never loses a write.**  ``compact`` copies the pending parts of complete calls
  into a new file (DuckDB, streamed; ``full`` also merges every older file, sorted by call_id),
  then, holding the table's write lock exclusively, checks each part's identity (inode, size,
  mtime) again: a part unchanged since it was read is covered by the new file and removed, a
  part that was rewritten meanwhile stays and wins.  Writers hold the write lock shared while
  they replace or delete a part (``write_lock``), so no part can change between that check
  and its removal.  Only one compaction of a table runs at a time (``compact_lock``).
- **The manifest is replaced atomically** (temporary file and ``os.replace``); a crash before it
  leaves an unlisted file (removed by the next compaction once it is an hour old), a crash after
  it leaves parts identical to the compacted rows (harmless: the part wins; compacted again next
  time).  Files dropped by a full compaction are removed an hour later, so that a reader that
  listed them can finish.
- **Readers take a snapshot** (``snapshot``): the manifests and the parts, listed again if a
  manifest changed meanwhile.  Nothing a reader does takes a lock.

Locks are ``flock`` locks on files in ``CATALOG/.locks/`` (``<table>.write.lock``,
``<table>.compact.lock``):
local file systems and NFSv4 honour them; an object store does not (run one writer per catalog
there).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

COMPACT_DIR = "_compacted"
MANIFEST = "manifest.json"
FORMAT = 1  # the manifest format this version reads and writes
MAX_FILES = 8  # a compaction that would leave more compacted files than this merges them all


class ManifestError(RuntimeError):
    """A manifest that this version cannot read (newer format, broken JSON)."""


@dataclass
class CompactedFile:
    """One immutable compacted file and the calls it holds."""

    name: str
    stamps: dict[str, int]  # call_id -> mtime_ns of the part it was compacted from (the rows' version)
    removed: set[str] = field(default_factory=set)  # calls held by a later file, or deleted

    def live(self) -> frozenset[str]:
        """Calls whose rows are read from this file (never changed after creation: cached)."""
        if self._live is None:
            self._live = frozenset(self.stamps) - self.removed
        return self._live

    _live: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

    def to_json(self) -> dict:
        return {"name": self.name, "stamps": self.stamps, "removed": sorted(self.removed)}


@dataclass
class Manifest:
    """The compacted files of one table; ``identity`` is the manifest file's (inode, mtime_ns,
    size) when read, None if there is none."""

    folder: Path  # tables/<table>/_compacted
    files: list[CompactedFile] = field(default_factory=list)
    identity: tuple[int, int, int] | None = None

    def location(self) -> dict[str, CompactedFile]:
        """Live call_id -> the compacted file holding its rows (cached: a manifest is not changed
        once read)."""
        if self._location is None:
            self._location = {k: f for f in self.files for k in f.live()}
        return self._location

    _location: dict[str, CompactedFile] | None = field(default=None, init=False, repr=False, compare=False)

    def path_of(self, f: CompactedFile) -> Path:
        return self.folder / f.name


def file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


_CACHE: dict[Path, Manifest] = {}


def read_manifest(table_dir: Path) -> Manifest:
    """The table's manifest (an empty one if the table was never compacted); cached per process
    while the file is unchanged."""
    folder = table_dir / COMPACT_DIR
    path = folder / MANIFEST
    ident = file_identity(path)
    if ident is None:
        return Manifest(folder)
    cached = _CACHE.get(path)
    if cached is not None and cached.identity == ident:
        return cached
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:  # replaced between the stat and the read: read the new one
        return read_manifest(table_dir)
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: unreadable compaction manifest ({exc}); "
                            "run `speechfin catalog verify`") from exc
    if raw.get("format") != FORMAT:
        raise ManifestError(f"{path}: compaction manifest format {raw.get('format')!r}, this speechfin reads "
                            f"format {FORMAT}; upgrade speechfin to read this catalog")
    files = [CompactedFile(f["name"], {k: int(v) for k, v in f["stamps"].items()}, set(f["removed"]))
             for f in raw["files"]]
    m = Manifest(folder, files, ident)
    _CACHE[path] = m
    return m


def write_manifest(m: Manifest) -> None:
    from data_catalog.store import atomic_replace

    text = json.dumps({"format": FORMAT, "files": [f.to_json() for f in m.files]}, separators=(",", ":"))
    atomic_replace(m.folder / MANIFEST, lambda tmp: Path(tmp).write_text(text))


@contextlib.contextmanager
def flock(path: Path, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    """An ``flock`` lock on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


def _lock_path(table_dir: Path, what: str) -> Path:
    return table_dir.parent.parent / ".locks" / f"{table_dir.name}.{what}.lock"  # CATALOG/.locks/


def write_lock(table_dir: Path, exclusive: bool = False):
    """Held shared by a writer replacing or deleting a part, exclusively by a compaction while it
    removes the parts it covered."""
    return flock(_lock_path(table_dir, "write"), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)


def compact_lock(table_dir: Path):
    """One compaction (or manifest change) of a table at a time."""
    return flock(_lock_path(table_dir, "compact"), fcntl.LOCK_EX)


@dataclass
class Snapshot:
    """What a reader sees of one table: pending parts (call_id -> path) and compacted files."""

    parts: dict[str, Path]
    manifest: Manifest

    def keys(self) -> set[str]:
        return set(self.parts).union(self.manifest.location())

    def sources(self, keys: set[str] | None = None) -> tuple[list[Path], list[tuple[Path, set[str]]]]:
        """Parts to read, and compacted files with the call_ids to leave out of each (removed,
        overridden by a part, or not in ``keys``); only calls in ``keys`` if given."""
        parts = {k: p for k, p in self.parts.items() if keys is None or k in keys}
        files = []
        for f in self.manifest.files:
            live = f.live()
            if keys is not None and not live <= keys:
                live = live & keys
            if parts:
                live = live - set(parts)
            if live:
                files.append((self.manifest.path_of(f), f.removed | (set(f.live()) - live) if len(live) < len(f.live())
                              else set(f.removed)))
        return [parts[k] for k in sorted(parts)], files


def list_parts(table_dir: Path) -> dict[str, Path]:
    return {p.stem: p for p in table_dir.glob("*.parquet")} if table_dir.is_dir() else {}


def snapshot(table_dirs: list[Path]) -> dict[Path, Snapshot]:
    """Consistent snapshots of several tables: if a compaction changed a manifest while the
    parts were listed, list again (a part it removed is then in the manifest read)."""
    for _ in range(20):
        before = {d: file_identity(d / COMPACT_DIR / MANIFEST) for d in table_dirs}
        snaps = {d: Snapshot(list_parts(d), read_manifest(d)) for d in table_dirs}
        if all(file_identity(d / COMPACT_DIR / MANIFEST) == before[d] == snaps[d].manifest.identity
               for d in table_dirs):
            return snaps
        time.sleep(0.01)
    return snaps


@dataclass
class CompactionResult:
    table: str
    calls_compacted: int = 0
    parts_removed: int = 0
    parts_kept: int = 0  # rewritten while the compaction ran: they stay and win
    files_before: int = 0
    files_after: int = 0
    rows_written: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.table}: {self.calls_compacted} call(s) compacted, {self.parts_removed} part(s) removed"
                + (f", {self.parts_kept} rewritten meanwhile (kept)" if self.parts_kept else "")
                + f", files {self.files_before} -> {self.files_after}, {self.rows_written} rows written "
                  f"in {self.seconds:.1f} s")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def select_sql(parts: list[Path], files: list[tuple[Path, set[str]]], key: str = "call_id",
               files_first: bool = False) -> str | None:
    """One SELECT over parts and compacted files (by column name: older files read a column added
    later as NULL); None if there is nothing to read."""
    pieces = []
    if parts:
        pieces.append(f"SELECT * FROM read_parquet([{', '.join(_literal(p.as_posix()) for p in parts)}], "
                      "union_by_name=true)")
    for path, leave_out in files:
        where = (f' WHERE "{key}" NOT IN ({", ".join(map(_literal, sorted(leave_out)))})' if leave_out else "")
        pieces.append(f"SELECT * FROM read_parquet({_literal(path.as_posix())}){where}")
    if not pieces:
        return None
    if files_first and parts:
        pieces = pieces[1:] + pieces[:1]
    return " UNION ALL BY NAME ".join(f"({p})" for p in pieces)


def compact_table(table_dir: Path, complete: set[str], full: bool = False,
                  stale_age_s: float = 3600.0) -> CompactionResult:
    """Compact the pending parts of ``complete`` calls of one table (module docstring)."""
    import duckdb

    t0 = time.perf_counter()
    res = CompactionResult(table_dir.name)
    folder = table_dir / COMPACT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with compact_lock(table_dir):
        m = read_manifest(table_dir)
        res.files_before = len(m.files)
        parts = {k: p for k, p in list_parts(table_dir).items() if k in complete}
        idents = {k: file_identity(p) for k, p in parts.items()}
        parts = {k: p for k, p in parts.items() if idents[k] is not None}
        full = full or len(m.files) + 1 > MAX_FILES
        if not parts and not (full and len(m.files) > 1):
            _remove_stale(folder, m, stale_age_s)
            res.files_after, res.seconds = len(m.files), time.perf_counter() - t0
            return res
        old = m.files if full else []
        sources = [parts[k] for k in sorted(parts)]
        files = [(m.path_of(f), f.removed | (f.live() & set(parts))) for f in old]
        sql = select_sql(sources, files, files_first=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        con = duckdb.connect(":memory:", config={"threads": 2, "memory_limit": "4GB",
                                                 "preserve_insertion_order": True})
        try:
            # no sort: parts are read in call_id order and older files are sorted runs, so each
            # row group spans few calls and its min/max statistics prune one-call lookups
            con.execute(f"COPY ({sql}) TO {_literal(tmp.as_posix())} "
                        "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
            res.rows_written = con.execute(f"SELECT count(*) FROM read_parquet({_literal(tmp.as_posix())})").fetchone()[0]
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            con.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / name)
        stamps = {k: idents[k][1] for k in parts}
        for f in old:
            for k in f.live():
                stamps.setdefault(k, f.stamps[k])
        new = CompactedFile(name, stamps)
        with write_lock(table_dir, exclusive=True):
            covered = [k for k in parts if file_identity(parts[k]) == idents[k]]
            new.removed = set(parts) - set(covered)  # rewritten or deleted meanwhile: the part (or nothing) wins
            old_names = {f.name for f in old}
            kept = [CompactedFile(f.name, f.stamps, f.removed | (set(stamps) & f.live()))
                    for f in m.files if f.name not in old_names]  # copies: the cached manifest stays as read
            m2 = Manifest(folder, kept + [new], None)
            write_manifest(m2)
            for k in covered:
                with contextlib.suppress(FileNotFoundError):
                    parts[k].unlink()
        res.calls_compacted, res.parts_removed, res.parts_kept = len(stamps), len(covered), len(parts) - len(covered)
        res.files_after = len(m2.files)
        _remove_stale(folder, read_manifest(table_dir), stale_age_s)
    res.seconds = time.perf_counter() - t0
    return res


def _remove_stale(folder: Path, m: Manifest, age_s: float) -> list[Path]:
    """Compacted files no manifest lists (dropped by a full compaction, or a killed one's), once
    older than ``age_s``: a reader that listed them has finished."""
    listed = {f.name for f in m.files}
    cutoff = time.time() - age_s
    out = []
    for p in folder.glob("*.parquet") if folder.is_dir() else []:
        if p.name not in listed:
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    out.append(p)
    return out


def unlisted_files(table_dir: Path) -> list[Path]:
    m = read_manifest(table_dir)
    listed = {f.name for f in m.files}
    folder = table_dir / COMPACT_DIR
    return sorted(p for p in folder.glob("*.parquet") if p.name not in listed) if folder.is_dir() else []


def forget(table_dir: Path, key: str) -> bool:
    """Mark ``key`` removed in the compacted files (a deleted call); True if it was live there."""
    if not (table_dir / COMPACT_DIR / MANIFEST).exists():
        return False
    with compact_lock(table_dir):
        m = read_manifest(table_dir)
        files = [CompactedFile(f.name, f.stamps, f.removed | ({key} & f.live())) for f in m.files]
        hit = any(key in f.live() for f in m.files)
        if hit:
            write_manifest(Manifest(m.folder, files))
        return hit
