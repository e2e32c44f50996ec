"""Shared machinery of the companion optimizers: hyperparameter checks and the foreach step loop.

Every optimizer in ``companion.optim`` is a :class:`torch.optim.Optimizer` subclass, so it works
with ``zero_grad``, ``state_dict``/``load_state_dict``, parameter groups and the schedulers of
``torch.optim.lr_scheduler``. The update itself is written once per optimizer as a *multi-tensor*
kernel: ``torch._foreach_*`` ops that take a whole list of tensors per call, so the Python overhead
of a step does not grow with the number of parameter tensors (on CUDA each call is one fused launch).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["ForeachOptimizer", "check_betas", "check_fraction", "check_nonnegative", "step_count"]


def check_nonnegative(name: str, value: object) -> float:
    """Check that ``value`` is a finite real number ``>= 0`` (not a bool, not a tensor); return it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a non-negative float, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def check_fraction(name: str, value: object) -> float:
    """Check ``0 <= value < 1`` for a decay rate such as a beta, rho or alpha; return it as a float."""
    value = check_nonnegative(name, value)
    if value >= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return value


def check_betas(name: str, betas: object) -> tuple[float, float]:
    """Check a pair ``(beta1, beta2)`` with both entries in ``[0, 1)``; return it as floats."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name}: expected a pair (beta1, beta2), got {betas!r}")
    return check_fraction(f"{name}[0]", betas[0]), check_fraction(f"{name}[1]", betas[1])


_UNSUPPORTED_FLAGS = ("maximize", "amsgrad", "capturable", "differentiable", "fused")


class ForeachOptimizer(torch.optim.Optimizer, metaclass=abc.ABCMeta):
    """Base class: validates every parameter group and runs a multi-tensor update per bucket.

    Subclasses implement ``check_group`` (raise ``ValueError``/``TypeError`` naming the bad
    hyperparameter) and ``update_group``, which receives one parameter group and the parameters of
    that group that have a gradient, all on one device and of one dtype.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.check_group(defaults)  # fail on bad defaults before any group is built
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group after checking its hyperparameters (merged with the defaults)."""
        if isinstance(param_group, dict):
            self.check_group({**self.defaults, **param_group})
        super().add_param_group(param_group)

    @abc.abstractmethod
    def check_group(self, group: dict[str, Any]) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first bad hyperparameter of ``group``."""

    @abc.abstractmethod
    def update_group(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        """Apply the update rule in place to ``params`` (one group's parameters with a gradient)."""

    def _params_with_grad(self, group: dict[str, Any]) -> list[torch.Tensor]:
        """The parameters of ``group`` whose ``.grad`` is set: a ``None`` gradient means "skip"."""
        out = []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if p.is_complex():
                raise TypeError(f"{type(self).__name__}: complex parameters are not supported")
            out.append(p)
        return out

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """Perform one optimization step; ``closure`` (optional) re-evaluates and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # A state dict saved by torch.optim may switch on options we do not implement: refuse
            # rather than silently compute a different update.
            for flag in _UNSUPPORTED_FLAGS:
                if group.get(flag):
                    raise ValueError(
                        f"{type(self).__name__}: {flag}=True is not supported (loaded from a state dict?)"
                    )
            params = self._params_with_grad(group)
            buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
            for p in params:  # foreach ops need one device and one dtype per call
                buckets.setdefault((p.device, p.dtype), []).append(p)
            for bucket in buckets.values():
                self.update_group(group, bucket)
        return loss


def step_count(state: dict[str, Any]) -> int:
    """The per-parameter step counter as an int (a tensor when the state came from ``torch.optim``)."""
    step = state["step"]
    return int(step.item()) if isinstance(step, torch.Tensor) else int(step)
