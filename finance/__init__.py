"""speechfin.finance: prices, trading calendars, event studies and regressions.

Modules (import them directly; this package imports nothing heavy):

- ``calendars``: exchange trading calendars and event-day alignment.
- ``prices``: price sources (local files, arch's offline index data, yfinance, the catalog).
- ``factors``: Fama-French / Carhart factor files.
- ``events``: reading and aligning event lists.
- ``engine``: the vectorized event study (expected-return models, AR, CAR, BHAR, outcomes).
- ``significance``: the event-study tests (t, Patell, BMP, Kolari-Pynnonen, Corrado,
  generalized sign, Wilcoxon).
- ``regress``: regressions of outcomes on speech features (statsmodels).
- ``studies``: TOML study specs and ``run_study``.
"""
