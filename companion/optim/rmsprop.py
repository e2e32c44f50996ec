"""RMSprop: divide each coordinate's step by a running root-mean-square of its gradients.

With decay ``α`` (``alpha``; ρ in the chapter), ``ε`` outside the root and no bias correction::

    g ← ∇L(θ) + λθ
    s ← α s + (1 − α) g²                           (s starts at 0)
    c ← √s + ε,   or √(s − ḡ²) + ε if centered     (ḡ ← α ḡ + (1 − α) g)
    θ ← θ − η g / c,   or with momentum μ:  b ← μ b + g / c,  θ ← θ − η b

RMSprop was proposed in Hinton's Coursera lecture 6e (2012); the running average fixes Adagrad's
ever-growing sum of squares, whose effective learning rate only shrinks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from companion.optim.base import ForeachOptimizer, check_fraction, check_nonnegative, step_count

__all__ = ["RMSprop"]


class RMSprop(ForeachOptimizer):
    """RMSprop, optionally centered and with momentum; matches ``torch.optim.RMSprop``.

    Args:
        params: parameters or parameter groups.
        lr: learning rate ``η >= 0``.
        alpha: decay ``α`` of the running mean of squared gradients, in ``[0, 1)``.
        eps: ``ε >= 0`` added to the root (outside it) for numerical stability.
        weight_decay: L2 coefficient ``λ >= 0`` added to the gradient.
        momentum: ``μ >= 0``; with ``μ > 0`` the normalized gradient feeds a momentum buffer.
        centered: divide by an estimate of the gradient's standard deviation instead of its RMS.

    State per parameter: ``"step"``, ``"square_avg"``; ``"momentum_buffer"`` if ``momentum > 0``;
    ``"grad_avg"`` if ``centered``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay", "momentum"):
            check_nonnegative(name, group[name])
        check_fraction("alpha", group["alpha"])
        if not isinstance(group["centered"], bool):
            raise TypeError(f"centered: expected a bool, got {group['centered']!r}")

    def update_group(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        lr, alpha, eps, wd = group["lr"], group["alpha"], group["eps"], group["weight_decay"]
        mu, centered = group["momentum"], group["centered"]
        states = [self.state[p] for p in params]
        for p, s in zip(params, states, strict=True):
            if not s:  # lazy initialisation at the parameter's first step
                s["step"] = 0
                s["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if mu > 0:
                    s["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if centered:
                    s["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            s["step"] = step_count(s) + 1
        grads = [p.grad for p in params]
        if wd != 0:
            grads = torch._foreach_add(grads, params, alpha=wd)
        square_avgs = [s["square_avg"] for s in states]
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
        if centered:  # Var[g] = E[g²] − E[g]²
            grad_avgs = [s["grad_avg"] for s in states]
            torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
            denom = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1)
            torch._foreach_sqrt_(denom)
        else:
            denom = torch._foreach_sqrt(square_avgs)
        torch._foreach_add_(denom, eps)
        if mu > 0:
            bufs = [s["momentum_buffer"] for s in states]
            torch._foreach_mul_(bufs, mu)
            torch._foreach_addcdiv_(bufs, grads, denom)
            torch._foreach_add_(params, bufs, alpha=-lr)
        else:
            torch._foreach_addcdiv_(params, grads, denom, value=-lr)
