"""Price sources: files, arch's offline index data, yfinance through its HTTP seam, the catalog."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import requests
from requests.adapters import BaseAdapter
from requests.models import Response

from data_catalog.store import Catalog
from finance.errors import PriceDataError, PriceSourceError, UnknownTickerError
from finance.factors import load_arch_factors, load_factors
from finance.prices import ArchPriceSource, ComposedPriceSource, FilePriceSource, YFinancePriceSource, read_price_file

DATA = Path(__file__).parent / "data"


def _write(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_file_source_reads_csv_and_parquet_with_aliases(tmp_path):
    rows = [{"Ticker": "A", "Date": "2020-01-03", "Adj Close": 10.5, "Close": 11.0, "Volume": 100},
            {"Ticker": "A", "Date": "2020-01-02", "Adj Close": 10.0, "Close": 10.4, "Volume": 90},
            {"Ticker": "B", "Date": "2020-01-02", "Adj Close": 5.0, "Close": 5.0, "Volume": 10}]
    csv = _write(tmp_path, "p.csv", rows)
    pq = tmp_path / "p.parquet"
    pd.DataFrame(rows).to_parquet(pq)
    for path in (csv, pq):
        got = FilePriceSource(path).fetch("A", "2020-01-01", "2020-12-31")
        assert got["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-01-02", "2020-01-03"]
        assert got["adj_close"].tolist() == [10.0, 10.5] and got["volume"].tolist() == [90.0, 100.0]
    only_close = _write(tmp_path, "c.csv", [{"ticker": "A", "date": "2020-01-02", "close": 7.0}])
    assert read_price_file(only_close)["adj_close"].tolist() == [7.0]


def test_file_source_unknown_ticker_names_the_file(tmp_path):
    path = _write(tmp_path, "p.csv", [{"ticker": "A", "date": "2020-01-02", "close": 1.0}])
    with pytest.raises(UnknownTickerError, match=r"p\.csv: unknown ticker 'ZZZ' \(the file has A\)"):
        FilePriceSource(path).fetch("ZZZ", "2020-01-01", "2020-02-01")


def test_duplicate_dates_exact_are_collapsed_conflicting_raise(tmp_path):
    same = _write(tmp_path, "same.csv", [{"ticker": "A", "date": "2020-01-02", "close": 1.0}] * 2
                  + [{"ticker": "A", "date": "2020-01-03", "close": 1.1}])
    assert len(read_price_file(same)) == 2
    clash = _write(tmp_path, "clash.csv", [{"ticker": "A", "date": "2020-01-02", "close": 1.0},
                                           {"ticker": "A", "date": "2020-01-02", "close": 1.2}])
    with pytest.raises(PriceDataError, match=r"clash\.csv: A has duplicate dates with different prices .*2020-01-02"):
        read_price_file(clash)


def test_bad_price_files(tmp_path):
    with pytest.raises(PriceDataError, match=r"neg\.csv: non-positive price"):
        read_price_file(_write(tmp_path, "neg.csv", [{"ticker": "A", "date": "2020-01-02", "close": -1.0}]))
    with pytest.raises(PriceDataError, match=r"cols\.csv: missing price column"):
        read_price_file(_write(tmp_path, "cols.csv", [{"ticker": "A", "date": "2020-01-02", "price": 1.0}]))
    with pytest.raises(PriceDataError, match=r"nofile\.csv: price file not found"):
        read_price_file(tmp_path / "nofile.csv")


def test_arch_source_has_sp500_and_nasdaq():
    src = ArchPriceSource()
    sp = src.fetch("^GSPC", "1999-01-01", "1999-01-31")
    assert sp["date"].iloc[0] == pd.Timestamp("1999-01-04")
    assert sp["adj_close"].iloc[0] == pytest.approx(1228.099976)
    assert len(src.fetch("^IXIC", "1999-01-01", "2018-12-31")) == 5031
    with pytest.raises(UnknownTickerError, match="arch offline data: unknown ticker 'AAPL'"):
        src.fetch("AAPL", "2000-01-01", "2000-02-01")


def test_factor_files_and_arch_french_data(tmp_path):
    f = load_arch_factors()
    assert f.monthly and f.data.index[0] == pd.Timestamp("1926-07-01")
    assert f.data.iloc[0][["mkt_rf", "smb", "hml", "rf"]].tolist() == pytest.approx([0.0296, -0.023, -0.0287, 0.0022])
    got = f.align(pd.DatetimeIndex(["1926-07-30", "1926-08-31", "2030-01-02"]), ["mkt_rf"])
    assert got[0, 0] == pytest.approx(0.0296) and got[1, 0] == pytest.approx(0.0264) and np.isnan(got[2, 0])
    path = tmp_path / "daily.csv"
    pd.DataFrame({"Date": ["20200102", "20200103"], "Mkt-RF": [1.0, -0.5], "SMB": [0.1, 0.2], "HML": [0, 0],
                  "RF": [0.01, 0.01], "Mom": [0.3, 0.4]}).to_csv(path, index=False)
    daily = load_factors(path)
    assert not daily.monthly
    assert daily.align(pd.DatetimeIndex(["2020-01-03"]), ["mkt_rf", "mom"]).tolist() == [[-0.005, 0.004]]


# -- the catalog first ------------------------------------------------------------------------------


class CountingSource:
    name = "counting"

    def __init__(self, frame: pd.DataFrame):
        self.frame, self.calls = frame, []

    def fetch(self, ticker, start, end):
        self.calls.append((ticker, pd.Timestamp(start), pd.Timestamp(end)))
        rows = self.frame[(self.frame.ticker == ticker) & (self.frame.date >= pd.Timestamp(start))
                          & (self.frame.date <= pd.Timestamp(end))]
        if rows.empty:
            raise UnknownTickerError(f"counting: unknown {ticker}")
        return rows.reset_index(drop=True)


def test_composed_source_uses_catalog_first_and_caches(tmp_path):
    sp = ArchPriceSource().fetch("^GSPC", "2010-01-01", "2010-12-31")
    src = CountingSource(sp)
    cat = Catalog(tmp_path / "cat")
    sessions = pd.DatetimeIndex(sp["date"])
    comp = ComposedPriceSource(cat, src, sessions)
    first = comp.fetch("^GSPC", "2010-03-01", "2010-06-30")
    assert len(src.calls) == 1 and cat.has("prices", "^GSPC")
    again = comp.fetch("^GSPC", "2010-04-01", "2010-05-31")  # inside the cached range: no call
    assert len(src.calls) == 1
    assert again["adj_close"].tolist() == first[(first.date >= "2010-04-01") & (first.date <= "2010-05-31")]["adj_close"].tolist()
    wider = comp.fetch("^GSPC", "2010-01-01", "2010-12-31")  # not covered: fetched and merged
    assert len(src.calls) == 2 and len(wider) == len(sp)
    assert len(cat.read("prices", "^GSPC")) == len(sp)
    assert set(cat.read("prices", "^GSPC").column("source").to_pylist()) == {"arch"}


# -- yfinance through its HTTP seam -----------------------------------------------------------------


class YahooFixtures(BaseAdapter):
    """A requests transport that answers Yahoo's endpoints from fixture files."""

    def __init__(self, fail_history: int = 0):
        super().__init__()
        self.fail_history = fail_history
        self.urls: list[str] = []

    def send(self, request, **kwargs):
        url = urlparse(request.url)
        self.urls.append(request.url)
        status, body = 404, b"{}"
        if url.netloc == "fc.yahoo.com":
            status, body = 404, b""
        elif url.path.endswith("/getcrumb"):
            status, body = 200, b"fixture-crumb"
        elif "/v8/finance/chart/" in url.path:
            symbol = url.path.rsplit("/", 1)[1]
            if "period1" in url.query and self.fail_history > 0:
                self.fail_history -= 1
                status, body = 503, b"<html>Will be right back</html>"
            elif symbol == "AAPL":
                status, body = 200, (DATA / "yahoo_chart_AAPL.json").read_bytes()
            else:
                body = (DATA / "yahoo_chart_not_found.json").read_bytes()
        resp = Response()
        resp.status_code, resp._content, resp.url, resp.request = status, body, request.url, request
        resp.headers["Content-Type"] = "application/json"
        return resp

    def close(self):
        pass


@pytest.fixture
def yahoo(tmp_path):
    import yfinance as yf

    yf.set_tz_cache_location(str(tmp_path / "yf-cache"))

    def make(fail_history=0):
        adapter = YahooFixtures(fail_history)
        session = requests.Session()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        sleeps: list[float] = []
        return YFinancePriceSource(session=session, retries=3, backoff_s=0.5, sleep=sleeps.append), adapter, sleeps

    return make


def test_yfinance_reads_adjusted_close_and_volume(yahoo):
    src, adapter, sleeps = yahoo()
    got = src.fetch("AAPL", "2020-01-01", "2020-01-08")
    fixture = json.loads((DATA / "yahoo_chart_AAPL.json").read_text())["chart"]["result"][0]
    assert got["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07", "2020-01-08"]
    assert got["adj_close"].tolist() == pytest.approx(fixture["indicators"]["adjclose"][0]["adjclose"])
    assert got["close"].tolist() == pytest.approx(fixture["indicators"]["quote"][0]["close"])
    assert got["volume"].tolist() == fixture["indicators"]["quote"][0]["volume"]
    assert set(got["source"]) == {"yfinance"} and sleeps == []
    assert all("yahoo.com" in u for u in adapter.urls)


def test_yfinance_unknown_ticker_is_a_clear_error(yahoo):
    src, _, sleeps = yahoo()
    with pytest.raises(UnknownTickerError, match=r"yfinance: unknown or delisted ticker 'NOPE1'"):
        src.fetch("NOPE1", "2020-01-01", "2020-01-08")
    assert sleeps == []  # not retried


def test_yfinance_retries_transient_failures_with_backoff(yahoo):
    src, _, sleeps = yahoo(fail_history=2)
    got = src.fetch("AAPL", "2020-01-01", "2020-01-08")
    assert len(got) == 5
    assert 1 <= len(sleeps) <= 2 and sleeps == [0.5, 1.0][:len(sleeps)]


def test_yfinance_gives_up_after_retries(yahoo):
    src, _, sleeps = yahoo(fail_history=1000)
    with pytest.raises(PriceSourceError, match=r"yfinance: 'AAPL' failed after 4 attempts"):
        src.fetch("AAPL", "2020-01-01", "2020-01-08")
    assert sleeps == [0.5, 1.0, 2.0]


def test_yfinance_rows_are_cached_in_the_catalog(yahoo, tmp_path):
    src, adapter, _ = yahoo()
    cat = Catalog(tmp_path / "cat")
    sessions = pd.bdate_range("2020-01-02", "2020-01-08")
    comp = ComposedPriceSource(cat, src, sessions)
    comp.fetch("AAPL", "2020-01-02", "2020-01-08")
    n_requests = len(adapter.urls)
    again = comp.fetch("AAPL", "2020-01-02", "2020-01-08")
    assert len(adapter.urls) == n_requests and len(again) == 5
    assert cat.read("prices", "AAPL").column("adj_close").to_pylist() == pytest.approx([73.45, 72.74, 73.31, 72.97, 74.15])
