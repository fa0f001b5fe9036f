"""Channel, codec and speed augmentation of 16 kHz clips: the recordings users have.

Earnings calls reach us over telephone lines and low-bitrate web streams (the Qin & Yang
2019 clips are 11.025 kHz / 32 kbps MP3); press conferences through a room microphone and
a broadcast chain.  RAVDESS is a studio.  Each function maps a float32 waveform at 16 kHz to
another of about the same length, deterministically given its ``rng``.

``random_channel(rng)`` draws one channel (codec, noise, reverberation, gain, speed) and
``augment_by_speaker`` applies the *same* channel to every clip of a speaker, as in a real
call, where one speaker's line stays the same: per-speaker normalisation can then remove
what the channel adds to that speaker's frames.

    channel      what it does
    telephone    300-3400 Hz band, resampled through 8 kHz (G.712 band)
    mulaw        8 kHz, 8-bit mu-law (G.711) quantisation
    mp3          11.025 kHz, 32 kbit/s MP3 (libmp3lame through PyAV), the earnings-call clips' codec
    wideband     7 kHz low-pass (a web stream)
    noise        additive white or pink noise at 10-30 dB SNR
    reverb       an exponentially decaying noise impulse response, RT60 0.2-0.6 s
    gain         -6..+6 dB (clipped to [-1, 1])
    speed        0.9-1.1 (tempo and pitch together, by resampling)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SAMPLE_RATE = 16_000
CODECS = ("clean", "telephone", "mulaw", "mp3", "wideband")


@dataclass(frozen=True)
class Channel:
    """One draw of the channel: a codec, then noise, reverberation, gain and speed."""

    codec: str = "clean"
    snr_db: float | None = None      # None: no noise
    pink: bool = False
    rt60_s: float | None = None      # None: no reverberation
    gain_db: float = 0.0
    speed: float = 1.0
    seed: int = 0                    # noise and impulse-response draws

    def apply(self, x: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        y = np.asarray(x, np.float32)
        if self.speed != 1.0:
            y = change_speed(y, self.speed)
        if self.rt60_s:
            y = reverb(y, self.rt60_s, rng)
        if self.snr_db is not None:
            y = add_noise(y, self.snr_db, rng, self.pink)
        y = CODEC_FUNCTIONS[self.codec](y)
        if self.gain_db:
            y = np.clip(y * 10 ** (self.gain_db / 20), -1.0, 1.0)
        return y.astype(np.float32)


def _resample(x: np.ndarray, up: int, down: int) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(x, np.float64), up, down).astype(np.float32)


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """``x`` sampled at ``sr_from`` Hz, resampled to ``sr_to`` Hz (polyphase, float32)."""
    g = math.gcd(sr_from, sr_to)
    return _resample(x, sr_to // g, sr_from // g)


def telephone(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz band through an 8 kHz sampling rate."""
    from scipy.signal import butter, sosfiltfilt

    y = _resample(x, 1, 2)
    sos = butter(4, [300, 3400], btype="band", fs=8000, output="sos")
    return _fit_length(_resample(sosfiltfilt(sos, y), 2, 1), len(x))


def mulaw(x: np.ndarray) -> np.ndarray:
    """8 kHz, 8-bit mu-law (G.711): companded, quantised to 256 levels, expanded."""
    y = np.clip(_resample(x, 1, 2), -1.0, 1.0)
    mu = 255.0
    c = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    q = np.round((c + 1) / 2 * mu) / mu * 2 - 1
    e = np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu
    return _fit_length(_resample(e, 2, 1), len(x))


def mp3(x: np.ndarray, rate: int = 11_025, bitrate: int = 32_000) -> np.ndarray:
    """MP3 at ``rate`` Hz and ``bitrate`` bit/s (libmp3lame through PyAV), decoded back to 16 kHz."""
    import io

    import av

    y = _resample(x, 441, 640) if rate == 11_025 else _resample(x, rate, SAMPLE_RATE)
    pcm = (np.clip(y, -1, 1) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r") as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        parts = [r.to_ndarray().reshape(-1) for f in inp.decode(audio=0) for r in resampler.resample(f)]
        parts += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    dec = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return _fit_length(_align_delay(dec, x), len(x))


def wideband(x: np.ndarray) -> np.ndarray:
    """7 kHz low-pass (a web stream or a wideband phone line)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(6, 7000, btype="low", fs=SAMPLE_RATE, output="sos")
    return sosfiltfilt(sos, np.asarray(x, np.float64)).astype(np.float32)


CODEC_FUNCTIONS = {"clean": lambda x: np.asarray(x, np.float32), "telephone": telephone, "mulaw": mulaw,
                   "mp3": mp3, "wideband": wideband}


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator, pink: bool = False) -> np.ndarray:
    """White (or pink, 1/f power) noise scaled to ``snr_db`` below the clip's power."""
    n = rng.standard_normal(len(x))
    if pink:
        spec = np.fft.rfft(n)
        f = np.arange(len(spec), dtype=np.float64)
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        n = np.fft.irfft(spec, len(x))
    p_sig = float(np.mean(np.square(x, dtype=np.float64))) or 1e-10
    n *= np.sqrt(p_sig / (np.mean(n ** 2) + 1e-20) / 10 ** (snr_db / 10))
    return (x + n).astype(np.float32)


def reverb(x: np.ndarray, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """Convolution with an exponentially decaying noise impulse response (60 dB decay over
    ``rt60_s``), direct path kept, output rescaled to the input's peak."""
    from scipy.signal import fftconvolve

    n = int(rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)
    ir[0] = 1.0
    ir /= np.sqrt(np.sum(ir ** 2))
    y = fftconvolve(x, ir)[: len(x)]
    peak = np.max(np.abs(y)) or 1.0
    return (y * (np.max(np.abs(x)) / peak)).astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation (Ko et al. 2015): resample so the clip plays ``factor`` times faster."""
    from fractions import Fraction

    fr = Fraction(factor).limit_denominator(100)
    return _resample(x, fr.denominator, fr.numerator)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def _align_delay(y: np.ndarray, x: np.ndarray, max_lag: int = 4000) -> np.ndarray:
    """Drop the codec's leading delay (MP3 encoders add ~1,100 samples of padding)."""
    if len(y) <= len(x):
        return y
    lag = min(len(y) - len(x), max_lag)
    ref = np.asarray(x[:SAMPLE_RATE], np.float64)
    best = max(range(lag + 1), key=lambda k: float(np.dot(y[k: k + len(ref)], ref)) if k + len(ref) <= len(y) else -1e9)
    return y[best:]


def random_channel(rng: np.random.Generator) -> Channel:
    """One channel draw: codec uniform over CODECS; noise with p = 0.5 (SNR 10-30 dB, white or
    pink); reverberation with p = 0.3 (RT60 0.2-0.6 s); gain -6..+6 dB; speed 0.9/1.0/1.1."""
    return Channel(
        codec=str(rng.choice(CODECS)),
        snr_db=float(rng.uniform(10, 30)) if rng.random() < 0.5 else None,
        pink=bool(rng.random() < 0.5),
        rt60_s=float(rng.uniform(0.2, 0.6)) if rng.random() < 0.3 else None,
        gain_db=float(rng.uniform(-6, 6)),
        speed=float(rng.choice([0.9, 1.0, 1.0, 1.1])),
        seed=int(rng.integers(2**31)),
    )


def augment_by_speaker(waves: Sequence[np.ndarray], speakers: Sequence, seed: int) -> tuple[list[np.ndarray], dict]:
    """Each speaker's clips through one channel drawn for that speaker (seeded by ``seed`` and
    the speaker's rank).  Returns the clips and the channel of each speaker."""
    speakers = np.asarray(speakers)
    channels = {}
    for k, s in enumerate(sorted(set(speakers.tolist()))):
        channels[s] = random_channel(np.random.default_rng([seed, k]))
    out = [channels[s].apply(w) for w, s in zip(waves, speakers)]
    return out, channels
