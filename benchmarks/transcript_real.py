"""Transcript-aware processing on calls built from real speech, against their exact turns.

The held-out calls of ``diarization_real.py`` (RAVDESS actors 11-20 and the Twitter
executive, 3-8 speakers, one dominant) each get a plain-text transcript: one paragraph per
turn, ``Name: text``, the text being what each clip says (RAVDESS's sentence, the earnings
clip's aligned sentence). The call then goes through the front end as the flow runs it (VAD,
ASR, diarization, then ``call_speech`` with the transcript) and is scored:
- DER of the transcript's segments (each a sentence, speaker from the transcript) against the
  ``clip`` and the ``speech`` reference, beside the diarizer's own DER on the same call and
  that of the segments the call gets without its transcript (ASR sentences, diarized voices);
  the parts of each (missed, false alarm, confusion), and, as a diagnostic, the same outputs
  against a third reference, ``turn``: the ``clip`` reference with a speaker's pauses under
  0.3 s bridged (NIST RT's pause rule; the generator leaves 0.05-0.25 s of silence between two
  clips of one turn, which the ``clip`` reference counts as a pause and a turn-level
  annotation would not);
- word attribution: the share of the transcript's words (time midpoint) inside a reference
  turn that carry that turn's speaker's name;
- the alignment's coverage and the transcript status.
Nothing here is calibrated: the transcript path runs with its defaults.

    .venv/bin/python benchmarks/transcript_real.py --calls 16 [--cache /tmp/transcript_real] [--split calibration]
        [--config change_weight=5] [--first 16]
(``--cache``: keep each call's ASR words and diarization there, so that a change to the
transcript path is scored again in seconds.)
Ends with name=value lines.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from diarization_real import SHARED, build_call, speech_reference  # noqa: E402


def clip_texts() -> dict[Path, str]:
    from pipelines.speech.evaluation import read_labels

    return {p: t for corpus in ("ravdess", "earnings_calls_qin2019") for p, t in read_labels(SHARED / corpus / "labels.csv")}


def display_name(speaker: str) -> str:
    return f"Actor {speaker.split('_')[1]}" if speaker.startswith("ravdess_") else speaker


def transcript_text(ref: list, clips: list[Path], texts: dict[Path, str]) -> str:
    """One ``Name: text`` paragraph per turn (consecutive clips of one speaker). Each clip is one
    sentence; the corpora give it without punctuation, so it ends with a full stop, as in the
    transcripts users have."""
    paras: list[tuple[str, list[str]]] = []
    for turn, path in zip(ref, clips):
        if paras and paras[-1][0] == turn.speaker:
            paras[-1][1].append(texts[path].rstrip() + ".")
        else:
            paras.append((turn.speaker, [texts[path].rstrip() + "."]))
    return "\n\n".join(f"{display_name(s)}: {' '.join(t)}" for s, t in paras) + "\n"


def word_attribution(segments: list, names: dict[str, str], ref: list) -> tuple[int, int]:
    """(words inside a reference turn with that turn's speaker's name, words inside a reference turn)."""
    starts = np.array([r.start_s for r in ref])
    right = inside = 0
    for s in segments:
        if s.text_source != "transcript":
            continue
        for w in s.words:
            mid = (w.start_s + w.end_s) / 2
            i = int(np.searchsorted(starts, mid, side="right")) - 1
            if i < 0 or mid > ref[i].end_s:
                continue
            inside += 1
            right += names.get(w.speaker, "") == display_name(ref[i].speaker)
    return right, inside


def main() -> None:
    from pipelines.settings import get_profile
    from pipelines.speech.asr import transcribe, words_of
    from pipelines.speech.evaluation import diarization_error
    from pipelines.speech.models import load_models
    from pipelines.speech.transcripts import TranscriptConfig, call_speech, segments_from_asr
    from pipelines.speech.vad import detect_speech
    from pipelines.types import Audio, Turn

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=16, help="held-out calls (seeds 0 ..)")
    ap.add_argument("--first", type=int, default=0, help="first call (seed): the reported calls are 0-15, later "
                    "ones are fresh draws of the same split")
    ap.add_argument("--cache", default="", help="a folder for each call's ASR words and diarization")
    ap.add_argument("--split", default="heldout", choices=("heldout", "calibration"),
                    help="the calls of diarization_real.py's split (heldout: the reported figures)")
    ap.add_argument("--config", default="", help="TranscriptConfig fields to change, e.g. change_weight=5")
    args = ap.parse_args()
    config = TranscriptConfig(**{k: type(getattr(TranscriptConfig, k))(v) for k, v in
                                 (kv.split("=") for kv in args.config.split(",") if kv)})
    models = load_models(get_profile("embedded"))
    texts = clip_texts()
    cache: dict = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first, args.first + args.calls):
            t0 = time.perf_counter()
            x, ref, clips = build_call(args.split, seed, cache)
            if any(c not in texts for c in clips):     # the Amazon clips have no aligned text
                print(f"  call {seed}: skipped, a clip has no text", flush=True)
                continue
            path = Path(tmp) / f"call_{seed}.txt"
            path.write_text(transcript_text(ref, clips, texts))
            audio = Audio(Path(f"{args.split}_{seed}.wav"), x)
            kept = Path(args.cache) / f"{args.split}_{seed}.pkl" if args.cache else None
            if kept and kept.exists():
                words, d = pickle.loads(kept.read_bytes())
            else:
                speech = detect_speech(audio, models.vad)
                words, d = words_of(transcribe(audio, speech, models.asr)), models.diarize(audio, None, speech)
                if kept:
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    kept.write_bytes(pickle.dumps((words, d)))
            t1 = time.perf_counter()
            cs = call_speech(words, d.turns, d.embeddings, "earnings_call", "", str(path), config)
            align_s = time.perf_counter() - t1
            hyp = [Turn(s.start_s, s.end_s, s.speaker) for s in cs.segments]
            no_tr = [Turn(s.start_s, s.end_s, s.speaker) for s in segments_from_asr(words, d.turns, "earnings_call")[0]]
            names = {k.speaker: k.name for k in cs.speakers}
            ref_speech = speech_reference(x, ref)
            ref_turn = speech_reference(x, ref, db=-np.inf)       # every frame of a clip, pauses < 0.3 s bridged
            right, inside = word_attribution(cs.segments, names, ref)
            row = {"seed": seed, "status": cs.transcript["status"], "asr_coverage": cs.transcript["asr_coverage"]}
            for out, turns in (("", hyp), ("_diarizer", d.turns), ("_asr", no_tr)):
                for kind, r in (("", ref), ("_speech", ref_speech), ("_turn", ref_turn)):
                    e = diarization_error(r, turns)
                    row |= {f"der{out}{kind}": e.der, f"parts{out}{kind}": (e.missed, e.false_alarm, e.confusion)}
            row |= {
                   "attribution": right / max(inside, 1), "n_ref": len({r.speaker for r in ref}),
                   "n_named": sum(1 for k in cs.speakers if k.name), "align_s": align_s}
            rows.append(row)
            print(f"  call {seed}: {audio.duration_s:.0f} s, {row['n_ref']} speakers ({row['n_named']} named), "
                  f"{row['status']}, ASR words in the transcript {row['asr_coverage']:.0%}; DER with the transcript "
                  f"{100 * row['der']:.1f}% (speech reference {100 * row['der_speech']:.1f}%), diarizer alone "
                  f"{100 * row['der_diarizer']:.1f}% ({100 * row['der_diarizer_speech']:.1f}%); words attributed "
                  f"{row['attribution']:.1%}; alignment {align_s:.2f} s ({time.perf_counter() - t0:.0f} s)", flush=True)

    def mean(k: str) -> float:
        return float(np.mean([r[k] for r in rows]))

    print(f"{args.split} ({len(rows)} calls) with transcripts: mean DER {100 * mean('der'):.1f}% (speech reference "
          f"{100 * mean('der_speech'):.1f}%), diarizer alone {100 * mean('der_diarizer'):.1f}% "
          f"({100 * mean('der_diarizer_speech'):.1f}%), the segments without the transcript {100 * mean('der_asr'):.1f}% "
          f"({100 * mean('der_asr_speech'):.1f}%); word attribution {mean('attribution'):.1%} "
          f"(worst {min(r['attribution'] for r in rows):.1%}); aligned {sum(r['status'] == 'aligned' for r in rows)} "
          f"of {len(rows)}")
    for out, name in (("", "with the transcript"), ("_diarizer", "diarizer alone"),
                      ("_asr", "segments without the transcript")):
        print(f"  {name}: " + "; ".join(
            f"{kind.strip('_') or 'clip'} reference DER {100 * mean(f'der{out}{kind}'):.1f}% (missed / false alarm / confusion "
            + " / ".join(f"{100 * v:.1f}" for v in np.mean([r[f'parts{out}{kind}'] for r in rows], axis=0)) + ")"
            for kind in ("", "_speech", "_turn")))
    print(f"transcript_der={mean('der'):.4f}\ntranscript_der_speech_ref={mean('der_speech'):.4f}\n"
          f"diarizer_der={mean('der_diarizer'):.4f}\nasr_segments_der={mean('der_asr'):.4f}\nword_attribution={mean('attribution'):.4f}\n"
          f"transcript_der_turn_ref={mean('der_turn'):.4f}\nasr_segments_der_turn_ref={mean('der_asr_turn'):.4f}")


if __name__ == "__main__":
    main()
