"""Bad input at the front door: audio files and manifests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from front_paths import DEMO
from pipelines.archive import ManifestError, read_manifest
from pipelines.speech.audio import AudioError, decode_audio

SR = 16_000


def _tone(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        decode_audio(p)


def test_text_file_renamed_wav(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("these are meeting notes, not audio\n" * 20)
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        decode_audio(p)


def test_random_bytes_mp3(tmp_path):
    p = tmp_path / "garbage.mp3"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match=r"garbage\.mp3: "):
        decode_audio(p)


def test_truncated_mp3_keeps_what_decodes(tmp_path):
    src = DEMO / "fomc_press_conference_20130619.mp3"
    full = decode_audio(src)
    p = tmp_path / "truncated.mp3"
    data = src.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    part = decode_audio(p)
    assert 0.25 * full.duration_s < part.duration_s < 0.42 * full.duration_s
    assert full.warning == ""
    assert part.warning == (f"{p}: truncated: decoded {part.duration_s:.1f} s of the {full.duration_s:.1f} s "
                            f"its header announces")
    n = len(part.samples) - SR  # the decoded part matches the start of the full file
    assert np.corrcoef(part.samples[:n], full.samples[:n])[0, 1] > 0.99


def test_pure_silence(tmp_path):
    p = tmp_path / "silence.wav"
    sf.write(p, np.zeros(SR * 5, np.float32), SR)
    with pytest.raises(AudioError, match=r"silence\.wav: silent audio"):
        decode_audio(p)


def test_too_short(tmp_path):
    p = tmp_path / "blip.wav"
    sf.write(p, _tone(0.4), SR)
    with pytest.raises(AudioError, match=r"blip\.wav: too short \(0\.40 s"):
        decode_audio(p)


def test_two_second_file_decodes(tmp_path):
    p = tmp_path / "two.wav"
    sf.write(p, _tone(2.0), SR)
    a = decode_audio(p)
    assert a.duration_s == pytest.approx(2.0, abs=1e-3)
    assert len(a.call_id) == 16


@pytest.mark.parametrize("sr,channels", [(8_000, 1), (44_100, 2), (48_000, 1)])
def test_resampled_to_16k_mono(tmp_path, sample_dir, sr, channels):
    from scipy.signal import resample_poly

    def resample(x, a, b):  # independent of the decoder's resampler (PyAV's libswresample)
        g = math.gcd(a, b)
        return resample_poly(x, b // g, a // g).astype(np.float32)

    ref, ref_sr = sf.read(sample_dir / "sample.wav", dtype="float32")
    assert ref_sr == SR
    x = resample(ref, SR, sr)
    if channels == 2:
        x = np.stack([x, 0.5 * x], axis=1)
    p = tmp_path / f"call_{sr}_{channels}.wav"
    sf.write(p, x, sr)
    a = decode_audio(p)
    assert a.sample_rate == SR and a.samples.ndim == 1
    assert a.duration_s == pytest.approx(len(ref) / SR, abs=0.02)
    scale = 0.75 if channels == 2 else 1.0  # mono downmix averages the channels
    if sr == 8_000:  # compare in the telephone band only
        ref = resample(resample(ref, SR, 8_000), 8_000, SR)
    n = min(len(ref), len(a.samples))
    assert np.corrcoef(a.samples[:n], ref[:n])[0, 1] > 0.98
    assert np.std(a.samples[:n]) == pytest.approx(scale * np.std(ref[:n]), rel=0.05)


def test_call_id_is_content_hash(tmp_path):
    import hashlib
    import shutil

    src = DEMO / "fomc_press_conference_20130619.mp3"
    p = tmp_path / "a name with spaces.mp3"
    shutil.copy(src, p)
    assert decode_audio(p).call_id == hashlib.sha256(src.read_bytes()).hexdigest()[:16]


# ------------------------------------------------------------------------ manifests
def _manifest(tmp_path, body: str):
    (tmp_path / "manifest.csv").write_text(body)
    return read_manifest(tmp_path)


def test_manifest_row_errors(tmp_path):
    sf.write(tmp_path / "ok call.wav", _tone(2.0), SR)
    (tmp_path.parent / "outside.wav").write_bytes(b"x")
    entries = _manifest(tmp_path, "\n".join([
        "file,event_type,entity,event_time,title,speakers_hint",
        "ok call.wav,earnings_call,TWTR,2017-02-09T13:00:00Z,,",
        "missing.wav,earnings_call,TWTR,2017-02-09T13:00:00Z,,",
        "ok call.wav,earnings_call,TWTR,yesterday,,",
        "ok call.wav,investor_day,TWTR,2017-02-09T13:00:00Z,,",
        "../outside.wav,earnings_call,TWTR,2017-02-09T13:00:00Z,,",
        "ok call.wav,press_conference,FOMC,2019-01-30 14:30,,3",
        "ok call.wav,press_conference,FOMC,2019-01-30T14:30:00-05:00,,Jay Powell (boss)",
    ]) + "\n")
    assert [bool(e.error) for e in entries] == [False, True, True, True, True, False, True]
    assert entries[1].error.endswith("missing.wav: file not found (manifest row 3)")
    assert "bad event_time 'yesterday'" in entries[2].error and "manifest.csv:4" in entries[2].error
    assert "unknown event_type 'investor_day'" in entries[3].error
    assert "points outside the archive" in entries[4].error
    assert entries[5].event_time.isoformat() == "2019-01-30T14:30:00+00:00"
    assert "unknown role 'boss'" in entries[6].error


def test_manifest_whole_file_errors(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path)
    with pytest.raises(ManifestError, match=r"missing column\(s\) event_time"):
        _manifest(tmp_path, "file,event_type,entity\nx.wav,earnings_call,TWTR\n")
    with pytest.raises(ManifestError, match="archive folder not found"):
        read_manifest(tmp_path / "nope")


def test_demo_manifest_is_valid():
    entries = read_manifest(DEMO)
    assert len(entries) >= 2 and not [e.error for e in entries if e.error]
    assert {e.event_type for e in entries} == {"press_conference"}
    assert all("SYNTHETIC" in e.title for e in entries)


def test_audio_track_of_mp4(tmp_path, sample_dir):
    """An mp4 (AAC audio track, as a video's sound would be) decodes like the wav it came from."""
    import av

    ref = decode_audio(sample_dir / "sample.wav")
    out = tmp_path / "call video.mp4"
    with av.open(str(out), "w") as container:
        stream = container.add_stream("aac", rate=SR, layout="mono")
        pcm = (ref.samples * 32767).astype(np.int16)
        for i in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + 1024], format="s16", layout="mono")
            frame.sample_rate = SR
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    a = decode_audio(out)
    assert a.duration_s == pytest.approx(ref.duration_s, abs=0.1)
    # AAC adds a priming delay: align by cross-correlation before comparing
    lag = int(np.argmax(np.correlate(a.samples[:SR * 2], ref.samples[:SR], mode="valid")))
    n = len(ref.samples) - SR
    assert np.corrcoef(a.samples[lag:lag + n], ref.samples[:n])[0, 1] > 0.95


@pytest.mark.parametrize("value", ["01/05/2019", "2019-13-01T10:00:00Z", "last tuesday"])
def test_manifest_event_time_must_be_iso(tmp_path, value):
    sf.write(tmp_path / "a.wav", _tone(2.0), SR)
    (tmp_path / "manifest.csv").write_text(f"file,event_type,entity,event_time\na.wav,earnings_call,ACME,{value}\n")
    (entry,) = read_manifest(tmp_path)
    assert entry.error == (f"{tmp_path / 'manifest.csv'}:2: bad event_time {value!r} "
                           f"(use ISO 8601, e.g. 2019-01-30T19:30:00Z)")
    assert entry.source == str((tmp_path / "a.wav").resolve()) and entry.row == 2


def test_manifest_failure_sources_are_resolved_paths(tmp_path):
    """The failure record of a bad row is keyed on the row's resolved file path (as
    ``clear_failure`` is), never on a cwd-relative or ``ARCHIVE//abs/path`` string."""
    outside = tmp_path / "elsewhere.wav"
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "manifest.csv").write_text("file,event_type,entity,event_time\n"
                                          f"{outside},earnings_call,ACME,2019-01-30\n"
                                          "../elsewhere.wav,earnings_call,ACME,2019-01-30\n"
                                          ",earnings_call,ACME,2019-01-30\n")
    entries = read_manifest(archive)
    assert [e.source for e in entries] == [str(outside), str(outside), str((archive / "manifest.csv").resolve())]
    assert all(e.error for e in entries)
