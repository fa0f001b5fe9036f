"""The full profile's pyannote path, from a local folder (never the hub).

The folder holds a pipeline ``config.yaml`` of the shape pyannote publishes, pointing to
local files: the real segmentation model (bundled in whisperx), a randomly initialised
WeSpeaker ResNet34 embedding checkpoint and a random (but valid) PLDA.  A user with the
real ``speaker-diarization-community-1`` folder changes only the path.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from pipelines.speech.audio import decode_audio
from pipelines.speech.segmentation import bundled_segmentation_path


def build_local_pipeline(folder, seed: int = 0):
    import pyannote.audio
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = WeSpeakerResNet34()
    torch.save({
        "state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": "2.6.6",
        "pyannote.audio": {"versions": {"pyannote.audio": pyannote.audio.__version__},
                           "architecture": {"module": type(model).__module__, "class": type(model).__name__},
                           "specifications": Specifications(Problem.REPRESENTATION, Resolution.CHUNK, duration=5.0)},
    }, folder / "embedding.bin")
    rng = np.random.default_rng(seed)
    D, L = 256, 128
    (folder / "plda").mkdir(exist_ok=True)
    np.savez(folder / "plda" / "xvec_transform.npz", mean1=np.zeros(D), mean2=np.zeros(L),
             lda=np.linalg.qr(rng.normal(size=(D, D)))[0][:, :L])
    np.savez(folder / "plda" / "plda.npz", mu=np.zeros(L), tr=np.linalg.qr(rng.normal(size=(L, L)))[0],
             psi=np.linspace(2.0, 0.5, L))
    config = {
        "version": "3.1.0",
        "pipeline": {"name": "pyannote.audio.pipelines.SpeakerDiarization", "params": {
            "segmentation": str(bundled_segmentation_path()), "embedding": str(folder / "embedding.bin"),
            "plda": {"checkpoint": str(folder / "plda")}, "clustering": "AgglomerativeClustering",
            "embedding_batch_size": 8, "segmentation_batch_size": 8, "segmentation_step": 0.5}},
        "params": {"segmentation": {"min_duration_off": 0.0, "threshold": 0.5},
                   "clustering": {"method": "centroid", "min_cluster_size": 3, "threshold": 0.7}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_pyannote_pipeline_from_local_folder(tmp_path, sample_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from pipelines.speech.diarization import PyannoteDiarizer
    from pipelines.speech.evaluation import read_rttm, to_annotation

    folder = build_local_pipeline(tmp_path / "community-1-local")
    diarizer = PyannoteDiarizer(folder)
    audio = decode_audio(sample_dir / "sample.wav")
    result = diarizer(audio, num_speakers=2)
    assert len(result.speakers) == 2
    assert all(0 <= t.start_s < t.end_s <= audio.duration_s + 0.1 for t in result.turns)
    # random embeddings decide nothing about identity, but the real segmentation model
    # decides where speech is: it must agree with the reference speech regions
    ref = to_annotation(read_rttm(sample_dir / "sample.rttm")["sample"]).get_timeline().support()
    hyp = to_annotation(result.turns).get_timeline().support()
    overlap = ref.crop(hyp).duration()
    assert overlap / ref.duration() > 0.9 and overlap / hyp.duration() > 0.85
    assert set(result.embeddings) == set(result.speakers)


def test_missing_pipeline_folder_is_a_clear_error(tmp_path):
    from pipelines.speech.diarization import PyannoteDiarizer

    with pytest.raises(FileNotFoundError, match="nowhere/config.yaml: pyannote pipeline folder or config.yaml not found"):
        PyannoteDiarizer(tmp_path / "nowhere" / "config.yaml")
