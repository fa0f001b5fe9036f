"""Build the bundled demo archive: FOMC press conferences with real text, synthetic voices.

The text is real, public-domain FOMC press-conference text (the speaker-split transcripts in
``shared/data/fomc_hawkish_dovish/data/raw_data/press_conference/csv/all``); the voices are
**synthetic**: every speaker is an espeak-ng voice, so nothing here is a recording of a
real person.  Each call keeps the real date of its press conference (14:30 New York time).

For each call the generator writes the audio, a reference RTTM (one line per spoken
sentence, with the silence espeak adds trimmed off) and a reference transcript, so
diarization and ASR can be scored against known truth.

Rebuild the shipped archive with (needs ``apt-get install espeak-ng ffmpeg``)::

    python -m pipelines.demo --out pipelines/demo_archive
    python -m pipelines.demo --transcripts-only      # the transcripts of the shipped audio, from its references
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from pipelines.types import SAMPLE_RATE

FOMC_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fomc_hawkish_dovish" / "data" / "raw_data" / "press_conference" / "csv" / "all"
DEMO_ARCHIVE = Path(__file__).resolve().parent / "demo_archive"

# (espeak voice, speed wpm, pitch 0-99): distinct synthetic voices; the chair is voice 0.
VOICES: list[tuple[str, int, int]] = [
    ("en-us+m1", 150, 15),
    ("en-gb-scotland+f4", 185, 85),
    ("en-gb-x-rp+m7", 185, 85),
    ("en-gb-scotland+klatt3", 185, 85),
    ("en-us+f4", 150, 15),
    ("en-us+f2", 170, 50),
    ("en-us+klatt3", 150, 15),
]  # chosen among espeak-ng variants to be far apart as speaker embeddings (greedy max-min)
SENTENCE_GAP_S = 0.25
TURN_GAP_S = 0.8


@dataclass(frozen=True)
class Utterance:
    speaker: str  # e.g. "CHAIRMAN POWELL"
    text: str


def load_transcript(date: str, fomc_dir: Path = FOMC_DIR) -> list[Utterance]:
    """Read one press conference (``date`` = YYYYMMDD) as a list of sentences."""
    path = fomc_dir / f"FOMCpresconf{date}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no FOMC press-conference transcript for {date}")
    with path.open(newline="", encoding="utf-8") as f:
        return [Utterance(r["speaker"].strip(), r["sentence"].strip()) for r in csv.DictReader(f) if r["sentence"].strip()]


def select_script(utts: list[Utterance], target_s: float, words_per_s: float = 2.6) -> list[list[Utterance]]:
    """Opening remarks, then question/answer exchanges, cut to about ``target_s`` seconds.

    Returns turns (consecutive sentences of one speaker).  The chair's opening statement is
    cut to a third of the budget, each answer to a few sentences, so that several
    journalists get a turn.
    """
    turns: list[list[Utterance]] = []
    for u in utts:
        if turns and turns[-1][0].speaker == u.speaker:
            turns[-1].append(u)
        else:
            turns.append([u])
    chair = turns[0][0].speaker
    budget = target_s * words_per_s
    out: list[list[Utterance]] = []
    used = 0.0

    def take(turn: list[Utterance], max_words: float) -> list[Utterance]:
        kept, n = [], 0
        for u in turn:
            w = len(u.text.split())
            if kept and n + w > max_words:
                break
            kept.append(u)
            n += w
        return kept

    opening = take(turns[0], budget / 3)
    out.append(opening)
    used += sum(len(u.text.split()) for u in opening)
    for turn in turns[1:]:
        if used >= budget:
            break
        limit = 40 if turn[0].speaker != chair else 50
        kept = take(turn, limit)
        out.append(kept)
        used += sum(len(u.text.split()) for u in kept)
    if out[-1][0].speaker != chair and len(out) > 1:
        out.pop()  # end on an answer
    return out


def speak(text: str, voice: tuple[str, int, int], workdir: Path) -> np.ndarray:
    """Synthesize one sentence with espeak-ng; return 16 kHz float32 with silence trimmed."""
    import soundfile as sf

    from ser_models.augment import resample

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found: apt-get install espeak-ng")
    name, wpm, pitch = voice
    wav = workdir / "u.wav"
    subprocess.run([exe, "-v", name, "-s", str(wpm), "-p", str(pitch), "-w", str(wav), text], check=True, capture_output=True)
    x, sr = sf.read(wav, dtype="float32")
    x = resample(x, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else x
    return trim_silence(x)


def trim_silence(x: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """Trim leading/trailing frames quieter than ``threshold_db`` below the peak frame."""
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    if active.size == 0:
        return x[:0]
    return x[active[0] * frame : (active[-1] + 1) * frame]


@dataclass
class SyntheticCall:
    samples: np.ndarray  # (N,) float32, 16 kHz
    rttm: list[tuple[float, float, str]]  # (start_s, duration_s, speaker)
    transcript: list[tuple[float, float, str, str]]  # (start_s, end_s, speaker, text)
    speakers: list[str]
    voice_of: dict[str, str]  # speaker -> espeak voice


def synthesize_call(turns: list[list[Utterance]], seed: int = 0) -> SyntheticCall:
    """Concatenate espeak sentences turn by turn; one voice per speaker (chair = voice 0)."""
    rng = np.random.default_rng(seed)
    speakers: list[str] = []
    for t in turns:
        if t[0].speaker not in speakers:
            speakers.append(t[0].speaker)
    voice_of = {s: VOICES[i % len(VOICES)] for i, s in enumerate(speakers)}
    pieces: list[np.ndarray] = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)]
    pos = len(pieces[0])
    rttm, transcript = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for turn in turns:
            for k, u in enumerate(turn):
                x = speak(u.text, voice_of[u.speaker], Path(tmp))
                if len(x) == 0:
                    continue
                start = pos / SAMPLE_RATE
                pieces.append(x)
                pos += len(x)
                rttm.append((start, len(x) / SAMPLE_RATE, u.speaker.replace(" ", "_")))
                transcript.append((start, pos / SAMPLE_RATE, u.speaker.replace(" ", "_"), u.text))
                gap = SENTENCE_GAP_S if k < len(turn) - 1 else TURN_GAP_S + rng.uniform(0, 0.4)
                pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
                pos += len(pieces[-1])
    samples = np.concatenate(pieces)
    samples = 0.5 * samples / max(1e-6, float(np.abs(samples).max()))
    labels = {s: s.replace(" ", "_") for s in speakers}
    return SyntheticCall(samples.astype(np.float32), rttm, transcript, list(labels.values()),
                         {labels[s]: voice_of[s][0] for s in speakers})


def write_rttm(path: Path, uri: str, rttm: list[tuple[float, float, str]]) -> None:
    with path.open("w") as f:
        for start, dur, spk in rttm:
            f.write(f"SPEAKER {uri} 1 {start:.3f} {dur:.3f} <NA> <NA> {spk} <NA> <NA>\n")


def write_stm(path: Path, uri: str, transcript: list[tuple[float, float, str, str]]) -> None:
    with path.open("w") as f:
        for start, end, spk, text in transcript:
            f.write(f"{uri} 1 {spk} {start:.3f} {end:.3f} {text}\n")


def write_transcript(path: Path, sentences: list[tuple[str, str]]) -> None:
    """The call's speaker-labelled transcript, as a user would have it: one paragraph per turn,
    ``Name (role): text`` (the chair is ``chair``, everyone else a ``journalist``)."""
    turns: list[list[str]] = []
    for spk, text in sentences:
        name = spk.replace("_", " ").title()
        if turns and turns[-1][0] == name:
            turns[-1][1] += " " + text
        else:
            turns.append([name, text])
    with path.open("w") as f:
        for name, text in turns:
            role = "chair" if name.lower().startswith("chair") else "journalist"
            f.write(f"{name} ({role}): {text}\n\n")


def transcripts_from_reference(archive: Path) -> list[Path]:
    """Write ``transcripts/<stem>.txt`` of every call of a built archive from its reference STM
    (the sentences and speakers the audio was made from) and add the ``transcript`` column."""
    (archive / "transcripts").mkdir(exist_ok=True)
    with (archive / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        stem = Path(r["file"]).stem
        lines = (archive / "reference" / f"{stem}.stm").read_text().splitlines()
        path = archive / "transcripts" / f"{stem}.txt"
        write_transcript(path, [(ln.split(" ", 5)[2], ln.split(" ", 5)[5]) for ln in lines])
        r["transcript"] = f"transcripts/{stem}.txt"
        out.append(path)
    with (archive / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def encode(samples: np.ndarray, out: Path) -> None:
    """Write ``samples`` (16 kHz) to ``out``; the extension picks the codec (ffmpeg for lossy)."""
    import soundfile as sf

    if out.suffix in (".wav", ".flac"):
        sf.write(out, samples, SAMPLE_RATE)
        return
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg not found: apt-get install ffmpeg")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        sf.write(wav, samples, SAMPLE_RATE)
        codec = ["-c:a", "libmp3lame", "-b:a", "40k"] if out.suffix == ".mp3" else ["-c:a", "aac", "-b:a", "40k"]
        subprocess.run([exe, "-y", "-loglevel", "error", "-i", str(wav), *codec, str(out)], check=True)


def press_conference_time(date: str) -> datetime:
    """FOMC press conferences start at 14:30 New York time; return it in UTC."""
    d = datetime.strptime(date, "%Y%m%d").date()
    return datetime.combine(d, time(14, 30), ZoneInfo("America/New_York")).astimezone(timezone.utc)


# Four conferences inside the S&P 500 history that ships with `arch` (1999-2018), so the demo
# study has real prices: the "taper tantrum" (Bernanke, 2013), the lift-off (Yellen, 2015),
# the second hike (Yellen, 2016) and Powell's December 2018 conference.
DEFAULT_CALLS = (("20130619", 150.0, ".mp3"), ("20151216", 110.0, ".mp3"), ("20161214", 110.0, ".mp3"),
                 ("20181219", 150.0, ".m4a"))


def build_archive(out: Path, calls=DEFAULT_CALLS, fomc_dir: Path = FOMC_DIR) -> Path:
    """Write audio, ``manifest.csv``, ``transcripts/`` (the speaker-labelled transcripts) and
    ``reference/`` (RTTM + STM) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference").mkdir(exist_ok=True)
    rows = []
    for i, (date, seconds, ext) in enumerate(calls):
        turns = select_script(load_transcript(date, fomc_dir), seconds)
        call = synthesize_call(turns, seed=i)
        if len(call.speakers) < 3:
            raise ValueError(f"{date}: only {len(call.speakers)} voices in {seconds:.0f} s; give it more time")
        stem = f"fomc_press_conference_{date}"
        encode(call.samples, out / f"{stem}{ext}")
        write_rttm(out / "reference" / f"{stem}.rttm", stem, call.rttm)
        write_stm(out / "reference" / f"{stem}.stm", stem, call.transcript)
        (out / "transcripts").mkdir(exist_ok=True)
        write_transcript(out / "transcripts" / f"{stem}.txt", [(spk, text) for _, _, spk, text in call.transcript])
        rows.append({
            "file": f"{stem}{ext}",
            "event_type": "press_conference",
            "entity": "FOMC",
            "event_time": press_conference_time(date).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "title": f"FOMC press conference {date[:4]}-{date[4:6]}-{date[6:]} (real text, SYNTHETIC espeak-ng voices)",
            "speakers_hint": "",
            "transcript": f"transcripts/{stem}.txt",
        })
    with (out / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def long_call(minutes: float, date: str = "20130619", seed: int = 0, fomc_dir: Path = FOMC_DIR) -> SyntheticCall:
    """A multi-speaker call of about ``minutes`` minutes (for benchmarks): conferences concatenated.

    Reference speakers are the synthetic voices (the same voice reads the chair of every
    conference), so the reference stays right when conferences are concatenated.
    """
    dates = sorted(p.stem.replace("FOMCpresconf", "") for p in fomc_dir.glob("FOMCpresconf*.csv"))
    dates = [date] + [d for d in dates if d != date]
    parts, total = [], 0.0
    for k, d in enumerate(dates):
        if total >= minutes * 60:
            break
        c = synthesize_call(select_script(load_transcript(d, fomc_dir), min(900.0, minutes * 60 - total)), seed=seed + k)
        parts.append(c)
        total += len(c.samples) / SAMPLE_RATE
    offset, rttm, transcript, samples = 0.0, [], [], []
    for k, c in enumerate(parts):
        rttm += [(s + offset, d, c.voice_of[spk]) for s, d, spk in c.rttm]
        transcript += [(s + offset, e + offset, c.voice_of[spk], t) for s, e, spk, t in c.transcript]
        samples.append(c.samples)
        offset += len(c.samples) / SAMPLE_RATE
    voices = sorted({r[2] for r in rttm})
    return SyntheticCall(np.concatenate(samples), rttm, transcript, voices, {v: v for v in voices})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEMO_ARCHIVE)
    ap.add_argument("--transcripts-only", action="store_true",
                    help="only (re)write the transcripts of an archive built before, from its reference STM")
    args = ap.parse_args()
    if args.transcripts_only:
        for p in transcripts_from_reference(args.out):
            print(p)
        return
    print(build_archive(args.out))


if __name__ == "__main__":
    main()
