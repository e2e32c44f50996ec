"""Training: the loop, checkpoints, data, and the pieces of distributed and mixed-precision training.

* :mod:`~companion.train.trainer` — :class:`Trainer` and :class:`TrainConfig` (AdamW, warm-up +
  cosine, clipping, accumulation, evaluation, autocast, DDP, ``torch.compile``);
* :mod:`~companion.train.checkpoint` — atomic checkpoints that resume bit for bit;
* :mod:`~companion.train.data` — tokenized tiny Shakespeare, random blocks, next-token targets (the
  loss they feed is :func:`companion.losses.lm_loss`);
* :mod:`~companion.train.budget` — a fresh GPT trained for a budget of ``D`` tokens and scored on
  held-out text, the unit run of the Scaling-laws chapter's experiments;
* :mod:`~companion.train.distributed` — process-group set-up under ``torchrun``;
* :mod:`~companion.train.accumulate`, :mod:`~companion.train.memory`, :mod:`~companion.train.precision`,
  :mod:`~companion.train.parallel`, :mod:`~companion.train.throughput` — the Distributed-training
  chapter: gradient accumulation, memory budgets and ZeRO, loss scaling, tensor and pipeline
  parallelism, FLOPs and MFU;
* ``python -m companion.train --config baby`` — the command line (:mod:`~companion.train.cli`).
"""

from companion.train.accumulate import accumulate_grads
from companion.train.checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from companion.train.data import (
    LMData,
    random_blocks,
    shakespeare,
    shift_targets,
    split_train_val,
)
from companion.train.memory import memory_budget, saved_activation_bytes, tensor_bytes
from companion.train.parallel import pipeline_bubble, ring_allreduce_bytes, split_mlp, tp_mlp_forward
from companion.train.precision import LossScaler, float_format, underflow_fraction
from companion.train.presets import PRESETS, preset
from companion.train.trainer import TrainConfig, Trainer, param_groups

__all__ = [
    "PRESETS",
    "CheckpointMismatchError",
    "LMData",
    "LossScaler",
    "TrainConfig",
    "Trainer",
    "accumulate_grads",
    "float_format",
    "load_checkpoint",
    "memory_budget",
    "param_groups",
    "pipeline_bubble",
    "preset",
    "random_blocks",
    "ring_allreduce_bytes",
    "save_checkpoint",
    "saved_activation_bytes",
    "shakespeare",
    "shift_targets",
    "split_mlp",
    "split_train_val",
    "tensor_bytes",
    "tp_mlp_forward",
    "underflow_fraction",
]
