"""Learning-rate schedules: linear warm-up to a peak, then cosine decay to a floor.

With ``W`` warm-up steps, ``S`` total steps, peak ``η_max``, floor ``η_min`` and start factor ``s``::

    η(t) = η_max (s + (1 − s) t / W)                                   0 <= t < W
    η(t) = η_min + (η_max − η_min) (1 + cos(π (t − W) / (S − W))) / 2   W <= t <= S
    η(t) = η_min                                                        t > S

Warm-up keeps the first updates small while Adam's second-moment estimate is still noisy; the cosine
decay spends most of the run at a high rate and anneals smoothly at the end (SGDR, Loshchilov & Hutter,
2017; used with warm-up by GPT-3 and most LLMs since). For ``s > 0`` the schedule equals PyTorch's
``SequentialLR([LinearLR(start_factor=s, total_iters=W), CosineAnnealingLR(T_max=S − W,
eta_min=η_min)], milestones=[W])`` for ``t <= S`` (``LinearLR`` does not accept ``s = 0``).

One object, :class:`WarmupCosine`, is the schedule: its :meth:`~WarmupCosine.lr_at` gives the rate at a
step, and calling it gives the multiplier that ``torch.optim.lr_scheduler.LambdaLR`` expects::

    schedule = WarmupCosine(peak_lr, 100, 5000, min_lr=peak_lr / 10)
    schedule.lr_at(0), schedule.lr_at(100)              # 0.0, peak_lr
    opt = AdamW(model.parameters(), lr=peak_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    for step in range(5000):
        ...; opt.step(); sched.step()
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from companion.optim.base import check_nonnegative

__all__ = ["WarmupCosine"]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up to ``peak_lr`` over ``warmup_steps``, cosine decay to ``min_lr`` at ``total_steps``.

    A frozen dataclass, so that ``LambdaLR.state_dict()`` can save it (it stores a callable object's
    attributes, but not a lambda). Calling it returns the *multiplier* ``lr_at(step) / peak_lr`` that
    ``LambdaLR`` applies to each group's initial learning rate.

    Args:
        peak_lr: the learning rate reached at the end of warm-up, ``> 0``.
        warmup_steps: ``W >= 0``; 0 starts directly at the peak.
        total_steps: ``S > W``, the step at which the rate reaches ``min_lr``.
        min_lr: the floor, ``0 <= min_lr <= peak_lr``.
        start_factor: the warm-up starts at ``start_factor * peak_lr``, in ``[0, 1]``.
    """

    peak_lr: float
    warmup_steps: int
    total_steps: int
    min_lr: float = 0.0
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        if check_nonnegative("peak_lr", self.peak_lr) <= 0:
            raise ValueError(f"peak_lr: expected a number > 0, got {self.peak_lr!r}")
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_int("total_steps", self.total_steps, 1)
        if self.total_steps <= self.warmup_steps:
            raise ValueError(
                f"total_steps: expected more than warmup_steps={self.warmup_steps}, got {self.total_steps}"
            )
        if check_nonnegative("min_lr", self.min_lr) > self.peak_lr:
            raise ValueError(f"min_lr: expected at most peak_lr={self.peak_lr!r}, got {self.min_lr!r}")
        if check_nonnegative("start_factor", self.start_factor) > 1:
            raise ValueError(f"start_factor: expected a number in [0, 1], got {self.start_factor!r}")

    def lr_at(self, step: int) -> float:
        """The learning rate at optimizer step ``step`` (0-based: the rate used by the first step is
        ``lr_at(0)``)."""
        _check_int("step", step, 0)
        w, s = self.warmup_steps, self.total_steps
        if step < w:
            return self.peak_lr * (self.start_factor + (1 - self.start_factor) * step / w)
        if step > s:
            return self.min_lr
        cosine = 0.5 * (1 + math.cos(math.pi * (step - w) / (s - w)))  # 1 at t = W, 0 at t = S
        return self.min_lr + (self.peak_lr - self.min_lr) * cosine

    def __call__(self, step: int) -> float:
        """The ``LambdaLR`` multiplier ``lr_at(step) / peak_lr``."""
        return self.lr_at(step) / self.peak_lr
