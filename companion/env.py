"""``python -m companion.env``: the versions and device a bug report should include."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path

import torch

from companion import __version__
from companion.device import default_device

__all__ = ["cache_dir", "report"]

_LIBRARIES = (
    "torch",
    "numpy",
    "matplotlib",
    "tqdm",
    "scikit-learn",
    "jupyter-book",
    "sphinx",
    "myst-nb",
    "nbval",
    "pytest",
    "hypothesis",
    "transformers",
    "tokenizers",
)


def cache_dir() -> Path:
    """Where pretrained assets are cached: ``$LLM_FOUNDATIONS_CACHE`` or ``~/.cache/llm-foundations``."""
    return Path(os.environ.get("LLM_FOUNDATIONS_CACHE", Path.home() / ".cache" / "llm-foundations"))


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report() -> str:
    """A multi-line text with Python, platform, library versions, the default device and the cache."""
    lines = [
        f"llm-foundations (companion) {__version__}",
        f"Python     {sys.version.split()[0]} ({platform.platform()})",
    ]
    lines += [f"{name:<12} {_version(name)}" for name in _LIBRARIES]
    device = default_device()
    lines.append(f"device     {device} (torch threads: {torch.get_num_threads()})")
    if device.type == "cuda":
        lines.append(f"GPU        {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}")
    cache = cache_dir()
    n_files = sum(1 for p in cache.rglob("*") if p.is_file()) if cache.is_dir() else 0
    state = f"warm ({n_files} files)" if n_files else "cold (empty)"
    lines.append(f"cache      {cache}: {state}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
