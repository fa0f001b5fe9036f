"""Transcript-aware processing on the demo archive, against the generator's reference turns.

    .venv/bin/speechfin run --catalog /tmp/demo_cat          # the main job (the demo has transcripts)
    .venv/bin/python benchmarks/transcript_demo.py /tmp/demo_cat

Per call and over the archive:
- speaker names and roles: every reference speaker (STM) must be a catalog speaker with the
  same name (underscores as spaces, case-insensitive) and role (CHAIR* chair, else journalist);
- word-level speaker attribution: the share of the catalog's words (midpoint time) that fall
  inside a reference sentence of the same speaker, among those inside any reference sentence;
- turn boundaries: for each reference turn (consecutive sentences of one speaker) the catalog
  turn of that speaker that overlaps it most; median |start difference| and |end difference|;
- DER (no collar, overlap counted) of the catalog's segments against the generator's RTTM;
- the transcripts table (status, coverages, alignment seconds).
Ends with name=value lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REFERENCE = ROOT / "pipelines" / "demo_archive" / "reference"


def reference(stem: str) -> pd.DataFrame:
    rows = []
    for line in (REFERENCE / f"{stem}.stm").read_text().splitlines():
        _, _, spk, a, b, _ = line.split(" ", 5)
        rows.append({"speaker": spk.replace("_", " ").lower(), "start_s": float(a), "end_s": float(b)})
    return pd.DataFrame(rows)


def turns_of(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Consecutive rows of one speaker merged (rows sorted by start)."""
    df = df.sort_values("start_s").reset_index(drop=True)
    run = (df[key] != df[key].shift()).cumsum()
    return df.groupby(run).agg(speaker=(key, "first"), start_s=("start_s", "min"), end_s=("end_s", "max")).reset_index(drop=True)


def evaluate_call(cat, call_id: str, stem: str) -> dict:
    ref = reference(stem)
    spk = cat.read("speakers", call_id).to_pandas()
    names = dict(zip(spk["speaker"], spk["name"].str.lower()))
    roles = dict(zip(spk["name"].str.lower(), spk["role"]))
    want_roles = {s: ("chair" if s.startswith("chair") else "journalist") for s in ref["speaker"].unique()}
    names_ok = all(roles.get(s) == r for s, r in want_roles.items())
    words = cat.read("words", call_id).to_pandas()
    segs = cat.read("segments", call_id).to_pandas()
    words = words.merge(segs[["segment_id", "speaker"]], on="segment_id")
    words["who"] = words["speaker"].map(names).fillna("")
    mid = ((words["start_s"] + words["end_s"]) / 2).to_numpy()
    ok = inside = 0
    for w, m in zip(words["who"], mid):
        hit = ref[(ref["start_s"] <= m) & (ref["end_s"] >= m)]
        if len(hit):
            inside += 1
            ok += int(w == hit["speaker"].iloc[0])
    got_turns = turns_of(segs.assign(who=segs["speaker"].map(names).fillna("")), "who")
    ds, de = [], []
    for t in turns_of(ref, "speaker").itertuples():
        cand = got_turns[got_turns["speaker"] == t.speaker]
        ov = (np.minimum(cand["end_s"], t.end_s) - np.maximum(cand["start_s"], t.start_s)).clip(lower=0)
        if len(cand) and ov.max() > 0:
            best = cand.iloc[int(ov.argmax())]
            ds.append(abs(best.start_s - t.start_s))
            de.append(abs(best.end_s - t.end_s))
    tr = cat.read("transcripts", call_id).to_pandas() if cat.has("transcripts", call_id) else pd.DataFrame()
    from pipelines.speech.evaluation import diarization_error, read_rttm
    from pipelines.types import Turn

    rttm = [t for ts in read_rttm(REFERENCE / f"{stem}.rttm").values() for t in ts]
    der = diarization_error(rttm, [Turn(s.start_s, s.end_s, s.speaker) for s in segs.itertuples()]).der
    return {"stem": stem, "names_roles_ok": names_ok, "missing": sorted(s for s, r in want_roles.items() if roles.get(s) != r),
            "words_ok": ok, "words_in_reference": inside, "start_err": ds, "end_err": de, "der": der,
            "status": tr["status"].iloc[0] if len(tr) else "none",
            "asr_coverage": float(tr["asr_coverage"].iloc[0]) if len(tr) else np.nan,
            "align_s": float(tr["seconds"].iloc[0]) if len(tr) else np.nan}


def main() -> None:
    from data_catalog.store import Catalog

    cat = Catalog(sys.argv[1])
    rows = []
    for r in cat.read("calls").to_pandas().sort_values("event_time").itertuples():
        stem = Path(r.source_uri).stem
        if (REFERENCE / f"{stem}.stm").exists():
            e = evaluate_call(cat, r.call_id, stem)
            rows.append(e)
            print(f"{stem}: transcript {e['status']} (ASR coverage {e['asr_coverage']:.0%}, alignment {e['align_s']:.2f} s); "
                  f"names and roles {'right' if e['names_roles_ok'] else 'WRONG: ' + ', '.join(e['missing'])}; "
                  f"words attributed {e['words_ok']}/{e['words_in_reference']}; turn boundaries median "
                  f"{np.median(e['start_err']):.2f} s (start), {np.median(e['end_err']):.2f} s (end); DER {100 * e['der']:.1f}%")
    words = sum(e["words_ok"] for e in rows) / max(1, sum(e["words_in_reference"] for e in rows))
    starts = np.concatenate([e["start_err"] for e in rows])
    ends = np.concatenate([e["end_err"] for e in rows])
    print(f"names_roles_right={int(all(e['names_roles_ok'] for e in rows))}\nword_attribution={words:.4f}\n"
          f"boundary_start_median_s={np.median(starts):.3f}\nboundary_end_median_s={np.median(ends):.3f}\n"
          f"boundary_median_s={np.median(np.concatenate([starts, ends])):.3f}\nder_mean={np.mean([e['der'] for e in rows]):.4f}")


if __name__ == "__main__":
    main()
