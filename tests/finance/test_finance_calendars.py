"""Event-day alignment on the XNYS calendar (exchange_calendars)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from finance.calendars import align_event_date, align_event_time, get_calendar
from finance.events import align_events


@pytest.fixture(scope="module")
def xnys():
    return get_calendar("XNYS")


def _ny(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="America/New_York").tz_convert("UTC")


@pytest.mark.parametrize("when, day, timing", [
    ("2019-01-30 14:30", "2019-01-30", "intraday"),   # FOMC press conference
    ("2022-06-15 14:30", "2022-06-15", "intraday"),   # same, summer time (EDT)
    ("2019-07-24 16:30", "2019-07-25", "amc"),        # earnings call after the close -> next session
    ("2019-07-24 16:00", "2019-07-25", "amc"),        # exactly at the close counts as after it
    ("2019-07-24 08:00", "2019-07-24", "bmo"),        # before the open -> same session
    ("2019-07-26 17:00", "2019-07-29", "amc"),        # Friday after close -> Monday
    ("2019-07-27 10:00", "2019-07-29", "closed"),     # Saturday -> Monday
    ("2019-07-04 10:00", "2019-07-05", "closed"),     # Independence Day -> next session
    ("2019-11-29 14:00", "2019-12-02", "amc"),        # after the 13:00 early close -> Monday
    ("2019-11-29 12:00", "2019-11-29", "intraday"),   # before the early close
])
def test_event_time_rules(xnys, when, day, timing):
    got_day, got_timing = align_event_time(_ny(when), xnys)
    assert (got_day, got_timing) == (pd.Timestamp(day), timing)


def test_utc_input_is_converted_with_the_exchange_time_zone(xnys):
    # 21:30 UTC is 16:30 EST in January (after the close) but 17:30 EDT in July (also after);
    # 20:30 UTC is 15:30 EST in January (intraday) and 16:30 EDT in July (after the close).
    assert align_event_time(pd.Timestamp("2019-01-30 20:30", tz="UTC"), xnys) == (pd.Timestamp("2019-01-30"), "intraday")
    assert align_event_time(pd.Timestamp("2019-07-24 20:30", tz="UTC"), xnys) == (pd.Timestamp("2019-07-25"), "amc")


def test_non_trading_event_date_rolls_forward_with_a_warning(xnys, caplog):
    with caplog.at_level(logging.WARNING, logger="speechfin.finance"):
        assert align_event_date("2019-07-27", xnys) == (pd.Timestamp("2019-07-29"), "rolled")
    assert "not a XNYS session" in caplog.text and "2019-07-29" in caplog.text
    assert align_event_date("2019-07-26", xnys) == (pd.Timestamp("2019-07-26"), "date")


def test_align_events_records_timing_and_drops_unplaceable(xnys):
    events = pd.DataFrame({
        "event_id": ["a", "b", "c"], "ticker": ["X", "X", "X"],
        "event_time": [_ny("2019-07-24 16:30"), pd.NaT, pd.NaT],
        "event_date": [pd.NaT, pd.Timestamp("2019-07-04"), pd.NaT]})
    aligned, dropped = align_events(events, xnys)
    assert aligned[["event_id", "event_date", "timing"]].values.tolist() == [
        ["a", pd.Timestamp("2019-07-25"), "amc"], ["b", pd.Timestamp("2019-07-05"), "rolled"]]
    assert dropped["event_id"].tolist() == ["c"]
    assert dropped["reason"].iloc[0] == "no event_date or event_time"


def test_data_calendar_uses_price_dates():
    cal = get_calendar("data", pd.to_datetime(["2020-01-31", "2020-02-28", "2020-03-31"]))
    assert align_event_date("2020-02-15", cal) == (pd.Timestamp("2020-02-28"), "rolled")
    assert align_event_date("2020-04-15", cal) == (None, "outside_calendar")
