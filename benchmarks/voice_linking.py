"""Voice identities across calls: linking precision and recall on real speakers.

Each "call" has 3-6 speakers drawn from real recordings in ../shared/data: RAVDESS actors
(studio speech, eight emotions) and the earnings-call executives of Qin & Yang (2019).  A
speaker's appearance in a call is the embedding of the embedded profile's speaker encoder
(CAM++, as the diarizer computes it per speaker track) of 3-8 of their clips,
trimmed and concatenated; a clip is used again only once all of that speaker's clips have
been used, so appearances are different speech, often in another emotion.  Every speaker appears in several
calls.  The calls are written to a catalog unlinked, as workers write them, and linked by
``pipelines.voices.link_voices_catalog`` in batches of 4 calls (one batch per "run").

Scores (pairs of appearances): precision = share of pairs given one voice_id that are one
person; recall = share of one person's pairs given one voice_id.  Also: how many ids each
person got, and whether any id, once given, changed (it must not).

Calibration (the distance threshold is chosen here): RAVDESS actors 01-12 and the Amazon
executive.  Held out: actors 13-24 and the Twitter executive.

    .venv/bin/python benchmarks/voice_linking.py            # ~3 min
Ends with name=value lines.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT / ".." / "shared" / "data"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def pool(split: str) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    with (SHARED / "ravdess" / "labels.csv").open() as f:
        for r in csv.DictReader(f):
            actor = int(r["speaker"].split("_")[1])
            if (actor <= 12) == (split == "calibration"):
                out.setdefault(r["speaker"], []).append(SHARED / "ravdess" / r["path"])
    name = "Darin Manney" if split == "calibration" else "Jack Dorsey"
    with (SHARED / "earnings_calls_qin2019" / "labels.csv").open() as f:
        for r in csv.DictReader(f):
            if r["speaker"] == name:
                out.setdefault(name, []).append(SHARED / "earnings_calls_qin2019" / r["path"])
    return out


def appearances(split: str, n_calls: int, seed: int, encoder) -> pd.DataFrame:
    """call_id, speaker, person, embedding: one row per speaker appearance."""
    import soundfile as sf

    from diarization_real import _trim as trim

    rng = np.random.default_rng(seed)
    speakers = pool(split)
    order = {p: list(rng.permutation(len(c))) for p, c in speakers.items()}  # each clip used once, in this order
    rows = []
    for i in range(n_calls):
        people = rng.choice(sorted(speakers), int(rng.integers(3, 7)), replace=False)
        for k, person in enumerate(people):
            take = int(rng.integers(3, 9))
            if len(order[person]) < take:
                order[person] = list(rng.permutation(len(speakers[person])))
            idx, order[person] = order[person][:take], order[person][take:]
            x = np.concatenate([trim(sf.read(speakers[person][j], dtype="float32")[0]) for j in idx])
            rows.append({"call_id": f"{split[:3]}{i:04d}", "speaker": f"SPEAKER_{k:02d}", "person": person,
                         "embedding": encoder(x)})
    return pd.DataFrame(rows)


def write_unlinked(root: Path, app: pd.DataFrame, calls: list[str], model: str) -> None:
    from data_catalog import Catalog
    from pipelines.settings import PIPELINE_VERSION

    cat = Catalog(root)
    t0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
    for cid in calls:
        rows = app[app["call_id"] == cid]
        cat.write("speakers", cid, [{"call_id": cid, "speaker": s, "role": "executive", "name": "", "voice_id": "",
                                     "talk_time_s": 10.0, "n_segments": 1} for s in rows["speaker"]])
        cat.write("voices", cid, [{"call_id": cid, "speaker": r.speaker, "voice_id": "", "embedding_model": model,
                                   "embedding": np.asarray(r.embedding, np.float32).tolist()} for r in rows.itertuples()])
        cat.write("calls", cid, [{"call_id": cid, "event_type": "earnings_call", "entity": "X",
                                  "event_time": t0 + timedelta(days=int(cid[3:])), "language": "en", "duration_s": 60.0,
                                  "source_uri": f"{cid}.wav", "title": cid, "processed_at": datetime.now(timezone.utc),
                                  "pipeline_version": PIPELINE_VERSION, "profile": "embedded"}])


def link_in_batches(app: pd.DataFrame, threshold: float, model: str, batch: int = 4) -> tuple[pd.DataFrame, int]:
    """Link call by call in batches; return the linked appearances and how many ids changed."""
    from data_catalog import Catalog
    from pipelines.voices import link_voices_catalog

    calls = sorted(app["call_id"].unique())
    changed, seen = 0, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cat"
        for b in range(0, len(calls), batch):
            write_unlinked(root, app, calls[b:b + batch], model)
            link_voices_catalog(Catalog(root), max_distance=threshold)
            ids = Catalog(root).read("voices").to_pandas()
            for r in ids.itertuples():
                key = (r.call_id, r.speaker)
                if key in seen and seen[key] != r.voice_id:
                    changed += 1
                seen[key] = r.voice_id
    linked = app.merge(ids[["call_id", "speaker", "voice_id"]], on=["call_id", "speaker"])
    return linked, changed


def scores(linked: pd.DataFrame) -> dict[str, float]:
    person = linked["person"].to_numpy()
    vid = linked["voice_id"].to_numpy()
    iu = np.triu_indices(len(linked), 1)
    same_p = person[iu[0]] == person[iu[1]]
    same_v = vid[iu[0]] == vid[iu[1]]
    tp = int((same_p & same_v).sum())
    return {"precision": tp / max(1, int(same_v.sum())), "recall": tp / max(1, int(same_p.sum())),
            "ids_per_person": linked.groupby("person")["voice_id"].nunique().mean(),
            "persons": linked["person"].nunique(), "appearances": len(linked)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=40, help="calls per split")
    args = ap.parse_args()
    from pipelines.settings import get_profile
    from pipelines.speech.models import load_models

    enc = load_models(get_profile("embedded")).encoder
    t0 = time.perf_counter()
    cal = appearances("calibration", args.calls, 1, enc)
    held = appearances("heldout", args.calls, 2, enc)
    print(f"{len(cal)} calibration and {len(held)} held-out appearances embedded in {time.perf_counter() - t0:.0f} s")
    grid = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60]
    best, best_f1 = None, -1.0
    for th in grid:
        s = scores(link_in_batches(cal, th, enc.id)[0])
        f1 = 2 * s["precision"] * s["recall"] / max(1e-9, s["precision"] + s["recall"])
        print(f"calibration threshold {th:.2f}: precision {s['precision']:.3f} recall {s['recall']:.3f} "
              f"F1 {f1:.3f} ids/person {s['ids_per_person']:.1f}")
        if f1 > best_f1:
            best, best_f1 = th, f1
    from pipelines.voices import match_distance

    figures = {}
    for label, th in (("default", match_distance(enc.id)), ("chosen", best)):
        linked, changed = link_in_batches(held, th, enc.id)
        s = scores(linked)
        print(f"held-out, {label} threshold {th:.2f}: precision {s['precision']:.3f} recall {s['recall']:.3f}, "
              f"{s['ids_per_person']:.1f} ids per person ({s['persons']} persons, {s['appearances']} appearances), "
              f"ids changed after being given: {changed}")
        figures |= {f"{label}_threshold": th, f"{label}_precision": s["precision"], f"{label}_recall": s["recall"],
                    f"{label}_ids_per_person": s["ids_per_person"], f"{label}_ids_changed": changed}
    for k, v in figures.items():
        print(f"{k}={v:.4f}")


if __name__ == "__main__":
    main()
