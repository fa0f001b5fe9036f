"""Fixtures of the SER tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _frame_cache(tmp_path, monkeypatch):
    """Encoder frame caches of tests go under tmp_path, never into the user's cache."""
    monkeypatch.setenv("SPEECHFIN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The SER tests use small tensors: one intra-op thread is faster than two, and much
    faster on a shared machine.  Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
