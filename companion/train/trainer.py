"""A small, complete training loop for language models: the same code on CPU, one GPU or many.

One optimizer step (an *iteration*) does::

    for each of grad_accum micro-batches:        # gradient accumulation
        x, y = random blocks                      # B sequences of T tokens per rank
        with autocast(bf16/fp16 if asked):        # mixed precision on CUDA
            loss = model(x, y) / grad_accum
        (scaled) loss.backward()                  # DDP all-reduces gradients on the last one
    clip ‖g‖ to grad_clip                          # g ← g·min(1, c/‖g‖)
    AdamW step at lr(t)                           # warm-up + cosine schedule
    every eval_interval: mean train/val loss over eval_iters batches

**Weight decay** (decoupled, AdamW) is applied to the matrices of the linear layers only. Biases and
norm gains are not decayed (shrinking a gain towards 0 has no regularizing meaning), and neither are
the embeddings (a documented choice, as in many recipes: rows of rare tokens get few gradients, and
decay would pull them to 0 between their updates). With tied embeddings the output matrix *is* the
embedding, so it is not decayed either. nanoGPT decays every 2-D tensor, embeddings included.

**Data parallelism.** Under ``torchrun`` (``torch.distributed`` initialized) the model is wrapped in
``DistributedDataParallel``; ``batch_size`` is per rank. All ranks draw the same global batch of
``world_size × batch_size`` blocks from a shared seeded generator and each takes its own slice, so
``W`` ranks with batch ``b`` compute exactly the gradient of one process with batch ``W·b``.

**Mixed precision.** ``precision="bf16"`` or ``"fp16"`` runs the forward pass under
``torch.autocast``; fp16 uses a ``torch.amp.GradScaler`` (loss scaling), bf16 does not need one.
Weights, gradients and optimizer states stay in fp32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from companion._validate import check_positive_int
from companion.optim import AdamW, WarmupCosine
from companion.train.checkpoint import (
    CheckpointMismatchError,
    check_model_config,
    config_diff,
    load_checkpoint,
    save_checkpoint,
)
from companion.train.data import random_blocks

__all__ = ["TrainConfig", "Trainer", "param_groups"]

PRECISIONS = ("fp32", "bf16", "fp16")

#: TrainConfig fields a resumed run may change: how it is watched and compiled, and how long it runs.
RESUME_SAFE = frozenset(
    {"max_iters", "eval_interval", "eval_iters", "progress", "compile", "fused_optimizer"}
)


@dataclass
class TrainConfig:
    """Hyperparameters of a :class:`Trainer` run (names follow nanoGPT's ``train.py``).

    Attributes:
        max_iters: optimizer steps to run.
        batch_size: sequences per micro-batch *per rank*.
        grad_accum: micro-batches accumulated per optimizer step.
        lr: peak learning rate ``η_max``.
        min_lr: final learning rate ``η_min``.
        warmup_iters: linear warm-up steps ``W`` (the first step uses ``lr = 0``).
        lr_decay_iters: step ``S`` where the cosine reaches ``min_lr`` (None: ``max_iters``).
        weight_decay: decoupled weight decay ``λ`` on the linear layers' matrices.
        decay_embeddings: decay the embedding matrices too (nanoGPT's choice); see :func:`param_groups`.
        beta1: AdamW's decay rate of the first moment.
        beta2: AdamW's decay rate of the second moment.
        eps: AdamW's epsilon.
        grad_clip: clip the global gradient norm to this value (0: no clipping).
        eval_interval: evaluate every this many steps (and at the end); 0 disables.
        eval_iters: batches per split in an evaluation.
        seed: seeds the model's dropout stream and the data generators.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 adds loss scaling).
        compile: wrap the model in ``torch.compile`` (opt-in; slow to start, fast afterwards on GPU).
        fused_optimizer: use ``torch.optim.AdamW(fused=True)`` (None: on CUDA only); otherwise the
            companion's multi-tensor ``AdamW``.
        progress: show a tqdm bar with the loss and tokens/s.
    """

    max_iters: int = 2000
    batch_size: int = 12
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None
    weight_decay: float = 0.1
    decay_embeddings: bool = False
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    precision: str = "fp32"
    compile: bool = False
    fused_optimizer: bool | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_iters", "batch_size", "grad_accum", "eval_iters"):
            check_positive_int(name, getattr(self, name))
        for name in ("warmup_iters", "eval_interval", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {v!r}")
        if self.lr_decay_iters is not None:
            check_positive_int("lr_decay_iters", self.lr_decay_iters)
        if self.decay_iters <= self.warmup_iters:
            raise ValueError(
                f"lr_decay_iters: the cosine must end after the warm-up ({self.warmup_iters} steps), "
                f"got {self.decay_iters}"
            )
        for name in ("lr", "min_lr", "weight_decay", "beta1", "beta2", "eps", "grad_clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a number in [0, 1), got {getattr(self, name)!r}")
        if not self.eps > 0:
            raise ValueError(f"eps: expected a number > 0, got {self.eps!r}")
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError(
                f"lr, min_lr: expected 0 <= min_lr <= lr and lr > 0, got {self.lr}, {self.min_lr}"
            )
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay, grad_clip: expected numbers >= 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {self.precision!r}")

    @property
    def decay_iters(self) -> int:
        """``S``: ``lr_decay_iters`` or ``max_iters``."""
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return dataclasses.asdict(self)


def param_groups(
    model: torch.nn.Module, weight_decay: float, *, decay_embeddings: bool = False
) -> list[dict[str, Any]]:
    """AdamW parameter groups: decay the weight matrices of ``nn.Linear`` layers, nothing else.

    Biases, norm gains and embeddings (token and position) go to a group with ``weight_decay = 0``.
    A parameter shared by several modules (tied embeddings) is placed once, and is decayed only if
    *every* owner is a linear layer.

    Args:
        model: the model.
        weight_decay: ``λ`` of the decayed group.
        decay_embeddings: decay every parameter with two or more dimensions, embeddings included
            (nanoGPT's grouping); biases and norm gains are still not decayed.
    """
    decay_ids: set[int] = set()
    no_decay_ids: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if (isinstance(module, nn.Linear) and name == "weight") or (decay_embeddings and p.ndim >= 2):
                decay_ids.add(id(p))
            else:
                no_decay_ids.add(id(p))
    decay, no_decay = [], []
    for p in model.parameters():  # de-duplicated, in a stable order
        if not p.requires_grad:
            continue
        (decay if id(p) in decay_ids and id(p) not in no_decay_ids else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _dist() -> tuple[bool, int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size()
    return False, 0, 1


class Trainer:
    """Train a language model ``model(x, y) -> (logits, loss)`` on token streams.

    Args:
        model: e.g. a :class:`~companion.models.gpt.GPT` (anything with ``config.block_size`` or pass
            ``block_size``); it is moved to ``device``.
        train_ids: ``(N,)`` int64 training tokens.
        val_ids: ``(M,)`` validation tokens, or None (then only the training loss is evaluated).
        config: a :class:`TrainConfig`.
        device: default the model's device.
        block_size: context length of the training blocks; default ``model.config.block_size``.

    Attributes:
        history: ``{"iter", "loss", "lr", "grad_norm"}`` per step and ``"eval"``, a list of
            ``{"iter", "train", "val"}`` dicts, for plotting.
        step: optimizer steps done.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_ids: torch.Tensor,
        val_ids: torch.Tensor | None = None,
        config: TrainConfig | None = None,
        *,
        device: torch.device | str | None = None,
        block_size: int | None = None,
    ) -> None:
        self.config = TrainConfig() if config is None else config
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(self.config).__name__}")
        cfg = self.config
        self.device = next(model.parameters()).device if device is None else torch.device(device)
        self.block_size = block_size if block_size is not None else model.config.block_size
        check_positive_int("block_size", self.block_size)
        for name, ids in (("train_ids", train_ids), ("val_ids", val_ids)):
            if ids is not None and (not isinstance(ids, torch.Tensor) or ids.ndim != 1):
                raise ValueError(f"{name}: expected a 1-D tensor of token ids")
            if ids is not None and len(ids) <= self.block_size:
                raise ValueError(
                    f"{name}: need more than block_size={self.block_size} tokens, got {len(ids)}"
                )
        self.train_ids, self.val_ids = train_ids, val_ids
        self.distributed, self.rank, self.world_size = _dist()

        self.raw_model = model.to(self.device)
        self.model = self.raw_model
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.raw_model, device_ids=ids)
        if cfg.compile:
            self.model = torch.compile(self.model)

        fused = cfg.fused_optimizer if cfg.fused_optimizer is not None else self.device.type == "cuda"
        groups = param_groups(self.raw_model, cfg.weight_decay, decay_embeddings=cfg.decay_embeddings)
        betas = (cfg.beta1, cfg.beta2)
        if fused:
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                groups, lr=cfg.lr, betas=betas, eps=cfg.eps, fused=True
            )
        else:
            self.optimizer = AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps)
        self.schedule = WarmupCosine(cfg.lr, cfg.warmup_iters, cfg.decay_iters, cfg.min_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.generator = torch.Generator().manual_seed(cfg.seed)  # the training data stream
        torch.manual_seed(cfg.seed)  # dropout
        self.step = 0
        self.history: dict[str, list] = {"iter": [], "loss": [], "lr": [], "grad_norm": [], "eval": []}
        self.tokens_per_iter = cfg.batch_size * cfg.grad_accum * self.world_size * self.block_size

    # ---- pieces -----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def get_batch(self, ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of a global batch of ``world_size × batch_size`` random blocks."""
        b = self.config.batch_size
        x, y = random_blocks(ids, b * self.world_size, self.block_size, generator)
        sl = slice(self.rank * b, (self.rank + 1) * b)
        return x[sl].to(self.device), y[sl].to(self.device)

    def _all_mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            import torch.distributed as dist

            value = value.clone()
            dist.all_reduce(value)
            value /= self.world_size
        return value

    @torch.no_grad()
    def evaluate(self, eval_iters: int | None = None) -> dict[str, float]:
        """Mean loss over ``eval_iters`` batches of each split, drawn from a fixed seed every time
        (the same batches at every evaluation, so curves are comparable), in eval mode.

        Args:
            eval_iters: batches per split; default ``config.eval_iters``.
        """
        cfg = self.config
        n_batches = cfg.eval_iters if eval_iters is None else check_positive_int("eval_iters", eval_iters)
        self.model.eval()
        out = {}
        splits = {"train": self.train_ids, "val": self.val_ids}
        for i, (split, ids) in enumerate(splits.items()):
            if ids is None:
                continue
            gen = torch.Generator().manual_seed(cfg.seed + 1 + i)
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for _ in range(n_batches):
                x, y = self.get_batch(ids, gen)
                with self._autocast():
                    _, loss = self.model(x, y)
                total += loss.double()
            out[split] = float(self._all_mean(total / n_batches))
        self.model.train()
        return out

    def train_step(self) -> float:
        """One optimizer step (``grad_accum`` micro-batches); returns the mean loss over all ranks."""
        cfg = self.config
        self.model.train()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for micro in range(cfg.grad_accum):
            x, y = self.get_batch(self.train_ids, self.generator)
            last = micro == cfg.grad_accum - 1
            # Under DDP, all-reduce gradients once, after the last micro-batch's backward.
            sync = contextlib.nullcontext() if (last or not self.distributed) else self.model.no_sync()
            with sync:
                with self._autocast():
                    _, loss = self.model(x, y)
                    loss = loss / cfg.grad_accum  # Σ_j ∇(L_j / k) = ∇(mean loss) for equal micro-batches
                self.scaler.scale(loss).backward()
            total += loss.detach().double()
        self.scaler.unscale_(self.optimizer)  # clip (and report) the true gradient, not the scaled one
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")  # inf: measure, never clip
        norm = torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), max_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        loss_value = float(self._all_mean(total))
        self.history["iter"].append(self.step)
        self.history["loss"].append(loss_value)
        self.history["lr"].append(lr)
        self.history["grad_norm"].append(float(norm))
        return loss_value

    def fit(self, max_iters: int | None = None) -> dict[str, list]:
        """Train until ``step == max_iters`` (default ``config.max_iters``), evaluating periodically.

        Returns:
            ``history``.
        """
        cfg = self.config
        end = cfg.max_iters if max_iters is None else max_iters
        check_positive_int("max_iters", end)
        bar = None
        if cfg.progress and self.rank == 0:
            from tqdm import tqdm  # the text bar: it renders in terminals, notebooks and the built book

            bar = tqdm(total=end, initial=self.step, desc="train", unit="it", mininterval=2.0)
        t0, tokens = time.perf_counter(), 0
        try:
            while self.step < end:
                loss = self.train_step()
                tokens += self.tokens_per_iter
                if bar is not None:
                    rate = tokens / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate:,.0f}", refresh=False)
                    bar.update(1)
                if cfg.eval_interval and (self.step % cfg.eval_interval == 0 or self.step == end):
                    self.history["eval"].append({"iter": self.step, **self.evaluate()})
        finally:
            if bar is not None:
                bar.close()
        self.elapsed = time.perf_counter() - t0
        self.tokens_per_second = tokens / max(self.elapsed, 1e-9)
        return self.history

    # ---- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load_state_dict` needs to continue the run exactly."""
        model_config = getattr(self.raw_model, "config", None)
        return {
            "model": self.raw_model.state_dict(),
            "model_config": model_config.to_dict() if hasattr(model_config, "to_dict") else None,
            "train_config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "data": self.generator.get_state(),
            },
            "history": self.history,
        }

    def save(self, path: str | Path) -> Path | None:
        """Write an atomic checkpoint (rank 0 only under DDP; other ranks return None)."""
        if self.rank != 0:
            return None
        return save_checkpoint(self.state_dict(), path)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the model config must match; see
        :func:`~companion.train.checkpoint.load_checkpoint`)."""
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available() and rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.generator.set_state(rng["data"])
        self.history = state["history"]

    def resume(self, path: str | Path) -> dict[str, Any]:
        """Load a checkpoint written by :meth:`save` and continue from its step.

        The optimizer (its learning rate, betas, weight decay, ε) and the schedule continue exactly as
        they were saved, so the run's hyperparameters must be the checkpoint's: a differing one is an
        error rather than a value that would be recorded but not applied. What may change is how the
        run is watched and how long it goes (``RESUME_SAFE``): a longer ``max_iters`` keeps the
        checkpoint's cosine, which is recorded by setting ``lr_decay_iters`` to its length (after it the
        learning rate stays at ``min_lr``).

        Raises:
            CheckpointMismatchError: if it was saved for a differently configured model, or with
                different training hyperparameters (every difference is listed).
        """
        state = load_checkpoint(path, None, map_location=self.device)
        check_model_config(state, self.raw_model, path)
        saved = state.get("train_config")
        if saved is not None:
            current = self.config.to_dict()
            differing = {k for k in saved.keys() & current.keys() if saved[k] != current[k]} - RESUME_SAFE
            if differing:
                diff = "; ".join(d for d in config_diff(saved, current) if d.split(":")[0] in differing)
                raise CheckpointMismatchError(
                    f"path: {str(path)!r} was saved with other training hyperparameters ({diff}); a resumed "
                    "run continues the checkpoint's optimizer and schedule, so pass the checkpoint's values, "
                    "or start a new run in another directory"
                )
            decay = saved["lr_decay_iters"] or saved["max_iters"]
            if self.config.decay_iters != decay:  # a longer (or shorter) run: the cosine keeps its length
                # (the schedule object itself is restored with the scheduler's state below)
                self.config = dataclasses.replace(self.config, lr_decay_iters=decay)
        self.load_state_dict(state)  # the model's weights too
        return state
