"""Reading user tables (CSV or Parquet) with one-line errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from finance.errors import FinanceError


def read_table(path: str | Path, what: str, error: type[FinanceError] = FinanceError, empty_ok: bool = False,
               **csv_kwargs) -> pd.DataFrame:
    """Read ``path`` (Parquet by suffix ``.parquet``/``.pq``, else CSV); ``what`` names it in errors."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: {what} file not found")
    try:
        df = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path, **csv_kwargs)
    except pd.errors.EmptyDataError:
        raise error(f"{path}: {what} file is empty") from None
    except Exception as exc:  # noqa: BLE001 - any reader error becomes one clear line
        raise error(f"{path}: cannot read the {what} file ({str(exc).splitlines()[0]})") from exc
    if df.empty and not empty_ok:
        raise error(f"{path}: {what} file has no rows")
    return df
