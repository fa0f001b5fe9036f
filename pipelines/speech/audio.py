"""Stage 1: decode any recording to 16 kHz mono float32, with clear errors for bad audio.

PyAV (FFmpeg libraries shipped in the ``av`` wheel) decodes wav, flac, mp3, m4a and the
audio track of mp4, and resamples to 16 kHz mono while decoding, so nothing but the
decoded call is ever held in memory (about 230 MB for one hour).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from pipelines.types import SAMPLE_RATE, Audio

log = logging.getLogger("speechfin")

MIN_DURATION_S = 1.0
TRUNCATION_TOLERANCE_S = 1.0  # decoders may drop a frame or two at the end: not a truncation
SILENCE_DBFS = -60.0


def _header_duration(container, stream) -> float | None:
    """The duration the file's header announces (container, else stream), in seconds."""
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


class AudioError(ValueError):
    """A recording cannot be used; the message names the file and the problem."""


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def decode_audio(path: str | Path, min_duration_s: float = MIN_DURATION_S) -> Audio:
    """Decode ``path`` to a 16 kHz mono :class:`Audio`.

    Raises :class:`AudioError` (one line, naming the file) for a missing or empty file, a
    file that is not audio, a corrupt stream, audio shorter than ``min_duration_s`` and
    pure digital silence.  A file that decodes to less than its header announces (cut
    short) is kept, with ``Audio.warning`` saying so.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    sha = file_sha256(path)
    chunks: list[np.ndarray] = []
    header_s = None
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            header_s = _header_duration(container, stream)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except av.error.InvalidDataError as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc.strerror or 'invalid data'})") from exc
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        if not chunks:
            raise AudioError(f"{path}: corrupt audio ({exc})") from exc
        # A truncated stream: keep what decoded, but say so if it is too short below.
    if not chunks:
        raise AudioError(f"{path}: no decodable audio frames (corrupt or truncated)")
    samples = (np.concatenate(chunks).astype(np.float32) / 32768.0)
    audio = Audio(path=path, samples=samples, sample_rate=SAMPLE_RATE, sha256=sha)
    if header_s and audio.duration_s < header_s - max(TRUNCATION_TOLERANCE_S, 0.01 * header_s):
        audio.warning = (f"{path}: truncated: decoded {audio.duration_s:.1f} s of the {header_s:.1f} s "
                         f"its header announces")
        log.warning(audio.warning)
    if audio.duration_s < min_duration_s:
        raise AudioError(f"{path}: too short ({audio.duration_s:.2f} s < {min_duration_s:.1f} s)")
    peak = float(np.abs(samples).max())
    if peak == 0.0 or 20 * np.log10(peak) < SILENCE_DBFS:
        raise AudioError(f"{path}: silent audio (peak below {SILENCE_DBFS:.0f} dBFS)")
    return audio
