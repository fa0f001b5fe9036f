"""speechfin catalog: table schemas, atomic Parquet writes, DuckDB views, read-only SQL."""

from data_catalog.schemas import TABLES, TableSchema
from data_catalog.store import Catalog, CatalogError, atomic_write_parquet

__all__ = ["TABLES", "TableSchema", "Catalog", "CatalogError", "atomic_write_parquet"]
