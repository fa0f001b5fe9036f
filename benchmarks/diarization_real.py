"""Speaker counting and DER of the embedded diarizer on calls built from real speech.

Test calls are made of real recordings in ../shared/data: RAVDESS actors (studio speech,
two sentences, eight emotions) and the two earnings-call executives of Qin & Yang (2019)
(real conference-call audio).  Each call has 3 to 8 speakers (each with at least one turn), one of them dominant (50-70%
of the speech, turns of 20-90 s), the others in turns of 2-30 s, pauses of 0.2-1.0 s
between turns; a turn is consecutive clips of one speaker with their leading and trailing
silence trimmed.  Two references are scored:
- ``clip`` (the headline figure): each trimmed clip is one reference segment, pauses inside
  it included;
- ``speech``: inside each clip only the 10 ms frames within 35 dB of the clip's loudest frame
  (the trimming rule), with a speaker's pauses shorter than 0.3 s bridged.  Pauses inside a
  sentence of a real call are silence, and reference boundaries that count them as speech
  inflate DER (loose boundaries of ASR corpora reused for diarization do the same: arXiv
  2507.09226, "Can We Really Repurpose Multi-Speaker ASR Corpus for Speaker Diarization?");
  the figure says how much of the ``clip`` error is such pauses.

The calls are split so that nothing is calibrated on the calls it is scored on:
- calibration: RAVDESS actors 01-10 and the Amazon executive (Darin Manney);
- held out:    RAVDESS actors 11-20 and the Twitter executive (Jack Dorsey).

    .venv/bin/python benchmarks/diarization_real.py --calls 8 --heldout 16         # sweep, choose, report
    .venv/bin/python benchmarks/diarization_real.py --config threshold=0.6,min_cluster_s=3,centroid_merge=0.4 --heldout 16
    .venv/bin/python benchmarks/diarization_real.py --calls 0 --heldout 16 --bridges 0,0.1,0.2,0.3   # pause rule
    .venv/bin/python benchmarks/diarization_real.py --calls 0 --heldout 16 --config min_duration_off=0.2  # gap fill
    .venv/bin/python benchmarks/diarization_real.py --calls 8 --heldout 16 --variant reassign2 --config threshold=0.6
    .venv/bin/python benchmarks/diarization_real.py --calls 8 --heldout 16 --given-count --config count_rule=cut
    .venv/bin/python benchmarks/diarization_real.py --calls 0 --heldout 16 --tracks        # where the confusion is
``--given-count`` gives the diarizer each call's true number of speakers, as a manifest's
``speakers_hint`` does; ``count_rule`` (``DiarizationConfig``) says how it is used.
``--first N`` starts the held-out calls at seed N: fresh draws of the same split (the reported
calls are 0-15); every held-out DER is printed with a 95% interval from resampling the calls.

``--variant`` replaces step 4 of the diarizer (clustering) for the run by an alternative that
was measured and not adopted (benchmarks/README.md): ``reassignN`` (N passes assigning every
track to the nearest speech-weighted centroid, cannot-links kept) or ``nme_sc`` (auto-tuned
spectral clustering, Park et al. 2019), and also scores the pyannote sample with it.

For every call the expensive part (VAD, segmentation, track embeddings) runs once; each
clustering setting is then applied to the same tracks.  A setting is chosen on the
calibration calls (the mean DER, with ties broken by the share of calls whose speaker count
is within one), and reported on the held-out calls beside the shipped default.
Ends with name=value lines.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT / ".." / "shared" / "data"

import numpy as np  # noqa: E402


def _trim(x: np.ndarray, sr: int = 16_000, db: float = -35.0) -> np.ndarray:
    """Drop leading/trailing frames more than ``db`` below the clip's peak frame energy."""
    f = 160
    n = len(x) // f
    if n == 0:
        return x
    e = 10 * np.log10(np.mean(x[: n * f].reshape(n, f) ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(e > e.max() + db)
    return x[on[0] * f:(on[-1] + 1) * f] if len(on) else x[:0]


def speech_reference(x: np.ndarray, ref: list, db: float = -35.0, bridge_s: float = 0.3) -> list:
    """The ``speech`` reference: frames of each clip within ``db`` of its loudest frame, a
    speaker's pauses shorter than ``bridge_s`` bridged (see the module docstring)."""
    from pipelines.speech.vad import binarize
    from pipelines.types import Turn

    f = 160
    n = len(x) // f
    e = 10 * np.log10(np.mean(x[: n * f].reshape(n, f) ** 2, axis=1) + 1e-12)
    active: dict[str, np.ndarray] = {}
    for r in ref:
        a, b = int(round(r.start_s * 100)), min(int(round(r.end_s * 100)), n)
        if b > a:
            m = active.setdefault(r.speaker, np.zeros(n, np.float32))
            m[a:b] = np.maximum(m[a:b], e[a:b] > e[a:b].max() + db)
    out = [Turn(round(a, 3), round(b, 3), spk) for spk, m in active.items()
           for a, b in binarize(m, 0.01, 0.5, 0.5, 0.0, bridge_s)]
    return sorted(out, key=lambda t: (t.start_s, t.speaker))


def speakers(split: str) -> dict[str, list[Path]]:
    """Speaker -> clip paths of one split."""
    out: dict[str, list[Path]] = {}
    with (SHARED / "ravdess" / "labels.csv").open() as f:
        for r in csv.DictReader(f):
            actor = int(r["speaker"].split("_")[1])
            if (actor <= 10) == (split == "calibration"):
                out.setdefault(r["speaker"], []).append(SHARED / "ravdess" / r["path"])
    exec_name = "Darin Manney" if split == "calibration" else "Jack Dorsey"
    with (SHARED / "earnings_calls_qin2019" / "labels.csv").open() as f:
        for r in csv.DictReader(f):
            if r["speaker"] == exec_name:
                out.setdefault(exec_name, []).append(SHARED / "earnings_calls_qin2019" / r["path"])
    return out


def build_call(split: str, seed: int, cache: dict) -> tuple[np.ndarray, list, list[Path]]:
    """(samples, reference turns, the clip of each reference turn) of one test call."""
    import soundfile as sf

    from pipelines.types import Turn

    rng = np.random.default_rng(seed + (0 if split == "calibration" else 10_000))
    pool = speakers(split)
    execs = [s for s in pool if not s.startswith("ravdess")]
    n = int(rng.integers(3, 9))
    dominant = execs[0] if rng.random() < 0.5 else str(rng.choice([s for s in pool if s.startswith("ravdess")]))
    others = list(rng.choice([s for s in pool if s != dominant and s.startswith("ravdess")], n - 1, replace=False))

    def clip(spk: str) -> tuple[np.ndarray, Path]:
        path = pool[spk][int(rng.integers(len(pool[spk])))]
        if path not in cache:
            x, sr = sf.read(path, dtype="float32")
            cache[path] = _trim(x if x.ndim == 1 else x.mean(1))
        return cache[path], path

    total = float(rng.uniform(180, 300))
    parts, ref, clips, t = [], [], [], 0.0
    order = [dominant]
    unheard = list(others)
    while t < total or unheard:          # every speaker of the call has at least one turn
        spk = order[-1]
        if spk in unheard:
            unheard.remove(spk)
        want = rng.uniform(20, 90) if spk == dominant else rng.uniform(2, 30)
        got = 0.0
        while got < want:
            x, path = clip(spk)
            if len(x) < 1600:
                continue
            parts.append(x)
            ref.append(Turn(round(t, 3), round(t + len(x) / 16_000, 3), spk))
            clips.append(path)
            t += len(x) / 16_000
            got += len(x) / 16_000
            gap = float(rng.uniform(0.05, 0.25))
            parts.append(np.zeros(int(gap * 16_000), np.float32))
            t += gap
        gap = float(rng.uniform(0.2, 1.0))
        parts.append(np.zeros(int(gap * 16_000), np.float32))
        t += gap
        if spk != dominant and rng.random() < 0.6:
            order.append(dominant)
        else:
            order.append(unheard.pop(0) if unheard else str(rng.choice(others)))
    x = np.concatenate(parts).astype(np.float32)
    x = 0.9 * x / (np.abs(x).max() + 1e-9)
    return x, ref, clips


def prepare(split: str, seeds: range, models, profile) -> list[dict]:
    from pipelines.speech.diarization import prepare_tracks
    from pipelines.speech.segmentation import run_segmentation
    from pipelines.types import Audio
    from pipelines.speech.vad import detect_speech

    out, cache = [], {}
    for seed in seeds:
        t0 = time.perf_counter()
        x, ref, _ = build_call(split, seed, cache)
        audio = Audio(Path(f"{split}_{seed}.wav"), x)
        speech = detect_speech(audio, models.vad)
        seg = run_segmentation(audio, models.segmentation)
        tr = prepare_tracks(audio, seg, models.encoder, profile.diarization)
        out.append({"seed": seed, "audio": audio, "ref": ref, "speech": speech, "seg": seg, "tracks": tr,
                    "ref_speech": speech_reference(x, ref), "n_ref": len({r.speaker for r in ref})})
        print(f"  {split} call {seed}: {audio.duration_s:.0f} s, {out[-1]['n_ref']} speakers, "
              f"{tr.n if tr else 0} tracks ({time.perf_counter() - t0:.1f} s)", flush=True)
    return out


def score(calls: list[dict], cfg, bridges: tuple[float, ...] = (), given_count: bool = False) -> dict:
    from pipelines.speech.diarization import cluster_tracks
    from pipelines.speech.evaluation import diarization_error

    ders, parts, speech_ders, speech_parts, within, counts, by_bridge = [], [], [], [], [], [], {}
    for c in calls:
        d = cluster_tracks(c["audio"], c["seg"], c["tracks"], c["n_ref"] if given_count else None, cfg, c["speech"])
        r = diarization_error(c["ref"], d.turns)
        ders.append(r.der)
        parts.append((r.missed, r.false_alarm, r.confusion))
        rs = diarization_error(c["ref_speech"], d.turns)
        speech_ders.append(rs.der)
        speech_parts.append((rs.missed, rs.false_alarm, rs.confusion))
        for b in bridges:
            by_bridge.setdefault(b, []).append(
                diarization_error(speech_reference(c["audio"].samples, c["ref"], bridge_s=b), d.turns).der)
        counts.append((len(d.speakers), c["n_ref"]))
        within.append(abs(len(d.speakers) - c["n_ref"]) <= 1)
    miss, fa, conf = np.mean(parts, axis=0)
    s_miss, s_fa, s_conf = np.mean(speech_parts, axis=0)
    boot = np.random.default_rng(0).choice(ders, (2000, len(ders))).mean(axis=1)   # calls resampled
    return {"der": float(np.mean(ders)), "der_pooled_max": float(np.max(ders)), "within1": float(np.mean(within)),
            "der_ci95": tuple(float(v) for v in np.percentile(boot, [2.5, 97.5])),
            "miss": float(miss), "false_alarm": float(fa), "confusion": float(conf),
            "der_speech_ref": float(np.mean(speech_ders)), "counts": counts,
            "speech_ref_parts": (float(s_miss), float(s_fa), float(s_conf)),
            "der_by_bridge": {b: float(np.mean(v)) for b, v in by_bridge.items()}}


# --------------------------------------------------------------------------------------
# clustering alternatives measured and not adopted (--variant)
# --------------------------------------------------------------------------------------
def reassign_tracks(E: np.ndarray, secs: np.ndarray, cannot: np.ndarray, labels: np.ndarray, k: int,
                    passes: int) -> np.ndarray:
    """Each pass: every track goes to the speaker whose speech-weighted centroid is nearest, longest
    tracks first, never to a speaker that a track heard in the same window already took (pyannote 3's
    assignment of all embeddings to the centroids, with the cannot-links); labels (n,) in 0..k-1."""
    w = np.maximum(secs, 1e-3)
    for _ in range(passes):
        C = np.stack([(E[labels == s] * w[labels == s, None]).sum(axis=0) for s in range(k)])
        C /= np.linalg.norm(C, axis=1, keepdims=True) + 1e-12
        S = E @ C.T
        S[:, ~np.isin(np.arange(k), labels)] = -np.inf
        new = np.full(len(E), -1)
        for i in np.argsort(-secs):
            s = S[i].copy()
            taken = new[cannot[i] & (new >= 0)]
            if len(taken) and np.isfinite(np.delete(s, taken)).any():
                s[taken] = -np.inf
            new[i] = int(np.argmax(s))
        if (new == labels).all():
            break
        labels = new
    return labels


def nme_sc(E: np.ndarray, weights: np.ndarray, cannot: np.ndarray, threshold: float,
           num_speakers: int | None = None, cannot_penalty: float = 0.0, max_speakers: int = 10,
           max_rp: float = 0.25) -> np.ndarray:
    """Spectral clustering auto-tuned by the normalised maximum eigengap (NME-SC, Park et al. 2019,
    as in NeMo): cosine affinities scaled to [0, 1], cannot-linked pairs 0; for each p up to
    ``max_rp`` x n keep every row's p largest, symmetrise, take the unnormalised Laplacian's
    eigengaps; p minimises p / (largest gap / largest eigenvalue); the number of speakers is the
    position of the largest gap (or ``num_speakers``); k-means on that many eigenvectors. Same
    signature as ``constrained_ahc`` (``threshold`` and ``weights`` unused)."""
    from sklearn.cluster import KMeans

    n = len(E)
    if n < 3:
        return np.zeros(n, np.int64)
    A = np.clip(E @ E.T, -1.0, 1.0)
    A = (A - A.min()) / (A.max() - A.min() + 1e-12)
    A[cannot] = 0.0
    best = None
    for p in range(1, max(2, int(n * max_rp)) + 1):
        B = np.zeros_like(A)
        np.put_along_axis(B, np.argsort(-A, axis=1)[:, :p], 1.0, axis=1)
        B[cannot] = 0.0
        B = 0.5 * (B + B.T)
        lam, vec = np.linalg.eigh(np.diag(B.sum(axis=1)) - B)
        gaps = np.diff(lam[: min(max_speakers, n - 1) + 1])
        g = gaps.max() / (lam.max() + 1e-10)
        if g > 0 and (best is None or p / g < best[0]):
            best = (p / g, vec, gaps)
    if best is None:
        return np.zeros(n, np.int64)
    _, vec, gaps = best
    k = num_speakers or int(np.argmax(gaps)) + 1
    return KMeans(k, n_init=10, random_state=0).fit_predict(vec[:, :k]).astype(np.int64)


@contextlib.contextmanager
def clustering_variant(name: str):
    """Step 4 of the diarizer (``pipelines.speech.diarization.track_labels``) changed for the run."""
    import pipelines.speech.diarization as D

    saved = D.constrained_ahc, D.track_labels
    if name == "nme_sc":
        D.constrained_ahc = nme_sc
    elif name.startswith("reassign") and name[len("reassign"):].isdigit():
        passes = int(name[len("reassign"):])

        def track_labels(tr, *a, **k):
            labels, centroids = saved[1](tr, *a, **k)
            return reassign_tracks(tr.E, tr.secs, tr.cannot, labels.copy(), len(centroids), passes), centroids

        D.track_labels = track_labels
    elif name != "shipped":
        raise SystemExit(f"unknown --variant {name!r}: shipped, nme_sc or reassignN")
    try:
        yield
    finally:
        D.constrained_ahc, D.track_labels = saved


def prepare_sample(models, profile) -> dict:
    """pyannote.audio's sample, its RTTM and the expensive part of the diarizer (VAD,
    segmentation, track embeddings), computed once: each clustering is then scored by
    ``sample_der`` on the same tracks, as the calls are by ``score``."""
    import pyannote.audio

    from pipelines.speech.audio import decode_audio
    from pipelines.speech.diarization import prepare_tracks
    from pipelines.speech.evaluation import read_rttm
    from pipelines.speech.segmentation import run_segmentation
    from pipelines.speech.vad import detect_speech

    folder = Path(pyannote.audio.__file__).parent / "sample"
    audio = decode_audio(folder / "sample.wav")
    seg = run_segmentation(audio, models.segmentation)
    return {"audio": audio, "seg": seg, "tracks": prepare_tracks(audio, seg, models.encoder, profile.diarization),
            "speech": detect_speech(audio, models.vad), "ref": next(iter(read_rttm(folder / "sample.rttm").values()))}


def sample_der(sample: dict, cfg, given_count: bool = False) -> float:
    """DER of the clustering (as the diarizer module stands) on the prepared pyannote sample."""
    import pipelines.speech.diarization as D
    from pipelines.speech.evaluation import diarization_error

    n = len({t.speaker for t in sample["ref"]}) if given_count else None
    d = D.cluster_tracks(sample["audio"], sample["seg"], sample["tracks"], n, cfg, sample["speech"])
    return diarization_error(sample["ref"], d.turns).der


def track_errors(c: dict, cfg) -> dict[str, float]:
    """Where a call's confusion comes from, in seconds of track speech (activity on the global
    frame grid): each track's speaker is the reference speaker of most of its speech, each
    cluster's the reference speaker of most of its tracks' speech; a track is ``right`` when the
    two agree. Keys: reliable_right / reliable_wrong (tracks that were clustered), short_right /
    short_wrong (tracks under ``min_embed_s``, given to the nearest centroid), impure (speech
    inside a track that is not its own speaker's)."""
    import pipelines.speech.diarization as D

    seg, tr = c["seg"], c["tracks"]
    track, active = D.stitch_tracks(seg, cfg)
    spans = D.track_activity(seg, track, active, tr.n)
    labels, centroids = D.track_labels(tr, None, cfg)
    names = sorted({r.speaker for r in c["ref"]})
    owner = np.zeros((tr.n, len(names)))               # (tracks, reference speakers): seconds
    for i, (g0, m) in enumerate(spans):
        t = (g0 + np.flatnonzero(m) + 0.5) * seg.frame_step
        for r in c["ref"]:
            owner[i, names.index(r.speaker)] += np.count_nonzero((t >= r.start_s) & (t < r.end_s)) * seg.frame_step
    cluster_owner = np.zeros((len(centroids), len(names)))
    np.add.at(cluster_owner, labels, owner)
    right = cluster_owner.argmax(axis=1)[labels] == owner.argmax(axis=1)
    reliable = tr.secs >= cfg.min_embed_s
    total = owner.sum(axis=1)
    out = {f"{kind}_{ok}": float(total[(reliable if kind == "reliable" else ~reliable) & (right if ok == "right" else ~right)].sum())
           for kind in ("reliable", "short") for ok in ("right", "wrong")}
    out["impure"] = float((total - owner.max(axis=1)).sum())
    return out


def _value(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v


def main() -> None:
    from pipelines.speech.models import load_models
    from pipelines.settings import get_profile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=8, help="calibration calls (0: no sweep)")
    ap.add_argument("--heldout", type=int, default=16)
    ap.add_argument("--first", type=int, default=0, help="first held-out call (seed); the reported calls are 0-15, "
                    "later ones are fresh draws of the same split, to check a figure on calls no run has seen")
    ap.add_argument("--config", default="", help="score this setting instead of sweeping (k=v,k=v)")
    ap.add_argument("--variant", default="shipped", help="clustering: shipped, nme_sc or reassignN (see above)")
    ap.add_argument("--given-count", action="store_true", help="give the diarizer each call's true number of "
                    "speakers (as a manifest's speakers_hint does): scores DiarizationConfig.count_rule")
    ap.add_argument("--tracks", action="store_true", help="also say where the held-out confusion comes from, "
                    "by track (track_errors), for the shipped setting")
    ap.add_argument("--bridges", default="", help="also score against the speech reference built with these "
                    "pause bridges in s (comma-separated; the reported one uses 0.3)")
    args = ap.parse_args()
    bridges = tuple(float(b) for b in args.bridges.split(",") if b)
    with clustering_variant(args.variant):   # an unknown name stops here, before minutes of preparation
        pass
    profile = get_profile("embedded")
    base = profile.diarization
    chosen = base
    if args.config:      # checked before minutes of preparation
        try:
            chosen = replace(base, **{k: _value(v) for k, v in (kv.split("=") for kv in args.config.split(","))})
        except (TypeError, ValueError) as e:     # an unknown field, a k=v without '=', a bad count_rule
            raise SystemExit(f"--config {args.config!r}: {e}") from None
    models = load_models(profile)
    calib = prepare("calibration", range(args.calls), models, profile) if args.calls else []
    if calib and not args.config:
        grid = [replace(base, threshold=t, min_cluster_s=m, centroid_merge=c)
                for t, m, c in itertools.product((0.4, 0.5, 0.6, 0.7), (2.0, 3.0, 5.0), (0.0, 0.3, 0.35, 0.4, 0.45, 0.5))]
        # min_cluster_s stays at most 5 s: on the pyannote sample and the demo calls a speaker with
        # 5-10 s of speech is real (10 s gave the sample one speaker and DER 50%)
        with clustering_variant(args.variant):
            results = [(cfg, score(calib, cfg)) for cfg in grid]
        for cfg, r in results:
            print(f"  calibration threshold {cfg.threshold:.2f} min_cluster_s {cfg.min_cluster_s:4.0f} "
                  f"centroid_merge {cfg.centroid_merge:.2f}: "
                  f"DER {100 * r['der']:.1f}%, count within 1 on {r['within1']:.0%}", flush=True)
        chosen, best = min(results, key=lambda cr: (cr[1]["der"] - 0.05 * cr[1]["within1"]))
        print(f"chosen on the calibration calls: threshold {chosen.threshold}, min_cluster_s {chosen.min_cluster_s}, "
              f"centroid_merge {chosen.centroid_merge} "
              f"(DER {100 * best['der']:.1f}%, within 1 on {best['within1']:.0%})")
    held = prepare("heldout", range(args.first, args.first + args.heldout), models, profile)
    pyannote_sample = prepare_sample(models, profile)
    if args.tracks:
        parts = [track_errors(c, base) for c in held]
        sums = {k: sum(p[k] for p in parts) for k in parts[0]}
        whole = sum(v for k, v in sums.items() if k != "impure")
        print("held-out track speech, shipped setting: " + ", ".join(f"{k} {100 * v / whole:.1f}%" for k, v in sums.items()))
    rows = [("default", base, "shipped", args.given_count), ("chosen", chosen, args.variant, args.given_count)]
    if args.given_count:
        rows.insert(0, ("default_no_count", base, "shipped", False))
    for name, cfg, variant, given in rows:
        with clustering_variant(variant):
            if calib and args.config:
                r = score(calib, cfg, given_count=given)
                print(f"calibration ({len(calib)} calls), {name}, clustering {variant}: mean DER {100 * r['der']:.1f}% "
                      f"(speech reference {100 * r['der_speech_ref']:.1f}%), count within 1 on {r['within1']:.0%}")
            r = score(held, cfg, bridges, given)
            sample = sample_der(pyannote_sample, cfg, given)
        for b, der in r["der_by_bridge"].items():
            print(f"held-out, {name}: speech reference with pauses under {b:.2f} s bridged: DER {100 * der:.1f}%")
        print(f"held-out ({len(held)} calls from {args.first}), {name}, clustering {variant} (threshold {cfg.threshold}, min_cluster_s "
              f"{cfg.min_cluster_s}, centroid_merge {cfg.centroid_merge}{f', count given, rule {cfg.count_rule}' if given else ''}): "
              f"mean DER {100 * r['der']:.1f}% (95% interval over "
              f"calls {100 * r['der_ci95'][0]:.1f}-{100 * r['der_ci95'][1]:.1f}%, worst "
              f"{100 * r['der_pooled_max']:.1f}%; missed {100 * r['miss']:.1f}, false alarm {100 * r['false_alarm']:.1f}, "
              f"confusion {100 * r['confusion']:.1f}), speech reference {100 * r['der_speech_ref']:.1f}% (missed {100 * r['speech_ref_parts'][0]:.1f}, false alarm "
              f"{100 * r['speech_ref_parts'][1]:.1f}, confusion {100 * r['speech_ref_parts'][2]:.1f}), count within 1 on "
              f"{r['within1']:.0%}; (found, true) {r['counts']}; pyannote sample DER {100 * sample:.2f}%")
        print(f"heldout_{name}_der={r['der']:.4f}\nheldout_{name}_der_speech_ref={r['der_speech_ref']:.4f}\n"
              f"heldout_{name}_within1={r['within1']:.4f}\npyannote_sample_{name}_der={sample:.4f}")

if __name__ == "__main__":
    main()
