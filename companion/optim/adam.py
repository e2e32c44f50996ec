"""Adam (Kingma & Ba, 2015) with coupled L2 decay, and AdamW (Loshchilov & Hutter, 2019).

Adam keeps exponentially weighted moving averages (指数加权平均) of the gradient and of its square,
corrects their bias towards the zero initialization, and divides one by the root of the other::

    m ← β₁ m + (1 − β₁) g,      v ← β₂ v + (1 − β₂) g²
    m̂ = m / (1 − β₁ᵗ),          v̂ = v / (1 − β₂ᵗ)
    θ ← θ − η m̂ / (√v̂ + ε)

The two classes differ only in where the weight decay ``λ`` enters:

* :class:`Adam` (``torch.optim.Adam``'s ``weight_decay``) adds L2 to the gradient, ``g ← g + λθ``; the
  decay then passes through ``m`` and is divided by ``√v̂``, so weights with large gradients are barely
  decayed;
* :class:`AdamW` decays the weights directly, ``θ ← (1 − ηλ) θ`` before the Adam step: decoupled weight
  decay (解耦权重衰减), the same relative shrinkage for every weight.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from companion.optim.base import ForeachOptimizer, check_betas, check_nonnegative, step_count

__all__ = ["Adam", "AdamW"]


class Adam(ForeachOptimizer):
    """Adam with L2 regularization added to the gradient; matches ``torch.optim.Adam``.

    Args:
        params: parameters or parameter groups.
        lr: learning rate ``η >= 0``.
        betas: ``(β₁, β₂)``, decay rates of the first and second moment averages, each in ``[0, 1)``.
        eps: ``ε >= 0`` added to ``√v̂`` (outside the root).
        weight_decay: L2 coefficient ``λ >= 0``, added to the gradient as ``λθ`` (coupled).

    State per parameter: ``"step"`` (an int ``t``), ``"exp_avg"`` (``m``) and ``"exp_avg_sq"`` (``v``):
    two extra copies of every parameter, the memory cost of Adam.
    """

    decoupled: bool = False  # where the weight decay enters; AdamW sets True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_nonnegative(name, group[name])
        check_betas("betas", group["betas"])

    def update_group(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if group.get("decoupled_weight_decay", self.decoupled) != self.decoupled:  # a torch state dict
            raise ValueError(
                f"{type(self).__name__}: the loaded state has decoupled_weight_decay="
                f"{group['decoupled_weight_decay']}; use {'Adam' if self.decoupled else 'AdamW'} instead"
            )
        states = [self.state[p] for p in params]
        for p, s in zip(params, states, strict=True):
            if not s:  # lazy initialisation: m = v = 0 is what the bias correction undoes
                s["step"] = 0
                s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            s["step"] = step_count(s) + 1
        grads = [p.grad for p in params]
        if wd != 0:
            if self.decoupled:  # AdamW: θ ← (1 − ηλ) θ, independent of the gradient statistics
                torch._foreach_mul_(params, 1 - lr * wd)
            else:  # Adam + L2: g ← g + λθ (a new list: p.grad itself is left untouched)
                grads = torch._foreach_add(grads, params, alpha=wd)
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)  # m ← m + (1 − β₁)(g − m) = β₁ m + (1 − β₁) g
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        # Bias corrections are per parameter: a parameter whose gradient was None skipped steps.
        steps = [s["step"] for s in states]
        step_size = [-lr / (1 - beta1**t) for t in steps]
        bias_correction2_sqrt = [(1 - beta2**t) ** 0.5 for t in steps]
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, bias_correction2_sqrt)  # √v̂ = √v / √(1 − β₂ᵗ)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denom, step_size)  # θ ← θ − η m̂ / (√v̂ + ε)


class AdamW(Adam):
    """Adam with decoupled weight decay; matches ``torch.optim.AdamW``.

    The same arguments as :class:`Adam`, but ``weight_decay`` (default ``1e-2``, as in PyTorch) shrinks
    the weights directly, ``θ ← (1 − ηλ) θ``, before the Adam step, instead of being added to the
    gradient. This is the optimizer of essentially every LLM pretraining recipe.
    """

    decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
