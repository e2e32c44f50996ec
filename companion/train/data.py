"""Language-model data: tokenize a corpus, split it 90/10, and cut random contiguous blocks.

An autoregressive language model (自回归语言模型) is trained on next-token prediction. The corpus is
one long sequence of token ids; a training example is a block of ``T`` consecutive ids ``x`` and the
same block shifted by one, ``y[t] = x[t + 1]``, so that one forward pass scores all ``T`` predictions
at once (teacher forcing, 教师强制)::

    ids:  F  i  r  s  t     C  i  t  i  z  e  n
    x:    F  i  r  s  t     C                      (T = 7)
    y:       i  r  s  t     C  i

Blocks start at random offsets drawn from an explicit ``torch.Generator``, so a run is reproducible
and its data stream can be saved in a checkpoint and resumed exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from companion._validate import check_positive_int, check_tensor
from companion.tokenizers import BPETokenizer, CharTokenizer, Tokenizer

__all__ = [
    "LMData",
    "random_blocks",
    "shakespeare",
    "shift_targets",
    "split_train_val",
]


@dataclass
class LMData:
    """A tokenized corpus split for training.

    Attributes:
        train: ``(N_train,)`` int64 ids (the first 90% of the corpus).
        val: ``(N_val,)`` int64 ids (the last 10%).
        tokenizer: the :class:`~companion.tokenizers.base.Tokenizer` that made the ids (a
            :class:`~companion.tokenizers.char.CharTokenizer` or a
            :class:`~companion.tokenizers.bpe.BPETokenizer`).
        name: where the data came from, e.g. ``"shakespeare-char"``.
    """

    train: torch.Tensor
    val: torch.Tensor
    tokenizer: Tokenizer
    name: str = ""

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary size ``V``."""
        return int(self.tokenizer.vocab_size)


def split_train_val(
    ids: torch.Tensor | Sequence[int], val_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a token stream into a leading training part and a trailing validation part.

    A contiguous split (not a shuffle) keeps validation text unseen: random blocks of the training
    part never overlap it. ``val_fraction = 0.1`` gives nanoGPT's 90/10 split.

    Returns:
        ``(train, val)``, int64 tensors.
    """
    ids = torch.as_tensor(ids, dtype=torch.int64)
    check_tensor("ids", ids, ndim=1)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction!r}")
    n = int(len(ids) * (1.0 - val_fraction))
    return ids[:n], ids[n:]


def shakespeare(tokenizer: str = "char", *, bpe_vocab_size: int = 512, val_fraction: float = 0.1) -> LMData:
    """The packaged tiny Shakespeare corpus, tokenized and split 90/10.

    Args:
        tokenizer: ``"char"`` (65 characters, as in nanoGPT) or ``"bpe"`` (a byte-level BPE of
            :class:`companion.tokenizers.BPETokenizer` trained on the whole corpus, ~1.5 s).
        bpe_vocab_size: the BPE vocabulary size (256 bytes + merges).
        val_fraction: the trailing fraction held out for validation.

    Returns:
        An :class:`LMData`.
    """
    from companion.data import tiny_shakespeare

    text = tiny_shakespeare()
    if tokenizer == "char":
        tok: Tokenizer = CharTokenizer(text)
    elif tokenizer == "bpe":
        tok = BPETokenizer.train(text, vocab_size=check_positive_int("bpe_vocab_size", bpe_vocab_size))
    else:
        raise ValueError(f"tokenizer: expected 'char' or 'bpe', got {tokenizer!r}")
    train, val = split_train_val(tok.encode(text), val_fraction)
    return LMData(train, val, tok, name=f"shakespeare-{tokenizer}")


def random_blocks(
    ids: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random contiguous blocks and their next-token targets.

    Start offsets ``s_b`` are drawn uniformly from ``[0, N − T)`` with ``generator``; then
    ``x[b] = ids[s_b : s_b + T]`` and ``y[b] = ids[s_b + 1 : s_b + T + 1]``.

    Args:
        ids: ``(N,)`` int64 token stream with ``N > T``.
        batch_size: ``B``.
        block_size: ``T``.
        generator: a CPU ``torch.Generator`` (its state is what a checkpoint saves).
        device: where to put the batch.

    Returns:
        ``(x, y)``, each ``(B, T)`` int64.
    """
    check_tensor("ids", ids, ndim=1)
    check_positive_int("batch_size", batch_size)
    check_positive_int("block_size", block_size)
    if len(ids) <= block_size:
        raise ValueError(f"ids: need more than block_size={block_size} tokens, got {len(ids)}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    blocks = ids[starts[:, None] + offsets]  # (B, T + 1): one gather instead of a Python loop
    x, y = blocks[:, :-1], blocks[:, 1:]
    if device is not None:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x, y


def shift_targets(ids: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Next-token targets for a batch of sequences: ``targets[:, t] = ids[:, t + 1]``.

    The last position has no next token within the sequence, so its target is ``ignore_index``: the
    loss then averages over ``T − 1`` predictions, ``−(1/(T−1)) Σ_{t<T} log p(x_{t+1} | x_{≤t})``.

    Args:
        ids: ``(B, T)`` (or ``(T,)``) integer token ids.
        ignore_index: the value the loss skips.

    Returns:
        Same shape and dtype as ``ids``.
    """
    check_tensor("ids", ids, ndim=(1, 2))
    if ids.is_floating_point():
        raise TypeError(f"ids: expected integer token ids, got dtype {ids.dtype}")
    targets = torch.full_like(ids, ignore_index)
    targets[..., :-1] = ids[..., 1:]
    return targets
