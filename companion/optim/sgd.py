"""Stochastic gradient descent (随机梯度下降) with momentum (动量), Nesterov momentum and L2 decay.

The update, in PyTorch's form (the learning rate ``η`` multiplies the buffer, not the gradient)::

    g ← ∇L(θ) + λθ                       (weight_decay λ: L2 added to the gradient)
    b ← g                    at the first step
    b ← μ b + (1 − τ) g      afterwards   (momentum μ, dampening τ)
    d ← g + μ b  if nesterov else b
    θ ← θ − η d

With ``momentum=0`` this is plain gradient descent, ``θ ← θ − η (g + λθ) = (1 − ηλ) θ − η g``: for
plain SGD, L2 regularization with ``λ`` *is* weight decay with rate ``ηλ`` (they differ once momentum
or an adaptive denominator enters).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from companion.optim.base import ForeachOptimizer, check_nonnegative

__all__ = ["SGD"]


class SGD(ForeachOptimizer):
    """SGD with optional (Nesterov) momentum and coupled L2 weight decay; matches ``torch.optim.SGD``.

    Args:
        params: parameters or parameter groups (dicts with a ``"params"`` key and overrides).
        lr: learning rate ``η >= 0``.
        momentum: ``μ >= 0``; 0 gives plain (stochastic) gradient descent.
        dampening: ``τ >= 0``, scales the gradient entering the buffer by ``1 − τ`` (after step 1).
        weight_decay: L2 coefficient ``λ >= 0`` added to the gradient as ``λθ``.
        nesterov: use ``g + μ b`` as the direction (requires ``momentum > 0`` and ``dampening == 0``).

    State per parameter: ``"momentum_buffer"`` (same shape as the parameter) when ``momentum > 0``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            check_nonnegative(name, group[name])
        if not isinstance(group["nesterov"], bool):
            raise TypeError(f"nesterov: expected a bool, got {group['nesterov']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "nesterov=True requires momentum > 0 and dampening == 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def update_group(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        grads = [p.grad for p in params]
        if wd != 0:  # coupled L2: the decay term goes through momentum like the gradient
            grads = torch._foreach_add(grads, params, alpha=wd)
        if mu != 0:
            states = [self.state[p] for p in params]
            bufs = [s.get("momentum_buffer") for s in states]
            if all(b is not None for b in bufs):
                torch._foreach_mul_(bufs, mu)
                torch._foreach_add_(bufs, grads, alpha=1 - group["dampening"])
            else:  # first step of some parameter: its buffer starts as the gradient itself
                for i, (s, g) in enumerate(zip(states, grads, strict=True)):
                    if bufs[i] is None:
                        bufs[i] = s["momentum_buffer"] = g.detach().clone()
                    else:
                        bufs[i].mul_(mu).add_(g, alpha=1 - group["dampening"])
            # Nesterov looks ahead along the buffer; out of place, so p.grad is never modified.
            grads = torch._foreach_add(grads, bufs, alpha=mu) if group["nesterov"] else bufs
        torch._foreach_add_(params, grads, alpha=-lr)
