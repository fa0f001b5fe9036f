"""Real-time factor per stage and peak memory of the embedded front end (+ emotion stage).

Builds multi-speaker recordings of 10 and 60 minutes with the demo generator (FOMC text,
synthetic espeak-ng voices; needs ``apt-get install espeak-ng``), then processes each in a
fresh process with the models loaded once, and prints per stage: seconds and real-time
factor (processing time / audio time), plus peak RSS and DER against the generator's
reference turns.  Model loading is reported separately, not counted in the RTF.  The
``transcript`` stage is the alternative to ``speakers+sections`` when the call comes with its
speaker-labelled transcript (read, aligned to the ASR words, segments built); it is printed
as a ratio to transcription and left out of the total.

    python benchmarks/bench_pipeline.py                 # 10 and 60 minutes
    python benchmarks/bench_pipeline.py --minutes 10    # one length
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = Path.home() / ".cache" / "speechfin" / "bench"


def build(minutes: float) -> tuple[Path, Path]:
    """The benchmark recording (cached) and its reference RTTM."""
    from pipelines.demo import encode, long_call, write_rttm, write_transcript

    CACHE.mkdir(parents=True, exist_ok=True)
    wav, rttm = CACHE / f"call_{minutes:g}min.flac", CACHE / f"call_{minutes:g}min.rttm"
    if not wav.exists() or not wav.with_suffix(".txt").exists():
        call = long_call(minutes)
        encode(call.samples, wav)
        write_rttm(rttm, wav.stem, call.rttm)
        write_transcript(wav.with_suffix(".txt"), [(spk, text) for _, _, spk, text in call.transcript])
    return wav, rttm


def run_one(wav: Path, rttm: Path) -> dict:
    """Process one recording; return stage seconds, RTF, peak RSS and DER."""
    from pipelines.speech.asr import words_of, transcribe
    from pipelines.speech.audio import decode_audio
    from pipelines.speech.diarization import diarize
    from pipelines.speech.evaluation import diarization_error, read_rttm
    from pipelines.speech.models import load_models
    from pipelines.roles import assign_roles, assign_sections
    from pipelines.settings import get_profile
    from pipelines.speech.turns import assign_speakers, build_segments
    from pipelines.speech.vad import detect_speech
    from pipelines.speech.segmentation import run_segmentation

    t0 = time.perf_counter()
    profile = get_profile("embedded")
    models = load_models(profile)
    scorer = None
    try:
        from pipelines.speech.emotion import load_emotion_scorer

        scorer = load_emotion_scorer()
    except ImportError:
        pass
    load_s = time.perf_counter() - t0
    times: dict[str, float] = {}
    peak: dict[str, float] = {}  # peak RSS (MB) of the process at the end of each stage

    def timed(name, fn, *a, **k):
        t = time.perf_counter()
        out = fn(*a, **k)
        times[name] = time.perf_counter() - t
        peak[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out

    audio = timed("decode", decode_audio, wav)
    speech = timed("vad", detect_speech, audio, models.vad)
    seg = timed("segmentation", run_segmentation, audio, models.segmentation)
    diar = timed("diarize", diarize, audio, seg, models.encoder, None, profile.diarization, speech)
    asr = timed("transcribe", transcribe, audio, speech, models.asr)

    def speakers():
        segs = build_segments(assign_speakers(words_of(asr), diar.turns))
        spk = assign_roles(segs, "press_conference")
        return assign_sections(segs, spk), spk

    segments, spk = timed("speakers+sections", speakers)
    if wav.with_suffix(".txt").exists():   # the same call with its speaker-labelled transcript (alignment to the ASR words)
        from pipelines.speech.transcripts import call_speech

        timed("transcript", call_speech, words_of(asr), diar.turns, diar.embeddings, "press_conference",
              transcript_path=str(wav.with_suffix(".txt")))
    if scorer is not None:
        from pipelines.speech.emotion import score_call_emotions

        timed("emotions", score_call_emotions, audio, segments, spk, audio.call_id, scorer=scorer)
    ref = next(iter(read_rttm(rttm).values()))
    der = diarization_error(ref, diar.turns)
    peers = asr_peers(audio.samples)
    return {"audio_s": audio.duration_s, "load_s": load_s, "stages": times, "peak_after": peak, "peers": peers,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "der": der.der, "speakers": len(diar.speakers), "ref_speakers": len({t.speaker for t in ref}),
            "segments": len(segments)}


def asr_peers(samples) -> dict[str, float]:
    """Seconds for the same recording through two peers, both with the bundled tiny.en on the
    CPU (int8, beam 5, English): faster-whisper's own ``transcribe`` (its Silero VAD filter
    on) and WhisperX's batched pipeline (its bundled pyannote VAD, batch size 8)."""
    import whisperx
    from faster_whisper import WhisperModel

    from pipelines.speech.asr import bundled_whisper_path

    path = str(bundled_whisper_path())
    out = {}
    fw = WhisperModel(path, device="cpu", compute_type="int8")
    t = time.perf_counter()
    segs, _ = fw.transcribe(samples, beam_size=5, language="en", vad_filter=True)
    list(segs)
    out["faster-whisper"] = time.perf_counter() - t
    del fw
    wx = whisperx.load_model(path, "cpu", compute_type="int8", language="en", vad_method="pyannote")
    t = time.perf_counter()
    wx.transcribe(samples, batch_size=8, language="en")
    out["whisperx batched"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, action="append")
    ap.add_argument("--one", nargs=2, metavar=("AUDIO", "RTTM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), Path(args.one[1]))))
        return
    results = {}
    for minutes in args.minutes or [10, 60]:
        wav, rttm = build(minutes)
        out = subprocess.run([sys.executable, __file__, "--one", str(wav), str(rttm)], capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        results[minutes] = r = json.loads(out.stdout.strip().splitlines()[-1])
        total = sum(v for k, v in r["stages"].items() if k != "transcript")
        print(f"\n== {minutes:g}-minute call ({r['audio_s']:.0f} s audio, {r['ref_speakers']} voices): "
              f"models loaded in {r['load_s']:.1f} s (not in RTF)")
        for name, sec in r["stages"].items():
            print(f"  {name:<20} {sec:8.1f} s   RTF {sec / r['audio_s']:.4f}   peak RSS so far {r['peak_after'][name]:6.0f} MB")
        if "transcript" in r["stages"]:
            print(f"  transcript alignment (instead of speakers+sections) / transcription: "
                  f"{r['stages']['transcript'] / r['stages']['transcribe']:.4f}")
        print(f"  {'TOTAL':<20} {total:8.1f} s   RTF {total / r['audio_s']:.4f}   (x{r['audio_s'] / total:.1f} real time)")
        for peer, sec in r["peers"].items():   # the ASR floor: our transcription stage against two peers
            print(f"  peer {peer:<15} {sec:8.1f} s   RTF {sec / r['audio_s']:.4f}   our transcribe stage / "
                  f"{peer}: {r['stages']['transcribe'] / sec:.2f}")
        print(f"  peak RSS {r['peak_rss_mb']:.0f} MB; DER {100 * r['der']:.2f}% "
              f"({r['speakers']} speakers found); {r['segments']} segments")
    if len(results) > 1:
        a, b = sorted(results)[0], sorted(results)[-1]
        print(f"\npeak RSS ratio {b:g} min / {a:g} min: {results[b]['peak_rss_mb'] / results[a]['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
