"""speechfin catalog: table schemas, atomic Parquet parts, per-connection DuckDB views, read-only SQL.

``store`` writes and reads the parts (layout in its docstring), ``query`` runs one sandboxed
read-only query over them, ``verify`` checks every part and repairs what is broken.
"""

from data_catalog.schemas import TABLES, TableSchema
from data_catalog.store import Catalog, CatalogError, CatalogIOError, atomic_replace, atomic_write_parquet

__all__ = ["TABLES", "TableSchema", "Catalog", "CatalogError", "CatalogIOError", "atomic_replace",
           "atomic_write_parquet"]
