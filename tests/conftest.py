"""Shared pytest configuration: single-threaded torch, deterministic algorithms, GPU and browser markers."""

from __future__ import annotations

import os

import pytest
import torch

# Oversubscribed OpenMP threads make small CPU ops several times slower on a 2-core machine.
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True, warn_only=True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)
