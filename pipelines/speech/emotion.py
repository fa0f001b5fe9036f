"""The flow's emotion stage: glue between the front end's typed values and ``ser_models``.

    scorer = load_emotion_scorer()                  # once per archive (default: embedded checkpoint)
    out = score_call_emotions(audio, segments, speakers, call_id, scorer=scorer)
    out.emotions, out.trajectories, out.call_features   # pandas frames for the catalog tables

The maths (windows, pooling, tone, trajectories, call features) is in ``ser_models.calls``;
the columns are documented there and in ``ser_models/README.md``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.types import SAMPLE_RATE, Audio, Segment, SpeakerInfo

log = logging.getLogger(__name__)


@dataclass
class EmotionOutputs:
    call_id: str
    model_id: str
    emotions: pd.DataFrame        # one row per segment: p_<class>, tone, arousal, valence, ...
    trajectories: pd.DataFrame    # one row per scored segment, per speaker, with tone_smooth
    call_features: pd.DataFrame   # one row: finance features of the call
    seconds: float
    qa_pairs: pd.DataFrame = None  # one row per question of the Q&A (ser_models/qa.py)

    def summary(self) -> str:
        e, f = self.emotions, self.call_features.iloc[0]
        skipped = e.loc[e["skip_reason"] != "", "skip_reason"].value_counts().to_dict()
        return (f"emotions of call {self.call_id} ({self.model_id}): {int((e['skip_reason'] == '').sum())} "
                f"segments scored, skipped {skipped or 'none'}, {self.seconds:.1f} s\n"
                f"  call tone {f['call_tone']:+.3f}, tone change prepared->Q&A {f['tone_change_prepared_to_qa']:+.3f}, "
                f"volatility {f['tone_volatility']:.3f}, min smoothed tone {f['min_smoothed_tone']:+.3f}, "
                f"hotspots {int(f['n_hotspots'])}, LM tone {f['lm_tone']:+.3f}")

    def tables(self, voice_ids: dict[str, str] | None = None) -> dict[str, pd.DataFrame]:
        """The catalog parts; ``voice_ids`` (speaker -> cross-call voice id, known only when the
        call is written) fill the askers' and answerers' voice ids of ``qa_pairs``."""
        out = {"emotions": self.emotions, "trajectories": self.trajectories, "call_features": self.call_features}
        if self.qa_pairs is not None:
            pairs = self.qa_pairs
            if voice_ids:
                pairs = pairs.assign(**{f"{p}_voice_id": pairs[f"{p}_speaker"].map(voice_ids).fillna(pairs[f"{p}_voice_id"])
                                        for p in ("asker", "answerer")})
            out["qa_pairs"] = pairs
        return out


def _with_ids(df: pd.DataFrame, ids: dict) -> pd.DataFrame:
    """``df`` with the id columns first."""
    return df.assign(**ids)[list(ids) + list(df.columns)]


def load_emotion_scorer(checkpoint: str | Path | None = None):
    """Load a SER checkpoint and its encoders once (default: the shipped embedded checkpoint),
    with the shipped text heads (financial sentiment, FOMC stance) beside it."""
    from ser_models.checkpoint import shipped_text_heads
    from ser_models.inference import EmotionScorer

    return EmotionScorer.load(checkpoint, text_heads=shipped_text_heads())


def segments_frame(segments: list[Segment], speakers: list[SpeakerInfo]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The segments (with each speaker's role; 'unknown' if not listed) and words as frames."""
    roles = {s.speaker: s.role for s in speakers}
    seg = pd.DataFrame([{"segment_id": s.segment_id, "speaker": s.speaker, "role": roles.get(s.speaker, "unknown"),
                         "section": s.section, "start_s": s.start_s, "end_s": s.end_s, "text": s.text}
                        for s in segments],
                       columns=["segment_id", "speaker", "role", "section", "start_s", "end_s", "text"])
    words = pd.DataFrame([{"segment_id": s.segment_id, "word": w.word, "start_s": w.start_s, "end_s": w.end_s}
                          for s in segments for w in s.words], columns=["segment_id", "word", "start_s", "end_s"])
    return seg, words


def score_call_emotions(audio: Audio, segments: list[Segment], speakers: list[SpeakerInfo],
                        call_id: str | None = None, checkpoint: str | Path | None = None,
                        scorer=None, config=None, event_type: str = "") -> EmotionOutputs:
    """Score every segment of a call; build its trajectories and call features.

    ``scorer`` (from ``load_emotion_scorer``) is loaded from ``checkpoint`` if not given.
    ``config``: a ``ser_models.calls.EmotionConfig`` (windows, skips, smoothing).
    ``event_type``: a press conference also gets the FOMC hawkish score.
    """
    from ser_models.calls import EmotionConfig, call_features, score_segments, trajectories
    from ser_models.qa import qa_pairs

    if audio.sample_rate != SAMPLE_RATE:
        raise ValueError(f"{audio.path}: sample rate {audio.sample_rate} Hz, the emotion stage needs "
                         f"{SAMPLE_RATE} Hz (decode with pipelines.speech.audio)")
    t0 = time.time()
    scorer = scorer or load_emotion_scorer(checkpoint)
    cfg = config or EmotionConfig()
    call_id = call_id or audio.call_id
    seg, words = segments_frame(segments, speakers)
    emotions = score_segments(scorer, audio.samples, seg, words, cfg, audio.sample_rate,
                              hawkish=event_type == "press_conference")
    traj = trajectories(emotions, seg, scorer.labels, cfg.smooth_bandwidth_s)
    feats = call_features(emotions, seg, traj, scorer.labels, scorer.card.hotspot_threshold)
    ids = {"call_id": call_id, "model_id": scorer.model_id}
    people = pd.DataFrame([{"speaker": s.speaker, "role": s.role, "name": s.name, "voice_id": s.voice_id}
                           for s in speakers], columns=["speaker", "role", "name", "voice_id"])
    pairs = qa_pairs(seg, emotions, people)
    out = EmotionOutputs(call_id, scorer.model_id, _with_ids(emotions, ids), _with_ids(traj, ids),
                         pd.DataFrame([ids | feats]), time.time() - t0, _with_ids(pairs, ids))
    log.info("%s", out.summary())
    return out
