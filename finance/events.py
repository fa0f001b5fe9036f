"""Event lists: reading, checking, and aligning day 0 on a trading calendar.

An events file (CSV or Parquet) has ``event_id, ticker`` and either ``event_date`` or
``event_time`` (UTC; naive times are read as UTC).  Optional: ``call_id``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from finance.calendars import TradingCalendar, align_event_date, align_event_time
from finance.errors import EventsError
from finance.tables import parse_dates, read_table

DROPPED_COLUMNS = ["event_id", "ticker", "event_date", "stage", "reason"]


def read_events(path: str | Path) -> pd.DataFrame:
    return check_events(read_table(path, "events", EventsError, empty_ok=True, dtype=str), str(path))


def check_events(df: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Validate columns and ids; returns event_id, ticker, [call_id], event_date|event_time."""
    df = df.rename(columns=lambda c: str(c).strip().lower())
    if df.empty:
        raise EventsError(f"{origin}: no events (the file has no rows)")
    missing = [c for c in ("event_id", "ticker") if c not in df.columns]
    if missing:
        raise EventsError(f"{origin}: missing column(s) {missing} (need event_id, ticker, event_date or event_time)")
    if "event_date" not in df.columns and "event_time" not in df.columns:
        raise EventsError(f"{origin}: needs an event_date or an event_time column")
    out = df.copy()
    out["event_id"] = out["event_id"].astype(str).str.strip()
    out["ticker"] = out["ticker"].astype(str).str.strip()
    dup = out["event_id"][out["event_id"].duplicated()]
    if len(dup):
        raise EventsError(f"{origin}: duplicate event_id {dup.iloc[0]!r} ({len(dup)} duplicate(s))")
    for col, utc in (("event_date", False), ("event_time", True)):
        if col in out.columns:
            out[col] = parse_dates(out[col], origin, col, EventsError, utc=utc)
    if "event_date" in out.columns and isinstance(out["event_date"].dtype, pd.DatetimeTZDtype):
        out["event_date"] = out["event_date"].dt.tz_localize(None)
    return out.reset_index(drop=True)


def align_events(events: pd.DataFrame, calendar: TradingCalendar) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Day 0 and timing of each event; events that cannot be placed are returned as dropped.

    ``event_time`` is used where present (timing rules), else ``event_date``.
    Returns (aligned events with ``event_date`` and ``timing``, dropped events).
    """
    days, timings = [], []
    has_time = "event_time" in events.columns
    has_date = "event_date" in events.columns
    for row in events.itertuples(index=False):
        t = getattr(row, "event_time") if has_time else pd.NaT
        if pd.notna(t):
            day, timing = align_event_time(t, calendar)
        elif has_date and pd.notna(getattr(row, "event_date")):
            day, timing = align_event_date(getattr(row, "event_date"), calendar)
        else:
            day, timing = None, "missing_date"
        days.append(day)
        timings.append(timing)
    out = events.copy()
    out["event_date"] = pd.to_datetime(pd.Series(days, index=out.index, dtype=object))
    out["timing"] = timings
    bad = out["event_date"].isna()
    reasons = out.loc[bad, "timing"].map({
        "missing_date": "no event_date or event_time",
        "outside_calendar": f"event date outside the {calendar.name} calendar "
                            f"({calendar.sessions[0].date()}..{calendar.sessions[-1].date()})",
    })
    dropped = pd.DataFrame({"event_id": out.loc[bad, "event_id"], "ticker": out.loc[bad, "ticker"],
                            "event_date": pd.NaT, "stage": "align", "reason": reasons})
    return out[~bad].reset_index(drop=True), dropped.reset_index(drop=True)
