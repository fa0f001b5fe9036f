"""Helpers of the SER tests: paths to the shared corpora, synthetic frame data."""

from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
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
