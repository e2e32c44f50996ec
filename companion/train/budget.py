"""Train a fresh GPT for a budget of ``D`` tokens and score it on held-out text: the unit run of a
scaling experiment (the Scaling-laws chapter's grid, its data-repetition runs and exercise).

Every run builds a GPT (:class:`companion.models.gpt.GPT`) of width ``d`` (``n_layer`` layers, heads
of width ``head_dim``) and trains it for ``D`` tokens with the library's
:class:`~companion.train.trainer.Trainer` — random blocks, AdamW, linear warm-up and a cosine decay
that ends with the run (Hoffmann et al. (2022) showed that a schedule longer than the run makes short
runs look worse, one reason for the Kaplan–Chinchilla disagreement) — and returns the mean
cross-entropy (nats per token) on held-out text.

* :func:`train_lm` — one run on random blocks of a training split; :func:`train_on_stream` — one
  epoch over a given stream.
* :func:`repetition_stream` and :func:`repeat_epochs` — a fixed token budget of which only a fraction
  is unique data, repeated (数据重复): the experiment behind misconception M16.3.

The grid itself (widths × budgets, written to ``experiments/results/``) is an experiment, not library
code: ``experiments/scaling_grid.py``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from companion._validate import check_positive_int, check_tensor
from companion.models.gpt import GPT, GPTConfig
from companion.train.trainer import TrainConfig, Trainer

__all__ = [
    "RunConfig",
    "make_model",
    "repeat_epochs",
    "repetition_stream",
    "split_data",
    "train_lm",
    "train_on_stream",
]


@dataclass(frozen=True)
class RunConfig:
    """Model shape (apart from the width) and optimisation settings shared by every run.

    Attributes:
        n_layer: transformer blocks.
        head_dim: width of each attention head; a model of width ``d`` has ``d // head_dim`` heads.
        block_size: training context ``T``.
        batch_size: sequences per step; a step consumes ``batch_size · block_size`` tokens.
        lr: peak AdamW learning rate.
        min_lr_frac: the cosine ends at ``min_lr_frac · lr`` on the run's last step.
        warmup_frac: fraction of the run's steps spent warming up linearly.
        weight_decay: decoupled weight decay on the matrices (not on norms, biases, embeddings).
        grad_clip: clip the gradient norm at this value.
        eval_tokens: validation tokens scored at the end (the first ones of the validation split).
        seed: seeds the initialisation and the order of the sequences.
    """

    n_layer: int = 2
    head_dim: int = 16
    block_size: int = 64
    batch_size: int = 8
    lr: float = 6e-3
    min_lr_frac: float = 0.1
    warmup_frac: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_tokens: int = 32_768
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_layer", "head_dim", "block_size", "batch_size", "eval_tokens"):
            check_positive_int(name, getattr(self, name))
        if not self.lr > 0:
            raise ValueError(f"lr: expected a number > 0, got {self.lr!r}")
        for name in ("min_lr_frac", "warmup_frac"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a number in [0, 1), got {getattr(self, name)!r}")


def split_data(data: torch.Tensor, val_frac: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, val)``: the last ``floor(val_frac · n)`` tokens are the validation split.

    :func:`companion.train.data.split_train_val` rounds the other way (the first
    ``floor((1 − val_frac) · n)`` tokens train), which for tiny Shakespeare moves one token. The
    committed scaling grids were trained on this split, and the GPU grid cannot be re-run on a CPU, so
    the scaling runs keep it.

    Args:
        data: ``(n,)`` int64 token ids.
        val_frac: in ``(0, 1)``.
    """
    check_tensor("data", data, ndim=1)
    if data.dtype != torch.int64:
        raise TypeError(f"data: expected int64 token ids, got dtype {data.dtype}")
    if not (isinstance(val_frac, (int, float)) and 0 < val_frac < 1):
        raise ValueError(f"val_frac: expected a number in (0, 1), got {val_frac!r}")
    n_val = int(val_frac * data.numel())
    if n_val < 2 or data.numel() - n_val < 2:
        raise ValueError(f"data: {data.numel()} tokens are too few to split with val_frac={val_frac}")
    return data[: data.numel() - n_val], data[data.numel() - n_val :]


def repetition_stream(train: torch.Tensor, unique_frac: float, token_budget: int) -> torch.Tensor:
    """The first ``U = round(unique_frac · token_budget)`` tokens of ``train``, tiled to ``token_budget``.

    ``unique_frac = 1`` is the first ``token_budget`` tokens, no repeats; ``unique_frac = 1/k`` repeats
    ``U`` tokens ``k`` times (``k`` epochs). Returns a ``(token_budget,)`` tensor.
    """
    if isinstance(unique_frac, bool) or not isinstance(unique_frac, (int, float)) or not 0 < unique_frac <= 1:
        raise ValueError(f"unique_frac: expected a number in (0, 1], got {unique_frac!r}")
    check_positive_int("token_budget", token_budget)
    unique = max(1, round(unique_frac * token_budget))
    if unique > train.numel():
        raise ValueError(
            f"token_budget: {unique} unique tokens (unique_frac={unique_frac} × {token_budget}) do not fit "
            f"in the {train.numel()} training tokens"
        )
    subset = train[:unique]
    return subset.repeat(math.ceil(token_budget / unique))[:token_budget]


def make_model(width: int, vocab_size: int, config: RunConfig) -> GPT:
    """The run's GPT: width ``d``, ``d // head_dim`` heads, learned positions, tied embeddings,
    initialised from ``config.seed``."""
    check_positive_int("width", width)
    if width % config.head_dim:
        raise ValueError(f"width: expected a multiple of head_dim={config.head_dim}, got {width}")
    gpt_config = GPTConfig(
        vocab_size=vocab_size,
        block_size=config.block_size,
        n_layer=config.n_layer,
        n_head=width // config.head_dim,
        n_embd=width,
        dropout=0.0,
    )
    model = GPT(gpt_config)
    model.reset_parameters(generator=torch.Generator().manual_seed(config.seed))
    return model


def _windows(ids: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut ``ids`` into ``n = len // block`` sequences (inputs) and their next tokens (targets);
    the very last input has no next token in ``ids`` and gets the ignored target -100."""
    n = ids.numel() // block
    x = ids[: n * block].view(n, block)
    y = torch.full((n * block,), -100, dtype=torch.long)
    nxt = ids[1 : n * block + 1]
    y[: nxt.numel()] = nxt
    return x, y.view(n, block)


@torch.no_grad()
def _evaluate(model: GPT, val: torch.Tensor, config: RunConfig, device: torch.device) -> float:
    """Mean cross-entropy (nats/token) over the first ``eval_tokens`` validation tokens."""
    x, y = _windows(val[: config.eval_tokens + 1], config.block_size)
    x, y = x[: config.eval_tokens // config.block_size], y[: config.eval_tokens // config.block_size]
    if x.shape[0] == 0:
        raise ValueError(f"val: need at least block_size={config.block_size} tokens, got {val.numel()}")
    model.eval()
    total, count = 0.0, 0
    for i in range(0, x.shape[0], 64):
        xb, yb = x[i : i + 64].to(device), y[i : i + 64].to(device)
        _, loss = model(xb, yb)
        n = int((yb != -100).sum())
        total += float(loss) * n
        count += n
    return total / count


def train_lm(
    train_ids: torch.Tensor,
    val: torch.Tensor,
    tokens: int,
    *,
    width: int = 64,
    config: RunConfig | None = None,
    vocab_size: int | None = None,
    device: torch.device | str = "cpu",
) -> float:
    """Train a fresh tiny GPT for ``tokens`` training tokens on random blocks of ``train_ids`` with the
    companion's ``Trainer`` (``companion.train.trainer``); return the validation loss (nats per token).

    The run takes ``tokens // (batch_size · block_size)`` steps of ``batch_size`` random
    ``block_size``-token blocks, AdamW (β₂ = 0.95) with linear warm-up over ``warmup_frac`` of the
    steps and a cosine decay to ``min_lr_frac · lr`` at the last step, clipping at ``grad_clip``.
    The validation loss is the mean cross-entropy over the first ``eval_tokens`` tokens of ``val``,
    scored in consecutive ``block_size`` windows.

    Args:
        train_ids: ``(N,)`` int64 training tokens, ``N > block_size``.
        val: ``(M,)`` int64 validation tokens.
        tokens: the training budget ``D`` (at least one batch).
        width: model width ``d``.
        config: shape and optimisation settings (default :class:`RunConfig`).
        vocab_size: default ``max id + 1`` over both splits.
        device: where to train.

    Returns:
        The mean validation cross-entropy, a float.
    """
    config = RunConfig() if config is None else config
    for name, ids in (("train_ids", train_ids), ("val", val)):
        check_tensor(name, ids, ndim=1)
        if ids.dtype != torch.int64:
            raise TypeError(f"{name}: expected int64 token ids, got dtype {ids.dtype}")
    check_positive_int("tokens", tokens)
    if vocab_size is None:
        vocab_size = int(max(train_ids.max(), val.max())) + 1
    steps = tokens // (config.batch_size * config.block_size)
    if steps < 1:
        raise ValueError(
            f"tokens: {tokens} tokens make no full batch of {config.batch_size} × {config.block_size} tokens"
        )
    if train_ids.numel() <= config.block_size:
        raise ValueError(
            f"train_ids: need more than block_size={config.block_size} tokens, got {train_ids.numel()}"
        )
    model = make_model(width, vocab_size, config)
    train_config = TrainConfig(
        max_iters=steps,
        batch_size=config.batch_size,
        lr=config.lr,
        min_lr=config.lr * config.min_lr_frac,
        warmup_iters=int(config.warmup_frac * steps),
        weight_decay=config.weight_decay,
        beta2=0.95,
        grad_clip=config.grad_clip,
        eval_interval=0,
        seed=config.seed,
        progress=False,
    )
    Trainer(model, train_ids, None, train_config, device=device).fit()
    return _evaluate(model, val, config, torch.device(device))


def train_on_stream(
    stream: torch.Tensor,
    val: torch.Tensor,
    *,
    width: int = 64,
    config: RunConfig | None = None,
    vocab_size: int | None = None,
    device: torch.device | str = "cpu",
) -> float:
    """Train a fresh tiny GPT on ``len(stream)`` tokens drawn from ``stream``; return its validation loss.

    :func:`train_lm` with ``train_ids = stream`` and ``tokens = len(stream)``: a stream that repeats
    a subset ``k`` times is trained on for ``k`` epochs of that subset.

    Args:
        stream: ``(S,)`` int64 training tokens, ``S >= batch_size · block_size``.
        val: ``(M,)`` int64 validation tokens.
        width, config, vocab_size, device: as in :func:`train_lm`.
    """
    check_tensor("stream", stream, ndim=1)
    return train_lm(
        stream, val, stream.numel(), width=width, config=config, vocab_size=vocab_size, device=device
    )


def repeat_epochs(
    data: torch.Tensor,
    unique_frac: float,
    token_budget: int,
    *,
    train: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
    val_frac: float = 0.1,
) -> float:
    """Validation loss after training on ``token_budget`` tokens, a fraction ``unique_frac`` of them unique.

    The last ``val_frac`` of ``data`` is the validation split, the same for every ``unique_frac``. The
    training stream is the first ``U = round(unique_frac · token_budget)`` tokens of the rest,
    repeated (``1/unique_frac`` epochs) and cut to exactly ``token_budget`` tokens, so every setting
    costs the same compute. ``unique_frac = 1`` means no repeats.

    Args:
        data: ``(n,)`` int64 token ids.
        unique_frac: in ``(0, 1]``.
        token_budget: training tokens (> 0); ``U`` must fit in the training split.
        train: ``train(stream (token_budget,), val) -> float``; default :func:`train_on_stream` with
            width 64.
        val_frac: size of the validation split.

    Returns:
        What ``train`` returns: the validation loss in nats per token.
    """
    train_ids, val = split_data(data, val_frac)
    stream = repetition_stream(train_ids, unique_frac, token_budget)
    trainer = functools.partial(train_on_stream, width=64) if train is None else train
    return float(trainer(stream, val))
