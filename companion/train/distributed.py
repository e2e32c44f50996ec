"""Data-parallel training with ``torch.distributed``: process-group set-up under ``torchrun``.

``torchrun --nproc_per_node=N`` starts ``N`` copies of a script and gives each the environment
variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`setup`
reads them, joins the process group (NCCL on CUDA, gloo on the CPU) and returns the rank, the world
size and the device; without them it returns ``(0, 1, device)`` and nothing is initialized, so the
same script runs on one process unchanged. The :class:`~companion.train.trainer.Trainer` notices an
initialized group and wraps its model in ``DistributedDataParallel``, which all-reduces (averages)
the gradients during the backward pass: with equal shards and a mean loss,
``(1/N) Σ_k ∇L_k = ∇L`` of the concatenated batch.

**Timeout.** A rank that stops answering (paused, swapped out, stuck in I/O) blocks every other rank
at its next collective. PyTorch waits 30 minutes by default (10 with NCCL); :func:`setup` sets
:data:`DEFAULT_TIMEOUT_S` = 300 seconds, after which the waiting ranks fail with an error. Change it
with ``setup(timeout=...)``, the environment variable ``LLMF_DIST_TIMEOUT_S`` or
``python -m companion.train --dist_timeout=SECONDS`` (raise it for checkpoints that take long to write).
"""

from __future__ import annotations

import datetime
import os
import socket

import torch

__all__ = ["DEFAULT_TIMEOUT_S", "cleanup", "free_port", "is_main_process", "setup"]

#: Seconds a collective waits for the other ranks before failing (PyTorch's default is 30 minutes).
DEFAULT_TIMEOUT_S = 300.0


def setup(
    device: str | None = None, backend: str | None = None, timeout: float | None = None
) -> tuple[int, int, torch.device]:
    """Join the process group if launched by ``torchrun``; otherwise do nothing.

    Args:
        device: ``"cuda"`` or ``"cpu"`` preference (default: CUDA when available). Under CUDA each
            process uses GPU ``LOCAL_RANK``.
        backend: default ``"nccl"`` with CUDA, ``"gloo"`` otherwise.
        timeout: seconds a collective waits for a silent rank before failing; default
            ``$LLMF_DIST_TIMEOUT_S`` or :data:`DEFAULT_TIMEOUT_S`.

    Returns:
        ``(rank, world_size, device)``.
    """
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        single = torch.device(device) if device is not None else torch.device("cuda" if use_cuda else "cpu")
        return 0, 1, single
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if timeout is None:
        timeout = float(os.environ.get("LLMF_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    if not timeout > 0:
        raise ValueError(f"timeout: expected a number of seconds > 0, got {timeout!r}")
    if not dist.is_initialized():
        dist.init_process_group(
            backend or ("nccl" if use_cuda else "gloo"),
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=timeout),
        )
    return rank, world, dev


def cleanup() -> None:
    """Leave the process group (if one was joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0, or when not distributed."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def free_port() -> int:
    """A TCP port that was free a moment ago on localhost (for ``MASTER_PORT`` in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
