"""Voice identities across calls: a catalog-wide step after each batch.

Each call's speakers have an embedding in ``voices`` (one embedding model per profile).  A call
is written with voice_id '' (its workers do not link: they would race); this step gives each
such speaker a ``voice_id``:

- identities are the linked voices: one centroid per (embedding model, voice_id), the mean of
  its members' unit-normalised embeddings;
- unlinked speakers are taken in (event_time, call_id, speaker) order, so the result does not
  depend on which worker finished first; each joins the nearest identity of its model within
  the model's ``match_distance`` (cosine distance to the centroid), else starts one, ``v_<call_id[:10]>_<speaker>``;
  two speakers of one call never join the same identity (the nearer one does, the other goes on
  to its next-nearest identity or a new one);
- an id, once given, is never changed or re-used: a call processed later joins the identities
  as they are.  (A centroid moves as members join; members already linked keep their ids.)

The call's ``speakers`` and ``qa_pairs`` parts are rewritten with the ids, then ``voices``
(which marks the call linked).  The step holds ``CATALOG/.locks/voices.lock``: two runs on one
catalog link one after the other.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_catalog import Catalog
from data_catalog.compacted import flock

log = logging.getLogger("speechfin.voices")
# the cosine distance within which a speaker joins an identity, per embedding model; chosen on calls
# built from RAVDESS actors 01-12 and one executive (benchmarks/voice_linking.py), reported on
# held-out actors 13-20 and another executive (figures in benchmarks/README.md)
VOICE_MATCH_DISTANCE = {"campplus-cn-en-common": 0.40, "resemblyzer-ge2e": 0.10}
DEFAULT_MATCH_DISTANCE = 0.10  # another model (the full profile's pyannote embeddings): not calibrated


def match_distance(embedding_model: str) -> float:
    return VOICE_MATCH_DISTANCE.get(embedding_model, DEFAULT_MATCH_DISTANCE)


@dataclass
class VoiceLinks:
    """What one linking step did."""

    speakers: int = 0  # speakers linked
    joined: int = 0  # of which joined an identity (known, or started by an earlier speaker of this batch)
    calls: int = 0
    identities: int = 0  # identities in the catalog afterwards
    seconds: float = 0.0

    def line(self) -> str:
        if not self.speakers:
            return f"no speaker to link ({self.identities} voice identities)"
        return (f"{self.speakers} speaker(s) of {self.calls} call(s) linked: {self.joined} joined a voice heard "
                f"before, {self.speakers - self.joined} new; {self.identities} voice identities, in {self.seconds:.1f} s")


def assign_voices(known: pd.DataFrame, new: pd.DataFrame, max_distance: float | None = None) -> dict:
    """(call_id, speaker) -> voice_id for the rows of ``new`` (in their order).

    ``known``: linked voices (voice_id, embedding_model, embedding); ``new``: call_id, speaker,
    embedding_model, embedding.  Per embedding model, identities are rows of a matrix of
    unit centroids (n_identities x dim): one matrix-vector product per new speaker.
    ``max_distance``: the joining distance; None, each model's :func:`match_distance`."""
    out: dict[tuple[str, str], str] = {}
    for model, rows in new.groupby("embedding_model", sort=False):
        within = match_distance(model) if max_distance is None else max_distance
        ids: list[str] = []
        sums: list[np.ndarray] = []
        index: dict[str, int] = {}
        for r in known[known["embedding_model"] == model].itertuples(index=False):
            e = _unit(r.embedding)
            if e is None:
                continue
            if r.voice_id not in index:
                index[r.voice_id] = len(ids)
                ids.append(r.voice_id)
                sums.append(np.zeros_like(e))
            sums[index[r.voice_id]] += e
        dim = len(sums[0]) if sums else None
        # unit centroids, rows [0, len(ids)) in use; grown by doubling (not copied per new identity)
        U = np.stack([_unit(v) for v in sums]) if sums else np.zeros((0, 0))
        taken: dict[str, set[int]] = {}  # call -> identities its speakers joined
        for r in rows.itertuples(index=False):
            e = _unit(r.embedding)
            vid = f"v_{r.call_id[:10]}_{r.speaker}"
            if e is None or (dim is not None and len(e) != dim):
                out[(r.call_id, r.speaker)] = vid
                continue
            j = -1
            if len(ids):
                d = 1.0 - U[: len(ids)] @ e
                d[list(taken.get(r.call_id, ()))] = np.inf
                k = int(np.argmin(d))
                j = k if d[k] <= within else -1
            if j < 0:  # a new identity
                j = len(ids)
                ids.append(vid)
                sums.append(np.zeros_like(e))
                if U.shape[0] <= j:
                    grown = np.zeros((max(16, 2 * U.shape[0]), len(e)))
                    grown[: U.shape[0]] = U.reshape(-1, len(e))
                    U = grown
                dim = len(e)
            sums[j] += e
            U[j] = _unit(sums[j])
            taken.setdefault(r.call_id, set()).add(j)
            out[(r.call_id, r.speaker)] = ids[j]
    return out


def _unit(v) -> np.ndarray | None:
    if v is None or len(v) == 0:
        return None
    a = np.asarray(v, np.float64)
    n = np.linalg.norm(a)
    return a / n if n > 0 else None


def link_voices_catalog(catalog: Catalog, max_distance: float | None = None) -> VoiceLinks:
    """Give every unlinked speaker of the catalog's complete calls a voice_id (module docstring)."""
    t0 = time.perf_counter()
    out = VoiceLinks()
    with flock(catalog.root / ".locks" / "voices.lock"):
        voices = catalog.read("voices", complete_only=True, skip_unreadable=True).to_pandas()
        if voices.empty:
            return out
        linked = voices["voice_id"].fillna("") != ""
        out.identities = voices.loc[linked, "voice_id"].nunique()
        new = voices[~linked]
        if new.empty:
            return out
        when = catalog.read("calls").to_pandas().set_index("call_id")["event_time"]
        new = new.assign(t=new["call_id"].map(when)).sort_values(["t", "call_id", "speaker"], na_position="last")
        ids = assign_voices(voices[linked], new, max_distance)
        known = set(voices.loc[linked, "voice_id"])
        for call_id, rows in new.groupby("call_id", sort=False):
            mapping = {s: ids[(call_id, s)] for s in rows["speaker"]}
            _rewrite_call(catalog, call_id, mapping)
            out.calls += 1
        out.speakers = len(ids)
        out.joined = len(ids) - len(set(ids.values()) - known)  # joined a known voice or one new in this batch
        out.identities = len(known | set(ids.values()))
    out.seconds = time.perf_counter() - t0
    log.info("voices: %s", out.line())
    return out


def _rewrite_call(catalog: Catalog, call_id: str, mapping: dict[str, str]) -> None:
    """The call's ``speakers`` and ``qa_pairs`` with the voice ids, then ``voices`` (linked)."""
    spk = catalog.read("speakers", call_id).to_pandas()
    spk["voice_id"] = spk["speaker"].map(mapping).fillna(spk["voice_id"])
    catalog.write("speakers", call_id, spk)
    if catalog.has("qa_pairs", call_id):
        qa = catalog.read("qa_pairs", call_id).to_pandas()
        for p in ("asker", "answerer"):
            qa[f"{p}_voice_id"] = qa[f"{p}_speaker"].map(mapping).fillna(qa[f"{p}_voice_id"])
        catalog.write("qa_pairs", call_id, qa)
    v = catalog.read("voices", call_id).to_pandas()
    v["voice_id"] = v["speaker"].map(mapping).fillna(v["voice_id"])
    catalog.write("voices", call_id, v)
