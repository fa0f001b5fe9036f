"""The catalog-wide baseline step: every person's tone against their own earlier calls.

After a batch, ``update_baselines(catalog)`` recomputes, for every SER model in the catalog,
the per-person tones of each complete call and their baselines (``ser_models.people``), and
writes what changed:

- ``speaker_baselines``: one part per call, one row per (person, model);
- ``call_features``: the call-level abnormal-tone columns (``CALL_ABNORMAL_COLUMNS``,
  ``n_persons_with_baseline``) of the call's row for that model.

A call processed later in time changes nothing for earlier calls; a call inserted in the
past (an archive filled in backwards) changes the baselines of the same people's later calls,
which are rewritten.  Parts that would not change are not rewritten.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_catalog import TABLES
from data_catalog.schemas import CALL_ABNORMAL_COLUMNS
from data_catalog.store import Catalog
from ser_models.people import BaselineConfig, baselines, call_abnormal, person_tones

log = logging.getLogger(__name__)
CALL_COLUMNS = [*CALL_ABNORMAL_COLUMNS, "n_persons_with_baseline"]


@dataclass
class BaselineUpdate:
    calls: int                 # complete calls with emotions
    persons: int               # distinct persons
    with_baseline: int         # (call, person) rows with a voice-tone z-score
    parts_written: int
    seconds: float

    def summary(self) -> str:
        return (f"person baselines: {self.persons} persons over {self.calls} calls, {self.with_baseline} person-calls "
                f"with a baseline; {self.parts_written} parts rewritten ({self.seconds:.1f} s)")


def _read(catalog: Catalog, table: str) -> pd.DataFrame:
    return catalog.read(table, complete_only=True, skip_unreadable=True).to_pandas()


def compute_baselines(catalog: Catalog, config: BaselineConfig = BaselineConfig()) -> pd.DataFrame:
    """The ``speaker_baselines`` rows of every complete call and SER model (no write)."""
    calls = _read(catalog, "calls")[["call_id", "event_time", "entity"]]
    emotions = _read(catalog, "emotions")
    if calls.empty or emotions.empty:
        return TABLES["speaker_baselines"].schema.empty_table().to_pandas()
    segments = _read(catalog, "segments")[["call_id", "segment_id", "speaker", "start_s", "end_s"]]
    speakers = _read(catalog, "speakers")[["call_id", "speaker", "role", "name", "voice_id"]]
    out = []
    for model_id, emo in emotions.groupby("model_id", sort=True):
        tones = person_tones(segments, emo[["call_id", "segment_id", "tone", "text_tone", "fused_tone", "skip_reason"]],
                             speakers, calls)
        out.append(baselines(tones, config).assign(model_id=model_id))
    return pd.concat(out, ignore_index=True).reindex(columns=TABLES["speaker_baselines"].columns)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return False
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
            if not np.allclose(x.astype(float), y.astype(float), rtol=0, atol=1e-12, equal_nan=True):
                return False
        elif not (x.astype(str) == y.astype(str)).all():
            return False
    return True


def update_baselines(catalog: Catalog, config: BaselineConfig = BaselineConfig()) -> BaselineUpdate:
    """Recompute and write the baselines of every complete call (see the module doc)."""
    t0 = time.perf_counter()
    rows = compute_baselines(catalog, config)
    written = 0
    key = ["model_id", "person_id"]
    for call_id, part in rows.groupby("call_id", sort=True):
        part = part.sort_values(key).reset_index(drop=True)
        old = catalog.read("speaker_baselines", call_id).to_pandas() if catalog.has("speaker_baselines", call_id) else None
        if old is None or not _same(old.sort_values(key).reset_index(drop=True), part):
            catalog.write("speaker_baselines", call_id, part)
            written += 1
        if not catalog.has("call_features", call_id):
            continue
        feats = catalog.read("call_features", call_id).to_pandas()
        feats = feats.assign(**{c: np.nan for c in CALL_COLUMNS if c not in feats})   # a part of an older version
        new = feats.copy()
        for model_id, g in part.groupby("model_id"):
            abn = call_abnormal(g).iloc[0]
            sel = new["model_id"] == model_id
            for c in CALL_COLUMNS:
                new.loc[sel, c] = abn[c]
        if not _same(feats[CALL_COLUMNS], new[CALL_COLUMNS]):
            catalog.write("call_features", call_id, new.astype({"n_persons_with_baseline": "int64"}))
            written += 1
    ok = rows["abnormal_voice_tone"].notna() if len(rows) else pd.Series(dtype=bool)
    out = BaselineUpdate(int(rows["call_id"].nunique()), int(rows["person_id"].nunique()), int(ok.sum()), written,
                         time.perf_counter() - t0)
    log.info("%s", out.summary())
    return out
