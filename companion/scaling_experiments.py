"""Small scaling experiments on CPU: a grid of tiny GPTs (model size × training tokens) for fitting
your own scaling law, and the fixed-budget data-repetition experiment (数据重复).

Every run trains a fresh GPT (``companion.models.gpt.GPT``) of width ``d`` (``n_layer`` layers, heads
of width ``head_dim``) for a budget of ``D`` tokens with the companion's
``Trainer`` (``companion.train.trainer``) — random blocks, AdamW, linear warm-up and a cosine decay that ends
with the run (Hoffmann et al. (2022) showed that a schedule longer than the run makes short runs look
worse, one reason for the Kaplan–Chinchilla disagreement) — and returns the mean cross-entropy (nats
per token) on held-out text.

* :func:`repeat_epochs` builds the stream for a fixed token budget of which only a fraction is unique
  data, repeated, and trains on it: the experiment behind misconception M16.3.
* :func:`run_scaling_grid` trains every (width, budget) pair of a :class:`ScalingGridConfig` and the
  repetition runs, and returns a JSON-serialisable record with the configuration and its hash;
  ``experiments/scaling_grid.py`` writes it to ``experiments/results/scaling_grid.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from companion._validate import check_positive_int, check_tensor
from companion.files import config_hash
from companion.models.gpt import GPT, GPTConfig

__all__ = [
    "RunConfig",
    "ScalingGridConfig",
    "make_model",
    "repeat_epochs",
    "repetition_stream",
    "run_scaling_grid",
    "shakespeare_chars",
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


@dataclass(frozen=True)
class ScalingGridConfig:
    """The experiment ``experiments/scaling_grid.py`` runs: a width × token-budget grid, then the
    repetition runs at one width and one budget.

    Attributes:
        widths: model widths ``d`` (each a multiple of ``run.head_dim``).
        token_budgets: training tokens ``D`` of the grid's runs (unique data, one epoch).
        repetition_width: the model width of the repetition runs.
        repetition_budget: their fixed token budget.
        unique_fracs: fraction of that budget that is unique data (``1/k`` = ``k`` epochs).
        val_frac: the last ``val_frac`` of the corpus is held out for validation.
        run: shared model and optimisation settings.
    """

    widths: tuple[int, ...] = (32, 48, 64, 96)
    token_budgets: tuple[int, ...] = (102_400, 204_800, 409_600, 819_200)
    repetition_width: int = 64
    repetition_budget: int = 409_600
    unique_fracs: tuple[float, ...] = (1.0, 0.25, 0.0625, 0.015625)
    val_frac: float = 0.1
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON types (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def gpu(cls) -> ScalingGridConfig:
        """The bigger grid for a GPU: the CPU grid's widths and budgets extended (7 widths × 5 budgets),
        with the same per-run settings, so the 16 shared runs can be compared across devices."""
        return cls(
            widths=(32, 48, 64, 96, 128, 192, 256), token_budgets=(51_200, 102_400, 204_800, 409_600, 819_200)
        )


def shakespeare_chars() -> tuple[torch.Tensor, int]:
    """Tiny Shakespeare as character ids (vocabulary: the sorted characters) and the vocabulary size."""
    from companion.data import tiny_shakespeare

    text = tiny_shakespeare()
    index = {ch: i for i, ch in enumerate(sorted(set(text)))}
    return torch.tensor([index[ch] for ch in text], dtype=torch.long), len(index)


def split_data(data: torch.Tensor, val_frac: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, val)``: the last ``floor(val_frac · n)`` tokens are the validation split.

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
    from companion.train import TrainConfig, Trainer  # the trainer imports models; keep this module light

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


def run_scaling_grid(
    config: ScalingGridConfig,
    data: torch.Tensor,
    vocab_size: int,
    *,
    device: torch.device | str = "cpu",
    log: bool = False,
) -> dict[str, Any]:
    """Train every (width, token budget) of the grid and the repetition runs.

    Args:
        config: the experiment.
        data: ``(n,)`` int64 token ids of the whole corpus (split by ``config.val_frac``).
        vocab_size: ``V``.
        device: where to train.
        log: print one line per run.

    Returns:
        ``{"config", "config_hash", "vocab_size", "grid": [...], "repetition": [...]}``. Each grid
        row has ``width, n_params, tokens, flops (6·N·D), val_loss``; each repetition row has
        ``unique_frac, unique_tokens, epochs, val_loss``.
    """
    cfg = config.to_dict()
    train_ids, val = split_data(data, config.val_frac)
    grid = []
    for width in config.widths:
        n_params = make_model(width, vocab_size, config.run).num_parameters()
        for tokens in config.token_budgets:
            start = time.perf_counter()
            # random blocks of the whole training split: D tokens from ~1M, hardly any repeated
            loss = train_lm(
                train_ids, val, tokens, width=width, config=config.run, vocab_size=vocab_size, device=device
            )
            row = {"width": width, "n_params": n_params, "tokens": tokens, "flops": 6 * n_params * tokens}
            grid.append({**row, "val_loss": round(loss, 6)})
            if log:
                print(
                    f"d={width:>3} N={n_params:>7} D={tokens:>8}: val {loss:.4f} "
                    f"({time.perf_counter() - start:.1f}s)"
                )
    repetition = []
    for frac in config.unique_fracs:
        start = time.perf_counter()
        stream = repetition_stream(train_ids, frac, config.repetition_budget)
        loss = train_on_stream(
            stream,
            val,
            width=config.repetition_width,
            config=config.run,
            vocab_size=vocab_size,
            device=device,
        )
        unique = max(1, round(frac * config.repetition_budget))
        epochs = round(config.repetition_budget / unique, 6)
        repetition.append(
            {"unique_frac": frac, "unique_tokens": unique, "epochs": epochs, "val_loss": round(loss, 6)}
        )
        if log:
            print(f"unique_frac={frac:<9} U={unique:>7}: val {loss:.4f} ({time.perf_counter() - start:.1f}s)")
    return {
        "config": cfg,
        "config_hash": config_hash(cfg),
        "vocab_size": vocab_size,
        "grid": grid,
        "repetition": repetition,
    }
