"""Helpers of the SER tests: paths to the shared corpora, synthetic frame data."""

from pathlib import Path

import numpy as np

from shared_data import SHARED

RAVDESS = SHARED / "ravdess"


def synthetic_frames(n_per_class=12, n_classes=3, dim=16, n_speakers=4, seed=0, text_dim=None):
    """Variable-length frame sequences whose class is carried by a few 'emotional' frames:
    class c adds a bump on feature c to ~20% of the frames (what attention should find)."""
    rng = np.random.default_rng(seed)
    audio, text, y, spk = [], [], [], []
    for c in range(n_classes):
        for i in range(n_per_class):
            t = int(rng.integers(20, 40))
            x = rng.normal(size=(t, dim)).astype(np.float32)
            hot = rng.choice(t, size=max(1, t // 5), replace=False)
            x[hot, c] += 3.0
            audio.append(x)
            if text_dim:
                text.append(rng.normal(size=(int(rng.integers(3, 8)), text_dim)).astype(np.float32))
            y.append(c)
            spk.append(f"s{i % n_speakers}")
    return audio, (text or None), np.array(y), np.array(spk)


RAVDESS_CODES = {"neutral": "01", "calm": "02", "happy": "03", "sad": "04", "angry": "05", "fearful": "06",
                 "disgust": "07", "surprised": "08"}
SENTENCES = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def ravdess_clip(actor: int, emotion: str, statement: str = "01", intensity: str = "02", rep: str = "01"):
    """(samples, text) of one RAVDESS clip."""
    from ser_models.corpus import read_audio

    if emotion == "neutral":
        intensity = "01"
    name = f"03-01-{RAVDESS_CODES[emotion]}-{intensity}-{statement}-{rep}-{actor:02d}.flac"
    return read_audio(RAVDESS / "audio" / f"Actor_{actor:02d}" / name), SENTENCES[statement]


def fake_call():
    """A 'call' made of real RAVDESS clips with hand-made segments, speakers and words.

    Returns (Audio, segments, speakers, truth) where truth maps segment_id -> emotion (or a
    skip reason).  Operator = actor 03, executive = actor 01, analyst = actor 02.
    """
    from pipelines.types import Audio, Segment, SpeakerInfo, Word

    sr = 16_000
    gap = np.zeros(sr // 2, np.float32)
    plan = [  # (speaker, section, pieces, text override, truth)
        ("SPK_OP", "prepared", [(3, "neutral")], None, "neutral"),
        ("SPK_EXEC", "prepared", [(1, "happy")], None, "happy"),
        ("SPK_EXEC", "prepared", [(1, "angry")], None, "angry"),
        ("SPK_ANA", "qa", [(2, "sad")], None, "sad"),
        ("SPK_EXEC", "qa", [(1, "calm", "01"), (1, "calm", "02"), (1, "calm", "01", "02"), (1, "calm", "02", "02"),
                            (1, "calm", "01", "01", "02"), (1, "calm", "02", "01", "02"), (1, "calm", "01", "02", "02")],
         None, "long"),
        ("SPK_ANA", "qa", "short", None, "too_short"),
        ("SPK_EXEC", "qa", "silence", None, "silent"),
        ("SPK_EXEC", "qa", [(1, "fearful")], "", "fearful"),
    ]
    chunks, segments, t = [gap], [], len(gap) / sr
    truth = {}
    for sid, (spk, section, pieces, text_override, label) in enumerate(plan):
        if pieces == "short":
            x, text = ravdess_clip(2, "happy")[0][sr: sr + int(0.2 * sr)], "yes"
        elif pieces == "silence":
            x, text = np.zeros(int(1.5 * sr), np.float32), "um"
        else:
            parts = []
            for p in pieces:
                actor, emo, *rest = p
                kw = dict(zip(("statement", "intensity", "rep"), rest))
                parts.append(ravdess_clip(actor, emo, **kw))
            x = np.concatenate([a for a, _ in parts])
            text = " ".join(s for _, s in parts)
        if text_override is not None:
            text = text_override
        start, end = t, t + len(x) / sr
        tokens = text.split()
        edges = np.linspace(start + min(0.8, (end - start) / 4), end - min(0.4, (end - start) / 4), len(tokens) + 1)
        words = [Word(w, float(a), float(b), 0.9, spk, sid) for w, a, b in zip(tokens, edges[:-1], edges[1:])]
        segments.append(Segment(sid, spk, start, end, text, 0.9, section, words))
        truth[sid] = label
        chunks += [x, gap]
        t = end + len(gap) / sr
    samples = np.concatenate(chunks).astype(np.float32)
    speakers = [SpeakerInfo("SPK_OP", "operator"), SpeakerInfo("SPK_EXEC", "executive"),
                SpeakerInfo("SPK_ANA", "analyst")]
    import hashlib

    audio = Audio(Path("fake_call.wav"), samples, sr, hashlib.sha256(samples.tobytes()).hexdigest())
    return audio, segments, speakers, truth
