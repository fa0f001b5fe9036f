"""Fama-French 3-factor and Carhart 4-factor data from files.

A factor file (CSV or Parquet) has a ``date`` column and the factor columns
``mkt_rf, smb, hml, rf`` (+ ``mom`` for Carhart).  Ken French's spellings are accepted
(``Mkt-RF``, ``SMB``, ``HML``, ``RF``, ``Mom``/``UMD``/``WML``).  Dates may be ISO dates,
``YYYYMMDD`` (daily files) or ``YYYYMM`` (monthly files).  French publishes percent, so
``units="percent"`` (the default) divides by 100; use ``units="decimal"`` otherwise.

Monthly factors are matched to trading days by year and month; daily ones by date.
``arch``'s offline monthly French data (1926-2018, no momentum) is loaded by
``load_arch_factors()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finance.errors import PriceDataError
from finance.tables import parse_dates, read_table

FF3 = ["mkt_rf", "smb", "hml"]
CARHART = FF3 + ["mom"]
_ALIASES = {"mkt-rf": "mkt_rf", "mktrf": "mkt_rf", "mkt_rf": "mkt_rf", "smb": "smb", "hml": "hml", "rf": "rf",
            "mom": "mom", "umd": "mom", "wml": "mom", "date": "date"}


@dataclass(frozen=True)
class Factors:
    """Factor returns in decimals. ``data``: index = period start dates, columns ⊇ mkt_rf, smb, hml, rf."""

    data: pd.DataFrame
    monthly: bool
    origin: str

    def align(self, dates: pd.DatetimeIndex, columns: list[str]) -> np.ndarray:
        """Factor values for each trading day: array (len(dates), len(columns)), NaN where missing."""
        missing = [c for c in columns if c not in self.data.columns]
        if missing:
            raise PriceDataError(f"{self.origin}: missing factor column(s) {missing} (has {list(self.data.columns)})")
        if self.monthly:
            keys = pd.DatetimeIndex(dates).to_period("M")
            table = self.data[columns].set_axis(self.data.index.to_period("M"))
        else:
            keys, table = pd.DatetimeIndex(dates), self.data[columns]
        return table.reindex(keys).to_numpy(dtype=float)


def _parse_dates(col: pd.Series, origin: str) -> tuple[pd.DatetimeIndex, bool]:
    s = col.astype(str).str.strip()
    if s.str.fullmatch(r"\d{6}").all():
        return pd.DatetimeIndex(pd.to_datetime(s, format="%Y%m")), True
    if s.str.fullmatch(r"\d{8}").all():
        return pd.DatetimeIndex(pd.to_datetime(s, format="%Y%m%d")), False
    return pd.DatetimeIndex(parse_dates(col, origin, "date", PriceDataError)).normalize(), False


def factors_from_frame(df: pd.DataFrame, origin: str, units: str = "percent") -> Factors:
    if units not in ("percent", "decimal"):
        raise PriceDataError(f"{origin}: factor units must be 'percent' or 'decimal', not {units!r}")
    df = df.rename(columns=lambda c: _ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    if "date" not in df.columns:
        raise PriceDataError(f"{origin}: factor file needs a 'date' column")
    missing = [c for c in FF3 + ["rf"] if c not in df.columns]
    if missing:
        raise PriceDataError(f"{origin}: missing factor column(s) {missing} (need mkt_rf, smb, hml, rf[, mom])")
    dates, monthly = _parse_dates(df["date"], origin)
    cols = [c for c in FF3 + ["rf", "mom"] if c in df.columns]
    values = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if units == "percent":
        values = values / 100.0
    data = pd.DataFrame(values, index=dates, columns=cols)
    if data.index.duplicated().any():
        raise PriceDataError(f"{origin}: duplicate factor dates (first {data.index[data.index.duplicated()][0].date()})")
    return Factors(data.sort_index(), monthly, origin)


def load_factors(path: str | Path, units: str = "percent") -> Factors:
    return factors_from_frame(read_table(path, "factor", PriceDataError), str(path), units)


def load_arch_factors() -> Factors:
    """``arch``'s monthly Fama-French data (Mkt-RF, SMB, HML, RF in percent, 1926-07 to 2018)."""
    import gzip

    import arch.data.frenchdata as fd

    with gzip.open(Path(fd.__file__).parent / "frenchdata.csv.gz", "rt") as fh:
        df = pd.read_csv(fh, dtype={"Date": str})
    return factors_from_frame(df, "arch.data.frenchdata", units="percent")
