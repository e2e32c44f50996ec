"""KV cache (KV 缓存) for incremental (autoregressive) decoding.

During generation a decoder produces one token at a time. Token ``t``'s query must attend to the keys
and values of *all* tokens ``0 … t``; those of tokens ``0 … t-1`` were already computed at earlier
steps and do not change (the causal mask stops them from seeing later tokens). A KV cache keeps them,
per layer, so that each step projects only the new token: the work per step no longer grows with
the prefix, and the memory of the cache is the price::

    bytes = 2 (K and V) · L layers · B · G KV heads · T positions · d_h · bytes per element

(:func:`kv_cache_bytes`). Keys are cached *after* any rotary embedding, so a
cached key never needs to be rotated again.

Two storage modes:

* **growing** (``max_len=None``): each :meth:`KVCache.update` concatenates; nothing is reserved;
* **preallocated** (``max_len`` given): ``(B, G, max_len, d_h)`` buffers are allocated up front and
  filled in place, as inference servers do; appending past ``max_len`` raises a clear error.
"""

from __future__ import annotations

import torch

from companion._validate import check_positive_int, check_tensor

__all__ = ["KVCache", "kv_cache_bytes"]


class KVCache:
    """Per-layer key/value cache of shape ``(B, n_kv_heads, T, head_dim)``.

    Args:
        n_layers: number of attention layers ``L`` sharing this cache (index them with ``layer_idx``).
        batch_size: ``B``. Checked on the first update if ``max_len`` is None.
        n_kv_heads: ``G``, the number of key/value heads (``H`` for MHA, 1 for MQA).
        head_dim: ``d_h``.
        max_len: preallocate buffers for this many positions; None grows by concatenation.
        dtype, device: of the buffers; updates are cast to them. Default: float32 on the CPU when
            preallocating, else the dtype and device of the first update.

    Example::

        cache = KVCache(n_layers=2, batch_size=1, n_kv_heads=3, head_dim=64, max_len=128)
        out, _ = attn(x_prompt, is_causal=True, kv_cache=cache, layer_idx=0)  # prefill
        out, _ = attn(x_next, is_causal=True, kv_cache=cache, layer_idx=0)    # one decode step
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_kv_heads: int,
        head_dim: int,
        max_len: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.n_layers = check_positive_int("n_layers", n_layers)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.n_kv_heads = check_positive_int("n_kv_heads", n_kv_heads)
        self.head_dim = check_positive_int("head_dim", head_dim)
        self.max_len = None if max_len is None else check_positive_int("max_len", max_len)
        if dtype is not None and not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype: expected a torch.dtype, got {type(dtype).__name__}")
        self.dtype = dtype
        self.device = None if device is None else torch.device(device)
        self._lengths = [0] * n_layers
        self._k: list[torch.Tensor | None] = [None] * n_layers
        self._v: list[torch.Tensor | None] = [None] * n_layers
        if self.max_len is not None:
            self.dtype = torch.float32 if dtype is None else dtype
            self.device = torch.device("cpu") if device is None else self.device
            shape = (batch_size, n_kv_heads, self.max_len, head_dim)
            for i in range(n_layers):
                self._k[i] = torch.zeros(shape, dtype=dtype, device=self.device)
                self._v[i] = torch.zeros(shape, dtype=dtype, device=self.device)

    # ------------------------------------------------------------------------------------------
    @property
    def length(self) -> int:
        """The number of positions stored in every layer, which is the absolute position of the next token.

        Between forward passes all layers hold the same number of positions; during a pass, layers
        that were already updated hold more, and ``length`` still reports the old value.
        """
        return min(self._lengths)

    def layer_length(self, layer_idx: int) -> int:
        """Number of positions stored for layer ``layer_idx``."""
        self._check_layer(layer_idx)
        return self._lengths[layer_idx]

    @property
    def nbytes(self) -> int:
        """Bytes held by the key and value tensors of all layers (the whole buffers if preallocated)."""
        return sum(t.numel() * t.element_size() for t in (*self._k, *self._v) if t is not None)

    def _check_layer(self, layer_idx: int) -> None:
        if isinstance(layer_idx, bool) or not isinstance(layer_idx, int):
            raise TypeError(f"layer_idx: expected an int, got {type(layer_idx).__name__}")
        if not 0 <= layer_idx < self.n_layers:
            raise IndexError(
                f"layer_idx: expected 0 <= layer_idx < n_layers={self.n_layers}, got {layer_idx}"
            )

    # ------------------------------------------------------------------------------------------
    def update(self, layer_idx: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys and values for one layer and return *all* of that layer's keys and values.

        Args:
            layer_idx: which layer, ``0 <= layer_idx < n_layers``.
            k: new keys ``(B, n_kv_heads, T_new, head_dim)``.
            v: new values, same shape.

        Returns:
            ``(k_all, v_all)``, each ``(B, n_kv_heads, T_old + T_new, head_dim)`` (views into the
            buffers when preallocated).

        Raises:
            ValueError: on a shape mismatch, or when ``T_old + T_new`` exceeds ``max_len``.
        """
        self._check_layer(layer_idx)
        check_tensor("k", k, ndim=4, floating=True)
        check_tensor("v", v, ndim=4, floating=True)
        expected = (self.batch_size, self.n_kv_heads, k.shape[2], self.head_dim)
        for name, t in (("k", k), ("v", v)):
            if tuple(t.shape) != expected:
                raise ValueError(
                    f"{name}: expected shape (B, n_kv_heads, T_new, head_dim) = {expected}, "
                    f"got {tuple(t.shape)}"
                )
        old, new = self._lengths[layer_idx], k.shape[2]
        if self.dtype is None:  # growing cache: follow the first update
            self.dtype = k.dtype
        if self.device is None:
            self.device = k.device
        if self.max_len is not None:
            if old + new > self.max_len:
                raise ValueError(
                    f"KVCache overflow: layer {layer_idx} holds {old} of max_len={self.max_len} positions "
                    f"and cannot take {new} more; allocate a larger max_len or reset() the cache"
                )
            k_buf, v_buf = self._k[layer_idx], self._v[layer_idx]
            # In place (with a cast): no reallocation per step. narrow + copy_ is the same as slice
            # assignment, without the cost of parsing an index tuple at every decoding step.
            k_buf.narrow(2, old, new).copy_(k)
            v_buf.narrow(2, old, new).copy_(v)
            self._lengths[layer_idx] = old + new
            return k_buf.narrow(2, 0, old + new), v_buf.narrow(2, 0, old + new)
        k_new, v_new = k.to(device=self.device, dtype=self.dtype), v.to(device=self.device, dtype=self.dtype)
        if self._k[layer_idx] is None:
            self._k[layer_idx], self._v[layer_idx] = k_new, v_new
        else:
            self._k[layer_idx] = torch.cat([self._k[layer_idx], k_new], dim=2)
            self._v[layer_idx] = torch.cat([self._v[layer_idx], v_new], dim=2)
        self._lengths[layer_idx] = old + new
        return self._k[layer_idx], self._v[layer_idx]

    def get(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The stored ``(k, v)`` of one layer, ``(B, n_kv_heads, T, head_dim)`` each, or None if empty."""
        self._check_layer(layer_idx)
        n = self._lengths[layer_idx]
        if n == 0:
            return None
        return self._k[layer_idx][:, :, :n], self._v[layer_idx][:, :, :n]

    def crop(self, length: int) -> None:
        """Forget every position at or after ``length`` in all layers (e.g. to reuse a shared prompt)."""
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length: expected a non-negative int, got {length!r}")
        for i in range(self.n_layers):
            if length >= self._lengths[i]:
                continue
            if self.max_len is None:
                self._k[i] = self._k[i][:, :, :length] if length else None
                self._v[i] = self._v[i][:, :, :length] if length else None
            self._lengths[i] = length

    def reorder(self, index: torch.Tensor) -> None:
        """Reorder (or select) the batch rows of every layer: row ``i`` becomes old row ``index[i]``.

        Beam search calls this after each step so that each surviving beam keeps the keys and values
        of the prefix it extends. ``index`` may repeat rows; its length becomes the new batch size.

        Args:
            index: ``(B_new,)`` integer tensor of row indices in ``[0, batch_size)``.
        """
        check_tensor("index", index, ndim=1)
        if index.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"index: expected an integer tensor, got dtype {index.dtype}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.batch_size):
            raise ValueError(f"index: expected row indices in [0, {self.batch_size}), got {index.tolist()}")
        for i in range(self.n_layers):
            if self._k[i] is not None:
                self._k[i] = self._k[i].index_select(0, index.to(self._k[i].device))
                self._v[i] = self._v[i].index_select(0, index.to(self._v[i].device))
        self.batch_size = int(index.numel())

    def reset(self) -> None:
        """Empty the cache (preallocated buffers are kept and overwritten by later updates)."""
        self.crop(0)

    def __repr__(self) -> str:
        mode = "growing" if self.max_len is None else f"max_len={self.max_len}"
        return (
            f"KVCache(n_layers={self.n_layers}, batch_size={self.batch_size}, n_kv_heads={self.n_kv_heads}, "
            f"head_dim={self.head_dim}, {mode}, length={self.length}, dtype={self.dtype})"
        )


def kv_cache_bytes(
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    *,
    dtype: torch.dtype = torch.bfloat16,
    seq_len: int = 1,
    batch_size: int = 1,
) -> int:
    """Bytes of a KV cache: ``2 · L · B · G · T · d_h · bytes(dtype)``.

    The factor 2 counts keys *and* values. With the defaults (one token, batch 1, bf16) this is the
    per-token figure, e.g. 49 152 B for the GPT-OSS-20B shape (L = 24, G = 8, d_h = 64).

    Args:
        n_layers: number of attention layers ``L``.
        n_kv_heads: key/value heads per layer ``G`` (``H`` for MHA, 1 for MQA).
        head_dim: per-head width ``d_h``.
        dtype: element type of the cache (bf16/fp16: 2 bytes, fp32: 4, fp8: 1).
        seq_len: cached positions ``T``.
        batch_size: sequences ``B``.

    Returns:
        The size in bytes, an ``int``.
    """
    for name, value in (
        ("n_layers", n_layers),
        ("n_kv_heads", n_kv_heads),
        ("head_dim", head_dim),
        ("seq_len", seq_len),
        ("batch_size", batch_size),
    ):
        check_positive_int(name, value)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype: expected a torch.dtype such as torch.bfloat16, got {dtype!r}")
    return 2 * n_layers * batch_size * n_kv_heads * seq_len * head_dim * dtype.itemsize
