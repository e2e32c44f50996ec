"""Named training configurations: the model and the run, as in nanoGPT's ``config/`` files.

* ``"baby"`` — nanoGPT's README example for a CPU: character-level tiny Shakespeare, 4 layers,
  4 heads, d = 128, block 64, batch 12, 2 000 iterations, no dropout — with the peak learning rate
  raised from nanoGPT's 1e-3 to 4e-3 (still decayed to 1e-4). nanoGPT reports a validation loss of
  about 1.88 for its recipe; over 8 seeds on a CPU its own code averages 1.904 and ours 1.905,
  while 4e-3, the best of a sweep over 1e-3 to 6e-3, averages 1.766
  (``experiments/results/gpt_baby_lr_sweep.json``).
  ``--lr=1e-3 --decay_embeddings=True`` restores nanoGPT's recipe exactly.
* ``"shakespeare-char"`` — nanoGPT's ``train_shakespeare_char.py`` for one GPU: 6 layers, 6 heads,
  d = 384, block 256, batch 64, dropout 0.2, 5 000 iterations (validation loss about 1.47).

Both use nanoGPT's model choices — no biases (its ``train.py`` sets ``bias = False``) and the exact
GELU (``nn.GELU()``) — where :meth:`~companion.models.gpt.GPTConfig.gpt2` keeps GPT-2's biases and
tanh GELU.
"""

from __future__ import annotations

from companion.models.gpt import GPTConfig
from companion.train.trainer import TrainConfig

__all__ = ["PRESETS", "preset"]

PRESETS: dict[str, tuple[GPTConfig, TrainConfig]] = {
    "baby": (
        GPTConfig.baby(vocab_size=65, dropout=0.0, bias=False, activation="gelu"),
        TrainConfig(
            max_iters=2000, lr_decay_iters=2000, batch_size=12, lr=4e-3, min_lr=1e-4, warmup_iters=100,
            beta2=0.99, weight_decay=0.1, grad_clip=1.0, eval_interval=250, eval_iters=20,
        ),
    ),
    "shakespeare-char": (
        GPTConfig.shakespeare_char(vocab_size=65, dropout=0.2, bias=False, activation="gelu"),
        TrainConfig(
            max_iters=5000, lr_decay_iters=5000, batch_size=64, lr=1e-3, min_lr=1e-4, warmup_iters=100,
            beta2=0.99, weight_decay=0.1, grad_clip=1.0, eval_interval=250, eval_iters=200,
        ),
    ),
}  # fmt: skip


def preset(name: str) -> tuple[GPTConfig, TrainConfig]:
    """The ``(GPTConfig, TrainConfig)`` of a named preset (fresh copies)."""
    import dataclasses

    if name not in PRESETS:
        raise ValueError(f"name: expected one of {sorted(PRESETS)}, got {name!r}")
    model, train = PRESETS[name]
    return dataclasses.replace(model), dataclasses.replace(train)
