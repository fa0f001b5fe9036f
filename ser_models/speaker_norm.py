"""Speaker-relative encoder features: each speaker's frames minus that speaker's baseline frame.

Cross-corpus SER finds per-speaker normalisation the strongest single fix for unseen
speakers and channels (Schuller et al. 2010, "Cross-corpus acoustic emotion recognition");
Mayew & Venkatachalam (2012) measure a manager's vocal affect against the same manager's
own baseline.  Two baselines (``ModelConfig.speaker_norm``):

``mean``: the mean encoder frame over all of the speaker's speech,
    x'_t = x_t - mean_{t' in speaker} x_t'        (per hidden layer and feature).
``neutral``: the speaker's *neutral* register, as in iterative feature normalisation (Busso,
    Metallinou & Narayanan 2011): in training, the mean frame of the speaker's neutral and
    calm clips (labels known); at inference, where labels are not known, the mean over all of
    the speaker's speech to start with, then ``IFN_ITERATIONS`` times the mean of the items
    weighted by the model's p(neutral) + p(calm) times their length.  An acted corpus is mostly
    emotional speech around a neutral register, a call mostly neutral speech: the all-speech
    mean of the two sits in different places, the neutral register does not.

- training: per actor (each packing on its own);
- a call: per diarized speaker, over all of the speaker's scored segments;
- ``ser eval`` / ``ser predict``: per value of the corpus's ``speaker`` column.

With ``ModelConfig.speaker_scale`` the centred frames are then scaled, feature by feature, to
the training speakers' mean spread (``frame_std``, ``scale``): the variance half of a
per-speaker z-normalisation.  Both the spread and the factors are taken after the layer mix,
and a per-feature factor commutes with it.

Mean removal commutes with the model's learned layer mix (a linear map), so centring the
(L, T, D) frames of a corpus and centring the already mixed (T, D) frames of a call are the
same operation.  The *absolute* score uses the population centre instead: the mean of the
training speakers' centres, stored in the checkpoint.  A speaker with less than
``MIN_SPEECH_S`` of frames gets the population centre too (``basis = "population"``), since a
mean over a second of speech is mostly the words said, not the voice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np

MIN_SPEECH_S = 8.0
IFN_ITERATIONS = 3
BASELINE_CLASSES = ("neutral", "calm")
SPEAKER, POPULATION = "speaker", "population"


@dataclass
class Centering:
    """The centre used for each group (speaker) and why."""

    centers: dict[Hashable, np.ndarray]        # group -> (..., D) centre actually used
    basis: dict[Hashable, str]                 # group -> SPEAKER or POPULATION
    speech_s: dict[Hashable, float]            # group -> seconds of frames seen

    def fallbacks(self) -> list[Hashable]:
        return [g for g, b in self.basis.items() if b == POPULATION]

    def note(self) -> str:
        """One line on the speakers that fell back to the population centre ('' if none)."""
        fb = self.fallbacks()
        if not fb:
            return ""
        few = ", ".join(f"{g} ({self.speech_s[g]:.1f} s)" for g in fb[:3]) + (", ..." if len(fb) > 3 else "")
        return (f"{len(fb)} speaker(s) with less than {MIN_SPEECH_S:.0f} s of speech scored against the population "
                f"baseline, not their own: {few}")


def speaker_centering(frames: Sequence[np.ndarray], groups: Sequence[Hashable], hop_s: float,
                      population: np.ndarray | None = None, min_speech_s: float = MIN_SPEECH_S,
                      weights: Sequence[float] | None = None) -> Centering:
    """Per-group mean frame over the frames of the group's items (``weights``: a weight per
    item, e.g. 1 for the neutral clips of a training actor and 0 for the others; a group
    whose items all weigh 0 gets its unweighted mean).

    frames: items of shape (T_i, D) or (L, T_i, D); groups: the speaker of each item;
    population: the fallback centre for groups with less than ``min_speech_s`` of frames
    (None: the mean of the other groups' centres, as in training)."""
    groups = list(groups)
    weights = np.ones(len(groups)) if weights is None else np.asarray(weights, float)
    sums: dict = {}
    counts: dict = {}
    wsums: dict = {}
    wcounts: dict = {}
    for f, g, w in zip(frames, groups, weights):
        f = np.asarray(f, np.float32)
        s = f.sum(axis=-2)
        sums[g] = sums.get(g, 0) + s
        counts[g] = counts.get(g, 0) + f.shape[-2]
        wsums[g] = wsums.get(g, 0) + w * s
        wcounts[g] = wcounts.get(g, 0) + w * f.shape[-2]
    speech = {g: counts[g] * hop_s for g in sums}
    own = {g: (wsums[g] / wcounts[g] if wcounts[g] > 0 else sums[g] / max(counts[g], 1))
           for g in sums if speech[g] >= min_speech_s}
    if population is None:
        population = np.mean(list(own.values()), axis=0) if own else None
    centers, basis = {}, {}
    for g in sums:
        if g in own:
            centers[g], basis[g] = own[g], SPEAKER
        elif population is not None:
            centers[g], basis[g] = np.asarray(population, np.float32), POPULATION
        else:   # no speaker long enough and no stored population centre: own mean, however short
            centers[g], basis[g] = sums[g] / max(counts[g], 1), SPEAKER
    return Centering(centers, basis, speech)


def center(frames: Sequence[np.ndarray], groups: Sequence[Hashable], centering: Centering) -> list[np.ndarray]:
    """Each item's frames minus its group's centre, computed in float32 and kept in the
    item's own dtype (a call's frames are float16: half the memory)."""
    out = []
    for f, g in zip(frames, groups):
        f = np.asarray(f)
        dtype = f.dtype if f.dtype in (np.float16, np.float32) else np.float32
        out.append((f.astype(np.float32) - centering.centers[g][..., None, :]).astype(dtype))
    return out


def item_means(frames: Sequence[np.ndarray], groups: Sequence[Hashable], centering: Centering | None) -> np.ndarray:
    """(N, ..., D) mean frame of each item before centring (its centred mean plus the centre)."""
    return np.stack([np.asarray(f, np.float32).mean(axis=-2) + (centering.centers[g] if centering else 0)
                     for f, g in zip(frames, groups)])


def iterative_centering(means: np.ndarray, lengths: np.ndarray, groups: Sequence[Hashable], start: Centering,
                        score: Callable[[dict], np.ndarray], baseline: np.ndarray,
                        iterations: int = IFN_ITERATIONS) -> tuple[Centering, np.ndarray]:
    """Iterative feature normalisation (Busso et al. 2011), soft version.

    means: (N, ..., D) mean frame of each item (uncentred); lengths: (N,) frames per item;
    start: the first centres (all-speech means; population centre for short speakers, which
    keep it); score(centers) -> (N, C) probabilities of the items centred on ``centers``;
    baseline: (C,) bool, the neutral classes.  Each iteration moves a speaker's centre to
    the mean of its items weighted by p(baseline) * length.  Returns the final centring and
    the probabilities under it."""
    groups = np.asarray(list(groups), dtype=object)
    centers = dict(start.centers)
    probs = score(centers)
    for _ in range(iterations):
        w = probs[:, baseline].sum(1) * lengths
        for g in centers:
            sel = groups == g
            if start.basis.get(g) != SPEAKER or w[sel].sum() <= 0:
                continue
            ws = w[sel].reshape(-1, *([1] * (means.ndim - 1)))
            centers[g] = (ws * means[sel]).sum(0) / w[sel].sum()
        probs = score(centers)
    return Centering(centers, dict(start.basis), dict(start.speech_s)), probs


def frame_std(frames: Sequence[np.ndarray], groups: Sequence[Hashable],
              mix: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[Hashable, np.ndarray]:
    """Per-group (D,) standard deviation of the frames over all of the group's items, after the
    layer mix ``mix`` ((L, T, D) -> (T, D); None: the items are (T, D) already).

    Used to measure per-speaker variance normalisation (Schuller et al. 2010 normalise each
    speaker's features to zero mean *and* unit variance): scaling every layer's feature d by
    a factor scales the mixed feature d by the same factor, so factors found on the mixed
    frames apply to (L, T, D) and (T, D) items alike."""
    sums: dict = {}
    squares: dict = {}
    counts: dict = {}
    for f, g in zip(frames, groups):
        x = np.asarray(f, np.float32)
        x = mix(x) if mix is not None and x.ndim == 3 else x
        sums[g] = sums.get(g, 0) + x.sum(axis=0)
        squares[g] = squares.get(g, 0) + (x.astype(np.float64) ** 2).sum(axis=0)
        counts[g] = counts.get(g, 0) + len(x)
    return {g: np.sqrt(np.maximum(squares[g] / counts[g] - (sums[g] / counts[g]) ** 2, 1e-12)).astype(np.float32)
            for g in counts}


def scale(frames: Sequence[np.ndarray], groups: Sequence[Hashable], reference: np.ndarray | None,
          basis: dict[Hashable, str], mix: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """Each item of a speaker on its own centre (``basis`` SPEAKER) times ``reference / std``,
    feature by feature, ``std`` being the speaker's spread after ``mix`` (``frame_std``), in
    the item's dtype; the other items as they are.  ``reference`` None: the mean of the
    groups' spreads (every speaker to the mean spread, measured in the same pass)."""
    std = frame_std(frames, groups, mix)
    if reference is None:
        reference = np.mean(list(std.values()), axis=0)
    factor = {g: (reference / s).astype(np.float32) for g, s in std.items() if basis.get(g) == SPEAKER}
    return [(np.asarray(f, np.float32) * factor[g]).astype(np.asarray(f).dtype) if g in factor else f
            for f, g in zip(frames, groups)]


def population_center(centering: Centering) -> np.ndarray:
    """Mean of the speakers' own centres (the absolute score's reference)."""
    own = [c for g, c in centering.centers.items() if centering.basis[g] == SPEAKER]
    return np.mean(own, axis=0).astype(np.float32)


def nuisance_basis(frames: Sequence[np.ndarray], groups: Sequence[Hashable], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k directions along which items vary around their speaker's mean (nuisance
    attribute projection, Campbell et al. 2006), estimated on speech whose emotion is taken as
    constant (a speaker's business speech): the deviation of each item's mean frame from its
    speaker's mean, every hidden layer a sample, so one basis serves every layer.

    Returns U (k, D) (orthonormal rows) and the share of the deviation variance that each of
    the first 64 directions holds."""
    groups = np.asarray(list(groups), dtype=object)
    means = item_means(frames, groups, None)                         # (N, [L,] D)
    dev = np.empty_like(means)
    for g in set(groups.tolist()):
        sel = groups == g
        dev[sel] = means[sel] - means[sel].mean(0)
    x = dev.reshape(-1, dev.shape[-1]).astype(np.float64)            # (N * L, D)
    evals, evecs = np.linalg.eigh(x.T @ x / len(x))
    order = np.argsort(evals)[::-1]
    share = evals[order] / evals.sum()
    return evecs[:, order[:k]].T.astype(np.float32), share[:64]
