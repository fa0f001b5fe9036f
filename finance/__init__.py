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
- ``pipeline``: align events, fetch their prices, run the engine (shared by the two below).
- ``studies``: TOML study specs and ``run_study`` (catalog in, catalog out).
- ``files``: ``speechfin study car`` / ``regress`` on files.
- ``tables``: reading user CSV/Parquet tables with clear errors.

See ``finance/README.md`` for the commands, the spec format and the catalog tables.
"""
