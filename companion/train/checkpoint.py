"""Checkpoints that are written atomically and resume a run bit for bit.

A checkpoint holds everything the next step depends on: the model's weights, the optimizer's state
(Adam's ``m`` and ``v`` and step counts), the learning-rate scheduler's position, the gradient
scaler, the random-number generators (the global CPU and CUDA ones, which drive dropout, and the
generator that draws the data), the step counter and the configurations. Restoring all of them makes
``N`` steps + save + load + ``N`` steps produce the same losses as ``2N`` uninterrupted steps — on the
CPU exactly (GPU kernels may use non-deterministic reductions).

**Atomic write.** :func:`save_checkpoint` writes to a temporary file in the same directory, flushes
it to disk and renames it over the target with ``os.replace``, which is atomic on POSIX and Windows:
a crash in the middle of writing leaves the previous checkpoint untouched, never a truncated file.

**Integrity.** The state is serialized once, its sha256 recorded beside it, and the digest checked on
every load: a file whose bytes changed on disk (a flipped bit, a truncated copy) is refused with an
error naming it, instead of resuming with damaged optimizer state.

Files are read with ``torch.load(weights_only=True)``: they hold only tensors, numbers, strings and
containers, so loading one cannot execute code.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from companion.files import atomic_open

__all__ = [
    "CheckpointMismatchError",
    "check_model_config",
    "config_diff",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "llm-foundations/checkpoint-v2"
_FORMAT_V1 = "llm-foundations/checkpoint-v1"  # the state itself, no checksum (read with a warning)


class CheckpointMismatchError(ValueError):
    """The checkpoint was saved for a model (or a training run) with a different configuration."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, ``os.replace``).

    Args:
        state: a dict of tensors, numbers, strings, lists and dicts (``torch.save``-able with
            ``weights_only`` loading).
        path: the destination; its directory is created if needed.

    Returns:
        The path written.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state: expected a dict, got {type(state).__name__}")
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    record = {
        "format": FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    with atomic_open(path, "wb") as f:
        torch.save(record, f)
    return path


def config_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two configuration dicts, e.g. ``"n_embd: 128 -> 64"``."""
    keys = sorted(set(saved) | set(current))
    missing = object()
    out = []
    for k in keys:
        a, b = saved.get(k, missing), current.get(k, missing)
        if a != b:
            show = lambda v: "(absent)" if v is missing else repr(v)  # noqa: E731
            out.append(f"{k}: checkpoint {show(a)}, model {show(b)}")
    return out


def _model_config(model: nn.Module) -> dict[str, Any] | None:
    config = getattr(model, "config", None)
    return config.to_dict() if hasattr(config, "to_dict") else None


def check_model_config(state: dict[str, Any], model: nn.Module, path: str | Path = "checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` listing every field in which ``model.config`` differs
    from the checkpoint's ``"model_config"`` (nothing to check when either is absent)."""
    current = _model_config(model)
    saved = state.get("model_config")
    if current is not None and saved is not None and saved != current:
        diff = "; ".join(config_diff(saved, current))
        raise CheckpointMismatchError(
            f"path: {str(path)!r} was saved for a different model configuration ({diff}); "
            "build the model with the checkpoint's config (GPT.from_config(state['model_config']))"
        )


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device | None = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint, check it belongs to ``model``, and load the model (and optimizer) state.

    Args:
        path: a file written by :func:`save_checkpoint`.
        model: if given, its ``config.to_dict()`` must equal the saved ``"model_config"`` (else a
            :class:`CheckpointMismatchError` lists every differing field), then ``"model"`` is loaded.
        optimizer: if given, ``"optimizer"`` is loaded into it.
        map_location: passed to ``torch.load``.

    Returns:
        The whole checkpoint dict (scheduler, RNG states, step … are for the caller to restore).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a checkpoint of this format.
        CheckpointMismatchError: if the model configuration differs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint at {str(path)!r}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or overwritten file fails inside torch's reader
        raise ValueError(
            f"path: {str(path)!r} is damaged or not a checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    if isinstance(record, dict) and record.get("format") == _FORMAT_V1:
        warnings.warn(
            f"{path}: a checkpoint-v1 file, which carries no checksum: read unverified", stacklevel=2
        )
        state = torch.load(path, map_location=map_location, weights_only=True)
    elif isinstance(record, dict) and record.get("format") == FORMAT:
        payload = record["payload"].numpy().tobytes()
        digest = hashlib.sha256(payload).hexdigest()
        if digest != record.get("sha256"):
            raise ValueError(
                f"path: {str(path)!r} is corrupted: the sha256 of its contents is {digest[:16]}…, the "
                f"checkpoint recorded {str(record.get('sha256'))[:16]}…; resume from another checkpoint"
            )
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
        state["format"] = FORMAT
    else:
        raise ValueError(f"path: {str(path)!r} is not a {FORMAT} checkpoint")
    if model is not None:
        check_model_config(state, model, path)
        model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state
