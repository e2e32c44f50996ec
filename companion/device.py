"""Device, dtype and seeding helpers.

Every model, trainer and generator in the package takes ``device=``; these helpers pick a sensible
default (CUDA, then Apple MPS, then CPU) and make runs repeatable: :func:`seed_everything` seeds every
generator, and :func:`reproducible` puts a whole process (a chapter's kernel) in a known numerics state.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "NumericsState",
    "autocast_dtype",
    "default_device",
    "default_dtype",
    "reproducible",
    "resolve_device",
    "seed_everything",
]


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


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Within the block, new floating-point tensors and modules are created in ``dtype``.

    ``with default_dtype(torch.float64): model = GPT(config)`` draws the initial weights in float64
    itself, rather than drawing float32 weights and casting them (``model.double()``). The difference
    matters for reproducibility. torch's CPU ``normal_`` draws float32 numbers with vectorized code on
    AVX2/AVX-512 machines and scalar code elsewhere, and ``uniform_(a, b)`` (``nn.Linear``'s default
    initialization) fuses a multiply and an add where its kernel is compiled for AVX2: so the same seed
    gives initial weights that differ in the last bit between CPUs. Cast to float64, a float32 draw keeps
    that difference (about 1e-8 relative), which a training run amplifies; drawn in float64, ``normal_``
    is bit-identical everywhere and ``uniform_`` differs by 1e-16 at most. The previous default is
    restored on exit, also after an exception.

    Raises:
        TypeError: if ``dtype`` is not a floating-point ``torch.dtype``.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating-point torch.dtype, got {dtype!r}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


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


@dataclass(frozen=True)
class NumericsState:
    """What :func:`reproducible` set; its text form is the line a chapter's setup cell shows."""

    seed: int
    threads: int
    deterministic: bool

    def __str__(self) -> str:
        threads = f"{self.threads} torch thread" + ("s" if self.threads != 1 else "")
        algorithms = "deterministic algorithms" if self.deterministic else "fastest algorithms"
        seeded = f"seed {self.seed} (Python, NumPy, torch)"
        return f"numerics: {seeded} · {threads} · float32 by default · {algorithms}"

    __repr__ = __str__


def reproducible(seed: int = 0, *, threads: int = 1, deterministic: bool = True) -> NumericsState:
    """Put this process in a known numerics state, so that re-running code prints the same numbers.

    Seeds Python's, NumPy's and torch's generators (:func:`seed_everything`), fixes torch's intra-op
    thread count (a sum split over more threads is added in another order), restores ``float32`` as the
    default dtype and, with ``deterministic``, asks torch for deterministic algorithms (it warns where an
    operation has none). Every chapter's setup cell calls it.

    What it cannot fix is the machine: another CPU dispatches other vector kernels (AVX-512, AVX2, none)
    and rounds differently in the last bits, which a long training run can amplify. The book therefore
    prints each number only as precisely as that spread allows (CONTRIBUTING.md, "The numerics contract").

    Args:
        seed: a non-negative integer.
        threads: torch's intra-op threads; 1 is also the fastest choice for a chapter's small tensors.
        deterministic: call ``torch.use_deterministic_algorithms(True, warn_only=True)`` (or turn it off).

    Returns:
        What was set; it prints as one line, e.g.
        ``numerics: seed 0 (Python, NumPy, torch) · 1 torch thread · float32 by default ·
        deterministic algorithms`` (on one line).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected a positive int, got {threads!r}")
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic: expected True or False, got {deterministic!r}")
    seed_everything(seed, deterministic=deterministic)
    if not deterministic:
        torch.use_deterministic_algorithms(False)
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float32)
    return NumericsState(seed, threads, deterministic)
