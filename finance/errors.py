"""Errors of the finance engine.

Every error is a one-line message that names the file (or table, or spec) and the
problem, so that the command line can print it as is.
"""

from __future__ import annotations


class FinanceError(ValueError):
    """Bad input to the finance engine (the message says which file and what is wrong)."""


class PriceDataError(FinanceError):
    """A price file or price table is malformed (columns, duplicate dates, bad values)."""


class UnknownTickerError(FinanceError):
    """A price source has no data for a ticker (unknown, delisted, or not in the file)."""


class PriceSourceError(FinanceError):
    """A price source failed for another reason (network, rate limit after retries)."""


class EventsError(FinanceError):
    """An events file or the catalog sample is malformed or empty."""


class SpecError(FinanceError):
    """A study spec is malformed or names something that does not exist."""


class RegressionError(FinanceError):
    """A regression cannot be run (missing column, collinear or too few observations)."""


class NoEventsError(FinanceError):
    """An event study has no event left after dropping (every drop is counted by reason)."""
