"""Trading calendars (``exchange_calendars``) and event-day alignment.

Day 0 of an event is a trading session.  From an ``event_time`` (UTC) and the exchange
time zone:

- before the open of a session         -> that session, timing ``bmo``;
- during the session (open <= t < close) -> that session, timing ``intraday``
  (an FOMC press conference at 14:30 ET);
- at or after the close                 -> the next session, timing ``amc``;
- on a weekend or holiday                -> the next session, timing ``closed``.

An explicit ``event_date`` that is a session keeps it (timing ``date``); one that is not
a session rolls forward to the next session (timing ``rolled``, and a warning is logged).

The calendar name ``data`` means "no exchange calendar": the trading days are the dates
present in the price data (for monthly or non-exchange data).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from finance.errors import EventsError

log = logging.getLogger("speechfin.finance")

DEFAULT_CALENDAR = "XNYS"
DATA_CALENDAR = "data"
_FIRST_YEAR = 1990


@lru_cache(maxsize=8)
def _exchange_calendar(name: str, first_year: int):
    import exchange_calendars as xcals

    try:
        with warnings.catch_warnings():
            # exchange_calendars reads Series.values of tz-aware dates while building a calendar;
            # pandas >= 3.1 deprecates that (Pandas4Warning). Nothing of ours to change: silence
            # that one warning, here only, until exchange_calendars moves to .array.
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone",
                                    category=DeprecationWarning)
            return xcals.get_calendar(name, start=f"{first_year}-01-01")
    except xcals.errors.InvalidCalendarName as exc:
        raise EventsError(f"unknown trading calendar {name!r} (use an exchange_calendars code such as XNYS, or 'data')") from exc


@dataclass(frozen=True)
class TradingCalendar:
    """Sessions of one exchange (or of the data, for ``name == 'data'``)."""

    name: str
    sessions: pd.DatetimeIndex  # naive dates, sorted, unique
    tz: str = "UTC"
    first_year: int = _FIRST_YEAR

    @classmethod
    def exchange(cls, name: str = DEFAULT_CALENDAR, first_year: int = _FIRST_YEAR) -> "TradingCalendar":
        first_year = min(first_year, _FIRST_YEAR)
        cal = _exchange_calendar(name.upper(), first_year)
        return cls(name.upper(), pd.DatetimeIndex(cal.sessions).tz_localize(None), str(cal.tz), first_year)

    @classmethod
    def from_dates(cls, dates) -> "TradingCalendar":
        idx = pd.DatetimeIndex(pd.to_datetime(pd.Series(dates)).dt.normalize().unique()).sort_values()
        return cls(DATA_CALENDAR, idx)

    @property
    def is_exchange(self) -> bool:
        return self.name != DATA_CALENDAR

    def between(self, start, end) -> pd.DatetimeIndex:
        s = self.sessions
        return s[(s >= pd.Timestamp(start)) & (s <= pd.Timestamp(end))]

    def next_or_same(self, day: pd.Timestamp) -> pd.Timestamp | None:
        i = self.sessions.searchsorted(day, side="left")
        return self.sessions[i] if i < len(self.sessions) else None

    def shift(self, day: pd.Timestamp, n: int) -> pd.Timestamp | None:
        """The session ``n`` sessions after (``n < 0``: before) the session ``day``, clipped."""
        i = self.sessions.searchsorted(day, side="left") + n
        return self.sessions[int(np.clip(i, 0, len(self.sessions) - 1))]


def get_calendar(name: str = DEFAULT_CALENDAR, data_dates=None) -> TradingCalendar:
    """The exchange calendar ``name``, or (``name == 'data'``) the sessions of ``data_dates``."""
    if name.lower() == DATA_CALENDAR:
        if data_dates is None:
            raise EventsError("calendar 'data' needs price dates to define the trading days")
        return TradingCalendar.from_dates(data_dates)
    first_year = _FIRST_YEAR
    if data_dates is not None and len(data_dates):
        first_year = int(pd.to_datetime(pd.Series(data_dates)).min().year)
    return TradingCalendar.exchange(name, first_year)


def align_event_time(event_time: pd.Timestamp, calendar: TradingCalendar) -> tuple[pd.Timestamp | None, str]:
    """Day 0 session and timing (``bmo``/``intraday``/``amc``/``closed``) of a UTC time."""
    if not calendar.is_exchange:
        raise EventsError("event_time needs an exchange calendar (timing rules use its hours); give event_date instead")
    ts = pd.Timestamp(event_time)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    cal = _exchange_calendar(calendar.name, calendar.first_year)
    day = pd.Timestamp(ts.tz_convert(calendar.tz).date())
    if day < calendar.sessions[0] or day > calendar.sessions[-1]:
        return None, "outside_calendar"
    if cal.is_session(day):
        if ts < cal.session_open(day):
            return day, "bmo"
        if ts < cal.session_close(day):
            return day, "intraday"
        nxt = calendar.shift(day, 1)
        return (nxt if nxt > day else None), "amc"
    return calendar.next_or_same(day), "closed"


def align_event_date(event_date, calendar: TradingCalendar) -> tuple[pd.Timestamp | None, str]:
    """Day 0 of an explicit date: itself if a session, else the next session (``rolled``)."""
    day = pd.Timestamp(event_date).normalize()
    if day.tzinfo is not None:
        day = day.tz_localize(None)
    session = calendar.next_or_same(day)
    if session is None or day < calendar.sessions[0]:
        return None, "outside_calendar"
    if session != day:
        log.warning("event_date %s is not a %s session: day 0 rolled forward to %s", day.date(), calendar.name, session.date())
        return session, "rolled"
    return day, "date"
