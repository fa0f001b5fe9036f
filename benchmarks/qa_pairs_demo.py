"""Question-answer pairs of a processed demo catalog against the demo's reference turns.

    .venv/bin/speechfin run --catalog /tmp/demo_cat        # the main job on the demo archive
    .venv/bin/python benchmarks/qa_pairs_demo.py /tmp/demo_cat

The reference pairs come from ``ser_models.qa.qa_pairs`` run on the reference transcript
(``pipelines/demo_archive/reference/*.stm``: one line per spoken sentence with its speaker;
CHAIR* is the chair, everyone else a journalist; Q&A from the first journalist sentence).
A reference question is paired when a pipeline question overlaps it in time and has the same
status (answered or not) and answerer role; it is also timed right when, if answered, its answer
starts within ``--tolerance`` seconds of the reference answer.
Ends with name=value lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def reference_pairs(stm: Path) -> pd.DataFrame:
    from ser_models.qa import qa_pairs

    rows = []
    for i, line in enumerate(stm.read_text().splitlines()):
        _, _, spk, a, b, text = line.split(" ", 5)
        rows.append({"segment_id": i, "speaker": spk, "role": "chair" if spk.startswith("CHAIR") else "journalist",
                     "start_s": float(a), "end_s": float(b), "text": text})
    seg = pd.DataFrame(rows)
    seg["section"] = np.where(seg.index >= seg.index[seg["role"] == "journalist"].min(), "qa", "prepared")
    emo = pd.DataFrame({"segment_id": seg["segment_id"], "tone": 0.0, "text_tone": 0.0, "fused_tone": 0.0,
                        "skip_reason": ""})
    spk = seg.groupby("speaker", as_index=False).agg(role=("role", "first")).assign(name="", voice_id="")
    return qa_pairs(seg, emo, spk)


def match(ref: pd.DataFrame, got: pd.DataFrame, tolerance: float | None = None) -> list[bool]:
    """Per reference question: paired (and, with ``tolerance``, its answer start timed within it)."""
    out = []
    for q in ref.itertuples():
        ov = got[(got["q_start_s"] < q.q_end_s) & (got["q_end_s"] > q.q_start_s)]
        ok = any(x.status == q.status and x.answerer_role == q.answerer_role and
                 (tolerance is None or not q.answered or abs(x.a_start_s - q.a_start_s) <= tolerance)
                 for x in ov.itertuples())
        out.append(ok)
    return out


def main() -> None:
    from data_catalog.store import Catalog

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog")
    ap.add_argument("--tolerance", type=float, default=0.5)
    args = ap.parse_args()
    cat = Catalog(args.catalog)
    n_ref = n_ok = n_got = n_timed = 0
    for r in cat.read("calls").to_pandas().sort_values("event_time").itertuples():
        stm = ROOT / "pipelines" / "demo_archive" / "reference" / f"{Path(r.source_uri).stem}.stm"
        if not stm.exists():
            continue
        ref = reference_pairs(stm)
        got = cat.read("qa_pairs", r.call_id).to_pandas() if cat.has("qa_pairs", r.call_id) else pd.DataFrame()
        ok = match(ref, got) if len(got) else [False] * len(ref)
        timed = match(ref, got, args.tolerance) if len(got) else [False] * len(ref)
        print(f"{stm.stem}: {len(ref)} reference questions, {sum(ok)} paired with their answer ({sum(timed)} with the "
              f"answer start within {args.tolerance:g} s); pipeline found {len(got)} questions")
        n_ref, n_ok, n_got, n_timed = n_ref + len(ref), n_ok + sum(ok), n_got + len(got), n_timed + sum(timed)
    print(f"paired_share={n_ok / max(n_ref, 1):.4f}\ntimed_share={n_timed / max(n_ref, 1):.4f}\n"
          f"reference_questions={n_ref}\npipeline_questions={n_got}")


if __name__ == "__main__":
    main()
