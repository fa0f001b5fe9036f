"""The event-study pipeline shared by ``run_study`` and ``speechfin study car``:
align events on the calendar, fetch the prices they need, run the engine, collect drops."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from finance.calendars import DEFAULT_CALENDAR, TradingCalendar, get_calendar
from finance.engine import EventStudyConfig, EventStudyResult, describe_drops, event_study, market_data_from_prices
from finance.errors import FinanceError, NoEventsError
from finance.events import DROPPED_COLUMNS, align_events
from finance.prices import PriceSource, fetch_many


@dataclass
class PipelineResult:
    result: EventStudyResult
    aligned: pd.DataFrame   # all events that got a day 0 (event_id, ticker, event_date, timing, ...)
    dropped: pd.DataFrame   # DROPPED_COLUMNS, all stages
    calendar: TradingCalendar
    prices: pd.DataFrame


def run_event_study(events: pd.DataFrame, source: PriceSource, cfg: EventStudyConfig, calendar: str = DEFAULT_CALENDAR,
                    market: str | None = None, factors=None) -> PipelineResult:
    """Align ``events`` (event_id, ticker, event_date|event_time), fetch prices, run the engine."""
    lo, hi = cfg.span
    tickers = sorted(set(events["ticker"]) | ({market} if market else set()))
    if calendar.lower() == "data":
        everything = {t: (pd.Timestamp("1800-01-01"), pd.Timestamp("2200-01-01")) for t in tickers}
        prices, failed = fetch_many(source, everything)
        cal = get_calendar("data", prices["date"])
        aligned, dropped = align_events(events, cal)
    else:
        cal = calendar_for(events, calendar)
        aligned, dropped = align_events(events, cal)
        ranges = {}
        for t, days in aligned.groupby("ticker")["event_date"]:
            ranges[t] = (cal.shift(days.min(), lo - 5), cal.shift(days.max(), hi + 5))
        market_px = pd.DataFrame()
        if market and len(aligned):  # the market first: without it nothing can be computed
            span = (min(r[0] for r in ranges.values()), max(r[1] for r in ranges.values()))
            market_px, market_failed = fetch_many(source, {market: span})
            if market_failed:
                raise FinanceError(f"market ticker {market!r}: {market_failed[market]}")
            ranges.pop(market, None)
        prices, failed = fetch_many(source, ranges)
        prices = pd.concat([p for p in (market_px, prices) if len(p)], ignore_index=True) if len(market_px) else prices
    if market and market in failed:
        raise FinanceError(f"market ticker {market!r}: {failed[market]}")
    no_px = aligned["ticker"].isin(list(failed))
    dropped = pd.concat([dropped, pd.DataFrame({
        "event_id": aligned.loc[no_px, "event_id"], "ticker": aligned.loc[no_px, "ticker"],
        "event_date": aligned.loc[no_px, "event_date"], "stage": "prices",
        "reason": aligned.loc[no_px, "ticker"].map(failed)})], ignore_index=True)
    axis = _axis(cal, prices, aligned, hi)
    data = market_data_from_prices(prices, axis, market, factors)
    res = event_study(aligned[~no_px], data, cfg)
    dropped = pd.concat([d for d in (dropped, res.dropped) if len(d)], ignore_index=True) if len(dropped) or len(res.dropped) \
        else pd.DataFrame(columns=DROPPED_COLUMNS)
    res.dropped = dropped[DROPPED_COLUMNS]  # every stage's drops, so the result's summary counts them all
    return PipelineResult(res, aligned, res.dropped, cal, prices)


def require_events(pipe: PipelineResult, origin: str, see: str) -> None:
    """Raise :class:`NoEventsError` when no event is left, with every drop counted by reason."""
    if len(pipe.result.events):
        return
    raise NoEventsError(f"{origin}: no event left ({describe_drops(pipe.dropped)}); see {see}")


def calendar_for(events: pd.DataFrame, name: str) -> TradingCalendar:
    """The exchange calendar ``name``, starting early enough for the estimation windows of ``events``."""
    firsts = []
    if "event_date" in events.columns:
        firsts.append(pd.to_datetime(events["event_date"]).min())
    if "event_time" in events.columns:
        firsts.append(pd.to_datetime(events["event_time"], utc=True).min().tz_convert(None))
    firsts = [f for f in firsts if pd.notna(f)]
    return get_calendar(name, [min(firsts) - pd.Timedelta(days=3 * 366)] if firsts else None)


def _axis(cal: TradingCalendar, prices: pd.DataFrame, aligned: pd.DataFrame, hi: int) -> pd.DatetimeIndex:
    days = [d for d in (prices["date"].min(), prices["date"].max(), aligned["event_date"].min(),
                        aligned["event_date"].max()) if pd.notna(d)]
    if not days:
        return cal.sessions[:0]
    return cal.between(min(days), cal.shift(max(days), hi + 1))
