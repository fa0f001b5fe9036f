"""What a study needs from the catalog beyond ``call_features``: the segment posteriors of
its calls, for the measurement-error correction (``[uncertainty] method = "mi"``).

    run_study(spec, catalog, evidence=CatalogEvidence(catalog))

``CatalogEvidence`` reads each call's ``segments``, ``speakers`` (roles) and ``emotions``
parts and hands them to ``ser_models.call_tone.tone_evidence``; the class prior comes from
the SER checkpoint's card (``ser_models.cards.find_card``), uniform when the card is not found.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd

from data_catalog.store import Catalog
from finance.measurement import SegmentEvidence
from ser_models.call_tone import TONE_FEATURES, tone_evidence, training_prior
from ser_models.cards import find_card

log = logging.getLogger(__name__)


class CatalogEvidence:
    """The segment evidence of calls, read from a catalog (a ``finance.measurement.EvidenceSource``)."""

    imputable = TONE_FEATURES

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def _frames(self, call_ids: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        segs, emos = [], []
        for cid in dict.fromkeys(call_ids):
            if not all(self.catalog.has(t, cid) for t in ("segments", "speakers", "emotions")):
                continue
            seg = self.catalog.read("segments", cid).to_pandas()
            spk = self.catalog.read("speakers", cid).to_pandas()[["speaker", "role"]]
            segs.append(seg.merge(spk, on="speaker", how="left").fillna({"role": "unknown"}))
            emos.append(self.catalog.read("emotions", cid).to_pandas())
        if not segs:
            raise ValueError(f"catalog {self.catalog.root}: none of the {len(call_ids)} calls has segments and emotions")
        return pd.concat(segs, ignore_index=True), pd.concat(emos, ignore_index=True)

    def __call__(self, call_ids: Sequence[str], features: Sequence[str], model_id: str | None) -> SegmentEvidence:
        segments, emotions = self._frames(call_ids)
        models = sorted(emotions["model_id"].astype(str).unique())
        if model_id is None and len(models) > 1:
            raise ValueError(f"catalog {self.catalog.root}: emotions of several models ({models}); "
                             f"choose one with [features] model_id")
        model_id = model_id or models[0]
        emotions = emotions[emotions["model_id"] == model_id]
        labels = [c[2:] for c in emotions.columns if c.startswith("p_") and emotions[c].notna().any()]
        card, _ = find_card(model_id)
        prior = training_prior(card) if card and card.get("labels") == labels else np.full(len(labels), 1 / len(labels))
        if card is None:
            log.info("MI: no card for %s; the class prior is taken as uniform", model_id)
        arrays = tone_evidence(segments, emotions, labels, prior, features)
        missing = sorted(set(call_ids) - set(arrays["call_ids"]))
        if missing:
            raise ValueError(f"catalog {self.catalog.root}: {len(missing)} call(s) without segments or emotions "
                             f"(first {missing[0]})")
        return SegmentEvidence(**arrays)
