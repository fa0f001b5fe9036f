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


def parse_dates(values: pd.Series, origin: str, column: str, error: type[FinanceError] = FinanceError,
                utc: bool = False) -> pd.Series:
    """The ISO 8601 dates or times of a user column (``2019-05-01``, ``2019-05-01T14:30:00Z``).

    Anything else is refused, naming the file, the line (the CSV line: the header is line 1)
    and the value: ``01/05/2019`` could be 1 May or 5 January, and reading it either way
    silently moves the event.  Columns that are already datetimes (Parquet) pass as they are.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=utc) if utc else values
    s = values.astype("string").str.strip().replace("", pd.NA)
    try:
        return pd.to_datetime(s, format="ISO8601", utc=utc)
    except (ValueError, TypeError, OverflowError):
        pass
    for pos, v in enumerate(s):
        if pd.isna(v):
            continue
        try:
            pd.to_datetime(v, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            raise error(f"{origin}: line {pos + 2}: {column} {v!r} is not an ISO 8601 date (use YYYY-MM-DD, "
                        f"e.g. 2019-05-01; orders such as 01/05/2019 are ambiguous)") from None
    raise error(f"{origin}: column {column!r} mixes date formats (use ISO 8601 throughout, e.g. 2019-05-01)")
