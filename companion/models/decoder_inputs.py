"""The input checks every decoder-only language model of the companion shares (GPT, Llama): what
``model(idx, targets, kv_cache=…)`` accepts, with errors that name the argument."""

from __future__ import annotations

import torch

from companion._validate import check_tensor
from companion.nn.kv_cache import KVCache

__all__ = ["check_decoder_inputs"]


def check_decoder_inputs(idx: torch.Tensor, vocab_size: int, n_layers: int, kv_cache: KVCache | None) -> int:
    """Check ``idx (B, T)`` (integer ids in ``[0, vocab_size)``, ``T >= 1``) and a KV cache built for
    ``n_layers`` layers and this batch size.

    Returns:
        The position of ``idx[:, 0]``: 0, or the number of tokens already in ``kv_cache``.
    """
    check_tensor("idx", idx, ndim=2)
    if idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"idx: expected an int64 (or int32) tensor of token ids, got dtype {idx.dtype}")
    b, t = idx.shape
    if t == 0:
        raise ValueError("idx: expected at least one token, got shape (B, 0)")
    if kv_cache is not None:
        if not isinstance(kv_cache, KVCache):
            raise TypeError(f"kv_cache: expected a KVCache, got {type(kv_cache).__name__}")
        if kv_cache.n_layers != n_layers or kv_cache.batch_size != b:
            raise ValueError(
                f"kv_cache: built for n_layers={kv_cache.n_layers}, batch_size={kv_cache.batch_size}; "
                f"this model has {n_layers} layers and idx has batch size {b}"
            )
    if not torch.compiler.is_compiling():
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"idx: token ids must be in [0, {vocab_size}), got min {lo}, max {hi}")
    return 0 if kv_cache is None else kv_cache.length
