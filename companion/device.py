"""Device, dtype and seeding helpers.

Every model, trainer and generator in the package takes ``device=``; these helpers pick a sensible
default (CUDA, then Apple MPS, then CPU) and make runs repeatable.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["autocast_dtype", "default_device", "resolve_device", "seed_everything"]


def default_device() -> torch.device:
    """Return the best available device: CUDA, then MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Turn ``None`` (meaning "best available"), a string or a device into a :class:`torch.device`.

    Raises:
        ValueError: if the device string is malformed or names a backend this machine lacks.
    """
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but torch.cuda.is_available() is False")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device: 'mps' was requested but torch.backends.mps.is_available() is False")
    return dev


def autocast_dtype(device: str | torch.device) -> torch.dtype:
    """The low-precision dtype to use under autocast on ``device``.

    bf16 where the hardware supports it (recent CUDA GPUs, CPU), fp16 on older CUDA GPUs and on MPS.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dev.type == "mps":
        return torch.float16
    return torch.bfloat16


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices).

    Args:
        seed: a non-negative integer.
        deterministic: also ask torch for deterministic algorithms (slower on GPU; some ops then raise).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    random.seed(seed)
    # Seeding NumPy's legacy global generator is the point here: code that calls np.random.* directly.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
