"""speechfin catalog: table schemas, atomic Parquet parts, per-connection DuckDB views, read-only SQL.

``store`` writes and reads the parts (layout in its docstring), ``compacted`` merges the
per-call parts into large files (a manifest per table; a pending part overrides its call's
compacted rows), ``query`` runs one sandboxed read-only query over both, ``verify`` checks
every file and repairs what is broken, ``stats`` counts rows and files.
"""

from data_catalog.schemas import TABLES, TableSchema
from data_catalog.store import Catalog, CatalogError, CatalogIOError, atomic_replace, atomic_write_parquet

__all__ = ["TABLES", "TableSchema", "Catalog", "CatalogError", "CatalogIOError", "atomic_replace",
           "atomic_write_parquet"]
