"""Daily price sources.

A source answers ``fetch(ticker, start, end)`` with a frame of ``PRICE_COLUMNS`` (one row
per trading day, ``date`` as naive ``datetime64``), or raises ``UnknownTickerError``.

- ``FilePriceSource``: a CSV or Parquet file with ``ticker, date, close|adj_close[, volume]``.
- ``ArchPriceSource``: the offline daily index data shipped by ``arch`` (``^GSPC``, ``^IXIC``,
  1999-2018).
- ``YFinancePriceSource``: Yahoo Finance through ``yfinance``; the HTTP seam is a
  ``requests.Session`` (tests mount a transport adapter that answers from fixtures).
- ``ComposedPriceSource``: the catalog's ``prices`` table first, then another source; what
  the other source returns is cached into the catalog.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import pandas as pd

from finance.errors import PriceDataError, PriceSourceError, UnknownTickerError
from finance.tables import parse_dates, read_table

log = logging.getLogger("speechfin.finance")

PRICE_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume", "source"]
_ALIASES = {"adj close": "adj_close", "adjclose": "adj_close", "adjusted_close": "adj_close", "symbol": "ticker"}


class PriceSource(Protocol):
    name: str

    def fetch(self, ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame: ...


def normalize_prices(df: pd.DataFrame, origin: str, source: str) -> pd.DataFrame:
    """Check and normalize a long price frame; ``origin`` names the file or table in errors.

    Exact duplicate rows are collapsed (logged); two rows for one ticker and date with
    different prices raise ``PriceDataError``.  Rows without a price are dropped (logged):
    they become gaps, and returns across a gap are missing.
    """
    df = df.rename(columns=lambda c: _ALIASES.get(str(c).strip().lower(), str(c).strip().lower()))
    missing = [c for c in ("ticker", "date") if c not in df.columns]
    if missing or not ({"close", "adj_close"} & set(df.columns)):
        need = missing + ([] if {"close", "adj_close"} & set(df.columns) else ["close|adj_close"])
        raise PriceDataError(f"{origin}: missing price column(s) {need} (need ticker, date, close|adj_close[, volume])")
    out = pd.DataFrame({"ticker": df["ticker"].astype(str).str.strip()})
    dates = parse_dates(df["date"], origin, "date", PriceDataError)
    out["date"] = (dates.dt.tz_localize(None) if _tz_aware(dates) else dates).dt.normalize()
    for c in ("open", "high", "low", "close", "adj_close", "volume"):
        out[c] = pd.to_numeric(df[c], errors="coerce").astype(float) if c in df.columns else np.nan
    if "adj_close" not in df.columns:
        out["adj_close"] = out["close"]
    if "close" not in df.columns:
        out["close"] = out["adj_close"]
    out["source"] = source
    bad = out["adj_close"] <= 0
    if bad.any():
        r = out[bad].iloc[0]
        raise PriceDataError(f"{origin}: non-positive price {r.adj_close} for {r.ticker} on {r.date.date()}")
    empty = out["adj_close"].isna()
    if empty.any():
        log.warning("%s: %d row(s) without a price skipped (they are gaps)", origin, int(empty.sum()))
        out = out[~empty]
    return _dedupe(out, origin).sort_values(["ticker", "date"], ignore_index=True)


def _tz_aware(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.DatetimeTZDtype)


def _dedupe(df: pd.DataFrame, origin: str) -> pd.DataFrame:
    dup = df.duplicated(["ticker", "date"], keep=False)
    if not dup.any():
        return df
    exact = df.duplicated(["ticker", "date", "adj_close", "volume"], keep="first")
    rest = df[~exact]
    conflict = rest[rest.duplicated(["ticker", "date"], keep=False)]
    if len(conflict):
        r = conflict.iloc[0]
        days = sorted({d.date().isoformat() for d in conflict["date"]})
        raise PriceDataError(
            f"{origin}: {r.ticker} has duplicate dates with different prices ({len(days)} date(s), first {days[0]})"
        )
    log.warning("%s: %d exact duplicate row(s) removed", origin, int(exact.sum()))
    return rest


def read_price_file(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet price file into ``PRICE_COLUMNS`` (see ``normalize_prices``)."""
    raw = read_table(path, "price", PriceDataError)
    return normalize_prices(raw, str(path), source=f"file:{Path(path).name}")


def _clip(df: pd.DataFrame, start, end) -> pd.DataFrame:
    m = (df["date"] >= pd.Timestamp(start)) & (df["date"] <= pd.Timestamp(end))
    return df.loc[m].reset_index(drop=True)


@dataclass
class FilePriceSource:
    """Prices from one CSV/Parquet file holding any number of tickers."""

    path: Path
    name: str = "file"
    _data: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def data(self) -> pd.DataFrame:
        if self._data is None:
            self._data = read_price_file(self.path)
        return self._data

    def fetch(self, ticker: str, start, end) -> pd.DataFrame:
        rows = self.data[self.data["ticker"] == ticker]
        if rows.empty:
            known = sorted(self.data["ticker"].unique())
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            raise UnknownTickerError(f"{self.path}: unknown ticker {ticker!r} (the file has {shown})")
        return _clip(rows, start, end)


ARCH_TICKERS = {"^GSPC": "sp500", "^IXIC": "nasdaq"}


@dataclass
class ArchPriceSource:
    """The daily S&P 500 (``^GSPC``) and NASDAQ (``^IXIC``) data shipped by ``arch`` (1999-2018)."""

    name: str = "arch"

    def fetch(self, ticker: str, start, end) -> pd.DataFrame:
        return _clip(load_arch_index(ticker), start, end)


def load_arch_index(ticker: str) -> pd.DataFrame:
    import importlib

    if ticker not in ARCH_TICKERS:
        raise UnknownTickerError(f"arch offline data: unknown ticker {ticker!r} (it has {', '.join(ARCH_TICKERS)})")
    raw = importlib.import_module(f"arch.data.{ARCH_TICKERS[ticker]}").load()
    df = raw.reset_index().rename(columns={"Date": "date"})
    df.insert(0, "ticker", ticker)
    return normalize_prices(df, f"arch.data.{ARCH_TICKERS[ticker]}", source="arch")


_TRANSIENT_STATUS = {429, 500, 502, 503, 504}


@dataclass
class YFinancePriceSource:
    """Adjusted closes and volume from Yahoo Finance via ``yfinance``.

    ``session`` is the HTTP seam: a ``requests.Session`` (default: yfinance's own).
    Transient failures (HTTP 429/5xx, connection errors) are retried ``retries`` times
    with exponential backoff (``backoff_s``, doubled each time; ``sleep`` is injectable).
    An unknown or delisted ticker raises ``UnknownTickerError`` at once.
    """

    session: object | None = None
    retries: int = 3
    backoff_s: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    name: str = "yfinance"

    def fetch(self, ticker: str, start, end) -> pd.DataFrame:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return self._fetch_once(ticker, start, end)
            except (UnknownTickerError, PriceDataError):
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                status = _http_status(exc)
                if status is not None and status not in _TRANSIENT_STATUS:
                    raise UnknownTickerError(f"yfinance: unknown or delisted ticker {ticker!r} (HTTP {status})") from exc
                if attempt == self.retries:
                    raise PriceSourceError(
                        f"yfinance: {ticker!r} failed after {self.retries + 1} attempts ({type(exc).__name__}: {exc})"
                    ) from exc
                log.warning("yfinance: %s attempt %d failed (%s); retrying in %.1f s", ticker, attempt + 1, exc, delay)
                self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _fetch_once(self, ticker: str, start, end) -> pd.DataFrame:
        import warnings

        import yfinance as yf
        from yfinance.data import YfData
        from yfinance.exceptions import YFRateLimitError, YFTickerMissingError

        YfData.cache_get.cache_clear()  # a failed response must not be served again on retry
        t = yf.Ticker(ticker, session=self.session) if self.session is not None else yf.Ticker(ticker)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hist = t.history(start=pd.Timestamp(start).date().isoformat(),
                                 end=(pd.Timestamp(end) + pd.Timedelta(days=1)).date().isoformat(),
                                 interval="1d", auto_adjust=False, actions=False, raise_errors=True)
        except YFRateLimitError as exc:
            raise _Transient(f"rate limited ({exc})") from exc
        except YFTickerMissingError as exc:
            raise UnknownTickerError(f"yfinance: unknown or delisted ticker {ticker!r} ({exc})") from exc
        if hist is None or hist.empty:
            raise UnknownTickerError(f"yfinance: no prices for {ticker!r} between {pd.Timestamp(start).date()} and {pd.Timestamp(end).date()}")
        df = hist.reset_index()
        df["Date"] = pd.to_datetime(df["Date"]).map(lambda x: pd.Timestamp(x.date()))
        df = df.rename(columns={"Date": "date"})
        df.insert(0, "ticker", ticker)
        return normalize_prices(df, f"yfinance {ticker}", source="yfinance")


class _Transient(RuntimeError):
    pass


def _http_status(exc: BaseException) -> int | None:
    resp = getattr(exc, "response", None)
    code = getattr(resp, "status_code", None)
    if isinstance(exc, _Transient):
        return None
    return int(code) if code is not None else None


@dataclass
class ComposedPriceSource:
    """The catalog's ``prices`` table first, then ``source``; fetched rows are cached.

    The catalog is used alone when its rows for the ticker cover the first and last
    session of the request (``sessions``: the trading calendar).  Otherwise ``source``
    is asked, its rows are merged with the cached ones and written back.
    """

    catalog: object  # data_catalog.store.Catalog
    source: PriceSource | None
    sessions: pd.DatetimeIndex
    name: str = "catalog"

    def fetch(self, ticker: str, start, end) -> pd.DataFrame:
        cached = self._cached(ticker)
        want = self.sessions[(self.sessions >= pd.Timestamp(start)) &
                             (self.sessions <= min(pd.Timestamp(end), pd.Timestamp.today().normalize() - pd.Timedelta(days=1)))]
        if cached is not None and len(want) and cached["date"].min() <= want[0] and cached["date"].max() >= want[-1]:
            return _clip(cached, start, end)
        if self.source is None:
            if cached is None:
                raise UnknownTickerError(f"catalog prices: no rows for {ticker!r} and no price source configured")
            return _clip(cached, start, end)
        try:
            fresh = self.source.fetch(ticker, start, end)
        except UnknownTickerError:
            if cached is None:
                raise
            log.warning("%s: %s unknown there; using the %d cached catalog rows", self.source.name, ticker, len(cached))
            return _clip(cached, start, end)
        merged = fresh if cached is None else pd.concat([cached[~cached["date"].isin(fresh["date"])], fresh])
        merged = merged.sort_values("date", ignore_index=True)
        if len(fresh):
            self._write(ticker, merged)
        return _clip(merged, start, end)

    def _cached(self, ticker: str) -> pd.DataFrame | None:
        if not self.catalog.has("prices", ticker):
            return None
        df = self.catalog.read("prices", ticker).to_pandas()
        df["date"] = pd.to_datetime(df["date"])
        return df[PRICE_COLUMNS]

    def _write(self, ticker: str, df: pd.DataFrame) -> None:
        out = df[PRICE_COLUMNS].copy()
        out["date"] = out["date"].dt.date
        self.catalog.write("prices", ticker, out)


def fetch_many(source: PriceSource, ranges: dict[str, tuple[pd.Timestamp, pd.Timestamp]]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Fetch each ticker's range; returns the long frame and ``{ticker: reason}`` for failures."""
    from tqdm.auto import tqdm

    frames, failed = [], {}
    t0 = time.perf_counter()
    for ticker, (start, end) in tqdm(sorted(ranges.items()), desc="prices", unit="ticker", disable=len(ranges) < 5):
        try:
            frames.append(source.fetch(ticker, start, end))
        except (UnknownTickerError, PriceSourceError) as exc:
            failed[ticker] = str(exc)
    prices = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PRICE_COLUMNS)
    log.info("prices: %d ticker(s), %d rows from %s in %.2f s; %d failed", len(ranges) - len(failed), len(prices),
             source.name, time.perf_counter() - t0, len(failed))
    return prices, failed
