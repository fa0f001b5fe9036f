"""Load the front-end models of a profile once per process (flows reuse them for every call)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache

from pipelines.settings import Profile

log = logging.getLogger("speechfin")


@dataclass
class FrontEndModels:
    profile: Profile
    vad: object  # pipelines.speech.vad.SileroVad
    segmentation: object  # pipelines.speech.segmentation.SegmentationModel
    asr: object  # pipelines.speech.asr.AsrModel
    encoder: object | None = None  # pipelines.speech.diarization.CamppEncoder (embedded)
    pyannote: object | None = None  # pipelines.speech.diarization.PyannoteDiarizer (full)
    load_seconds: float = 0.0

    @property
    def embedding_model(self) -> str:
        """The ``voices.embedding_model`` of this front end's speaker embeddings."""
        return "pyannote" if self.pyannote is not None else self.encoder.id

    def diarize(self, audio, num_speakers: int | None, speech: list[tuple[float, float]]):
        """The profile's diarizer, whichever it is: the pyannote pipeline (full profile), or the
        bundled segmentation + CAM++ clustering kept to the VAD's ``speech`` (embedded)."""
        from pipelines.speech.diarization import diarize
        from pipelines.speech.segmentation import run_segmentation

        if self.pyannote is not None:
            return self.pyannote(audio, num_speakers)
        return diarize(audio, run_segmentation(audio, self.segmentation), self.encoder, num_speakers,
                       self.profile.diarization, speech)


LOCAL_OPTIONS = ("give local folders with --asr-model DIR, --diarizer DIR (or --diarizer embedded) and "
                 "--align-model DIR (or --align-model '' for none)")


class ModelLoadError(RuntimeError):
    """A model the profile names cannot be loaded (not in the local cache when offline, a
    gated model without ``HF_TOKEN``, a bad folder); the message names it and the options."""


def _load(what: str, fn, *args, **kwargs):
    """``fn(*args)``, a model loader; any failure becomes one :class:`ModelLoadError` line.
    Loaders that print their own advice (pyannote's hub helper prints a paragraph to stdout
    before raising) are kept quiet: the one line says what to do."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            return fn(*args, **kwargs)
    except ImportError as exc:  # the environment, not the model: local folders would not help
        raise ModelLoadError(f"{what} cannot be loaded: a package is missing ({exc}); reinstall the "
                             f"environment from requirements.lock (make clean-venv, then make test)") from exc
    except Exception as exc:  # noqa: BLE001 - any loader error becomes one line naming the model
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            cause = f"not in the local model cache, and HF_HUB_OFFLINE is set ({cause})"
        raise ModelLoadError(f"{what} cannot be loaded: {cause}; {LOCAL_OPTIONS}") from exc
    finally:
        if buf.getvalue().strip():
            log.debug("%s: %s", what, buf.getvalue().strip())


@lru_cache(maxsize=4)
def load_models(profile: Profile) -> FrontEndModels:
    """Load (and cache) the models ``profile`` names. Raises :class:`ModelLoadError` (one
    line, naming the model and the local-folder options) on failure."""
    import torch

    from pipelines.speech.asr import AsrModel
    from pipelines.speech.diarization import CamppEncoder, PyannoteDiarizer
    from pipelines.speech.segmentation import SegmentationModel
    from pipelines.speech.vad import SileroVad

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    vad = _load("VAD model silero-vad", SileroVad)
    seg = _load(f"segmentation model {profile.segmentation or 'bundled'!r}", SegmentationModel,
                profile.segmentation or None, step=profile.segmentation_step)
    if profile.diarizer == "embedded":
        encoder, pyannote = _load("speaker encoder CAM++", CamppEncoder), None
    else:
        encoder, pyannote = None, _load(f"diarizer {profile.diarizer!r}", PyannoteDiarizer, profile.diarizer)
    align = f" or alignment model {profile.asr.align_model!r}" if profile.asr.align_model else ""
    asr = _load(f"ASR model {profile.asr.model or 'bundled tiny.en'!r}{align}", AsrModel, profile.asr)
    dt = time.perf_counter() - t0
    log.info("loaded %s profile models (Silero VAD, segmentation, %s diarizer, ASR %s) in %.1f s",
             profile.name, profile.diarizer, asr.model_id, dt)
    return FrontEndModels(profile, vad, seg, asr, encoder, pyannote, dt)


@lru_cache(maxsize=4)
def load_emotion(checkpoint: str = ""):
    """Load (and cache) the SER scorer of ``checkpoint`` ("" = the shipped embedded one)."""
    from pipelines.speech.emotion import load_emotion_scorer

    t0 = time.perf_counter()
    scorer = load_emotion_scorer(checkpoint or None)
    scorer.warm_up()  # its encoders, now: not in the first call's emotion stage
    log.info("loaded SER checkpoint %s in %.1f s", scorer.model_id, time.perf_counter() - t0)
    return scorer
