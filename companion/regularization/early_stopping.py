"""Early stopping (早停): watch a validation metric, keep the best model state, and say when to stop.

:class:`EarlyStopping` is the rule, applied one epoch at a time inside a training loop;
:func:`early_stopping` applies the same rule to a whole recorded validation curve.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["EarlyStopping", "early_stopping"]


class EarlyStopping:
    """Stop training when a validation metric has not improved for ``patience`` consecutive epochs.

    Call :meth:`step` once per epoch with the validation metric (and the model). A value counts as an
    improvement when it beats the best so far by more than ``min_delta`` (lower is better for
    ``mode="min"``, higher for ``"max"``); NaN never improves. On an improvement the model's
    ``state_dict`` is copied (parameters *and* buffers), so :meth:`restore` can bring back the best
    weights after training ran past them.

    Args:
        patience: epochs without improvement tolerated before stopping (``≥ 1``).
        min_delta: the margin an improvement must exceed (``≥ 0``).
        mode: ``"min"`` for losses, ``"max"`` for accuracies.

    Attributes:
        best: the best metric seen (``inf``/``-inf`` before the first step).
        best_epoch: index (0-based, counting calls to :meth:`step`) of the best epoch; −1 before any.
        epoch: number of calls to :meth:`step` so far.
        bad_epochs: consecutive epochs without improvement.
        should_stop: True once ``bad_epochs >= patience``.
        best_state: a copy of the best ``state_dict`` (None until a model was passed).

    Example:
        >>> stopper = EarlyStopping(patience=3)
        >>> [stopper.step(v) for v in [5.0, 4.0, 4.5, 4.6, 4.7]]
        [False, False, False, False, True]
        >>> stopper.best_epoch, stopper.best
        (1, 4.0)
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0, mode: str = "min") -> None:
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
            raise ValueError(f"patience: expected an int >= 1, got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
            raise ValueError(f"min_delta: expected a number >= 0, got {min_delta!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        self.patience, self.min_delta, self.mode = patience, float(min_delta), mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.epoch = 0
        self.bad_epochs = 0
        self.should_stop = False
        self.best_state: dict[str, torch.Tensor] | None = None

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, metric: float | torch.Tensor, model: nn.Module | None = None) -> bool:
        """Record this epoch's validation ``metric``; return True when training should stop.

        Args:
            metric: a number or a one-element tensor.
            model: if given, its ``state_dict`` is copied whenever ``metric`` improves.
        """
        value = float(metric.item() if isinstance(metric, torch.Tensor) else metric)
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module or None, got {type(model).__name__}")
        if self._improves(value):
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
            if model is not None:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        self.epoch += 1
        self.should_stop = self.bad_epochs >= self.patience
        return self.should_stop

    def restore(self, model: nn.Module) -> nn.Module:
        """Load the best state into ``model`` (in place) and return it.

        Raises:
            RuntimeError: if no state was saved (``step`` was never given a model).
        """
        if self.best_state is None:
            raise RuntimeError("restore: no state saved; pass the model to step(metric, model)")
        model.load_state_dict(self.best_state)
        return model


def early_stopping(val_losses: Sequence[float], patience: int, min_delta: float = 0.0) -> int:
    """The epoch at which :class:`EarlyStopping` halts on a recorded validation curve.

    Epoch ``i`` *improves* when ``val_losses[i] < best - min_delta``, where ``best`` is the loss of the
    last improving epoch (``+∞`` before the first). A NaN loss never improves. Training stops at the
    first epoch that ends a run of ``patience`` consecutive epochs without improvement; the weights
    to keep are those of the last improving epoch, ``patience`` epochs earlier.

    Args:
        val_losses: validation loss after each epoch ``0, 1, …``.
        patience: number of epochs without improvement to tolerate (``≥ 1``).
        min_delta: smallest decrease that counts as an improvement (``≥ 0``).

    Returns:
        The index of the stopping epoch, or ``len(val_losses) - 1`` if patience never runs out.

    Raises:
        ValueError: empty ``val_losses``, ``patience < 1`` or ``min_delta < 0``.
    """
    losses = [float(v) for v in val_losses]
    if not losses:
        raise ValueError("val_losses: expected at least one epoch, got an empty sequence")
    stopper = EarlyStopping(patience, min_delta)
    for epoch, loss in enumerate(losses):
        if stopper.step(loss):
            return epoch
    return len(losses) - 1
