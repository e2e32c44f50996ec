"""Multi-head latent attention 多头潜在注意力 (MLA, DeepSeek-V2, 2024): a compressed KV cache.

MLA caches one low-rank latent per token instead of per-head keys and values. With ``h_t`` the input
of token ``t`` (row vectors, ``nn.Linear`` computes ``x Wᵀ``)::

    c_t   = h_t W_DKV                      latent, d_c values          (cached)
    k^C_t = c_t W_UK,  v_t = c_t W_UV      per-head keys and values, recomputed from c_t
    k^R_t = RoPE(h_t W_KR)                 one d_R-wide rotary key shared by all heads   (cached)
    q_t   = [h_t W_Q ; RoPE(h_t W_QR)]     per head: d_h content + d_R rotary dimensions

and head ``i`` attends with scores ``(q^C_i · k^C_i + q^R_i · k^R) / sqrt(d_h + d_R)``. The cache holds
``d_c + d_R`` numbers per token and layer — 512 + 64 = 576 in DeepSeek-V2, against
``2 · 128 · 128 = 32 768`` for 128-head MHA.

The RoPE part is *decoupled* because a rotation between ``q`` and ``W_UK`` would stop ``W_UK`` from
being **absorbed** into the query: ``q^C_i · (c W_UK^i) = (q^C_i W_UK^iᵀ) · c``, so at decode time the
scores can be taken directly against the cached latents (and ``W_UV`` folded into the output),
never materializing per-head keys. :meth:`MultiHeadLatentAttention.forward` computes both ways
(``absorb=False``/``True``); they agree to rounding.

Simplifications against DeepSeek-V2: no low-rank query compression and no normalization of the
latent; projections have no biases (a bias on ``W_UK`` would break the absorption).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from companion._validate import check_positive_int, check_tensor
from companion.nn.masks import causal
from companion.nn.sdpa import scaled_dot_product_attention

__all__ = ["LatentKVCache", "MultiHeadLatentAttention", "mla_cache_bytes", "rope_half"]


def rope_half(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding, "half" layout: dimension ``i`` is paired with ``i + D/2``.

    ``x`` is ``(..., T, D)`` with even ``D``; ``positions`` is ``(T,)``. The pair ``(x_i, x_{i+D/2})``
    of token ``p`` is rotated by the angle ``p · base^(-2i/D)`` (the layout of Hugging Face Llama's
    ``rotate_half``). The Positional encoding chapter derives it; here it rotates MLA's decoupled keys.
    """
    check_tensor("x", x, min_ndim=2, floating=True)
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"x: the rotary width must be even, got {d}")
    half = d // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float64, device=x.device) / half)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def mla_cache_bytes(
    n_layers: int,
    d_latent: int,
    d_rope: int,
    *,
    dtype: torch.dtype = torch.bfloat16,
    seq_len: int = 1,
    batch_size: int = 1,
) -> int:
    """Bytes of an MLA cache: ``L · B · T · (d_c + d_R) · bytes(dtype)`` (no factor 2: K and V share c)."""
    for name, value in (("n_layers", n_layers), ("d_latent", d_latent), ("seq_len", seq_len)):
        check_positive_int(name, value)
    check_positive_int("batch_size", batch_size)
    if isinstance(d_rope, bool) or not isinstance(d_rope, int) or d_rope < 0:
        raise ValueError(f"d_rope: expected a non-negative int, got {d_rope!r}")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype: expected a torch.dtype, got {dtype!r}")
    return n_layers * batch_size * seq_len * (d_latent + d_rope) * dtype.itemsize


class LatentKVCache:
    """Per-layer MLA cache: latents ``c`` ``(B, T, d_c)`` and shared rotary keys ``k^R`` ``(B, T, d_R)``.

    It grows by concatenation. ``nbytes`` is ``L · B · T · (d_c + d_R) · bytes`` — compare
    :func:`companion.nn.kv_cache.kv_cache_bytes` for the per-head caches of MHA/GQA.
    """

    def __init__(self, n_layers: int) -> None:
        self.n_layers = check_positive_int("n_layers", n_layers)
        self._c: list[torch.Tensor | None] = [None] * n_layers
        self._kr: list[torch.Tensor | None] = [None] * n_layers

    def layer_length(self, layer_idx: int) -> int:
        """Positions stored for layer ``layer_idx``."""
        if not 0 <= layer_idx < self.n_layers:
            raise IndexError(
                f"layer_idx: expected 0 <= layer_idx < n_layers={self.n_layers}, got {layer_idx}"
            )
        c = self._c[layer_idx]
        return 0 if c is None else c.shape[1]

    @property
    def length(self) -> int:
        """Positions stored in every layer (the absolute position of the next token)."""
        return min(self.layer_length(i) for i in range(self.n_layers))

    @property
    def nbytes(self) -> int:
        """Bytes held by all latents and rotary keys."""
        return sum(t.numel() * t.element_size() for t in (*self._c, *self._kr) if t is not None)

    def update(
        self, layer_idx: int, c: torch.Tensor, k_rope: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``c`` ``(B, T_new, d_c)`` and ``k_rope`` ``(B, T_new, d_R)``; return everything stored."""
        self.layer_length(layer_idx)  # validates the index
        check_tensor("c", c, ndim=3, floating=True)
        check_tensor("k_rope", k_rope, ndim=3)
        if k_rope.shape[:2] != c.shape[:2]:
            raise ValueError(f"k_rope: expected shape (B, T_new, d_R) with (B, T_new) = {tuple(c.shape[:2])}")
        old_c, old_kr = self._c[layer_idx], self._kr[layer_idx]
        if old_c is not None and (old_c.shape[0], old_c.shape[2]) != (c.shape[0], c.shape[2]):
            raise ValueError(f"c: expected shape (B, T_new, d_c) = ({old_c.shape[0]}, *, {old_c.shape[2]})")
        self._c[layer_idx] = c if old_c is None else torch.cat([old_c, c], dim=1)
        self._kr[layer_idx] = k_rope if old_kr is None else torch.cat([old_kr, k_rope], dim=1)
        return self._c[layer_idx], self._kr[layer_idx]

    def reset(self) -> None:
        """Empty the cache."""
        self._c = [None] * self.n_layers
        self._kr = [None] * self.n_layers


class MultiHeadLatentAttention(nn.Module):
    """Multi-head latent attention (MLA) with a decoupled RoPE key; caches only ``c`` and ``k^R``.

    Args:
        d_model: model width ``d``.
        n_heads: heads ``H``.
        d_latent: latent width ``d_c`` (the compressed KV).
        d_rope: width ``d_R`` of the decoupled rotary query/key (0: no RoPE part).
        head_dim: content width per head ``d_h`` (default ``d_model // n_heads``).
        rope_base: RoPE base for :func:`rope_half`.
        rotary: optional callable ``rotary(x (B, heads, T, d_R), positions (T,))`` replacing
            :func:`rope_half`.
        layer_idx: default index of this layer in a shared :class:`LatentKVCache`.
        device, dtype: of the parameters.

    Submodules (all ``nn.Linear`` without bias): ``down_kv`` (``d → d_c``, W_DKV), ``up_k`` and
    ``up_v`` (``d_c → H·d_h``, W_UK and W_UV), ``q_proj`` (``d → H·d_h``, W_Q), ``out_proj``
    (``H·d_h → d``, W_O), and when ``d_rope > 0`` ``q_rope`` (``d → H·d_R``, W_QR) and ``k_rope``
    (``d → d_R``, W_KR, one key shared by all heads).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_latent: int,
        d_rope: int = 0,
        *,
        head_dim: int | None = None,
        rope_base: float = 10000.0,
        rotary: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        layer_idx: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("n_heads", n_heads)
        check_positive_int("d_latent", d_latent)
        if isinstance(d_rope, bool) or not isinstance(d_rope, int) or d_rope < 0 or d_rope % 2:
            raise ValueError(
                f"d_rope: expected a non-negative even int (rotations act on pairs), got {d_rope!r}"
            )
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}; pass head_dim")
            head_dim = d_model // n_heads
        self.d_model, self.n_heads, self.d_latent, self.d_rope = d_model, n_heads, d_latent, d_rope
        self.head_dim = check_positive_int("head_dim", head_dim)
        self.rope_base = float(rope_base)
        self.rotary = rotary
        self.layer_idx = layer_idx
        kw = {"bias": False, "device": device, "dtype": dtype}
        self.down_kv = nn.Linear(d_model, d_latent, **kw)
        self.up_k = nn.Linear(d_latent, n_heads * head_dim, **kw)
        self.up_v = nn.Linear(d_latent, n_heads * head_dim, **kw)
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, **kw)
        self.out_proj = nn.Linear(n_heads * head_dim, d_model, **kw)
        if d_rope:
            self.q_rope = nn.Linear(d_model, n_heads * d_rope, **kw)
            self.k_rope = nn.Linear(d_model, d_rope, **kw)

    @property
    def cache_values_per_token(self) -> int:
        """The number of values cached per token and layer, ``d_c + d_R``."""
        return self.d_latent + self.d_rope

    def _rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if self.rotary is not None:
            return self.rotary(x, positions)
        return rope_half(x, positions, self.rope_base)

    def latents(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """What the cache stores for ``x`` ``(B, T, d)``: ``[c ; RoPE(x W_KR)]``, ``(B, T, d_c + d_R)``."""
        check_tensor("x", x, ndim=3, floating=True)
        positions = torch.arange(x.shape[1], device=x.device) if positions is None else positions
        c = self.down_kv(x)
        if not self.d_rope:
            return c
        k_r = self._rotate(self.k_rope(x).unsqueeze(1), positions).squeeze(1)  # (B, T, d_R)
        return torch.cat([c, k_r], dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        kv_cache: LatentKVCache | None = None,
        layer_idx: int | None = None,
        absorb: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over ``x`` ``(B, T, d)``, reading keys and values only through the latents.

        Args:
            x: ``(B, T, d_model)``, the new tokens.
            attn_mask: bool, True = may attend, broadcastable to ``(B, H, T, T_k)``.
            is_causal: query ``i`` (absolute position ``offset + i``) sees keys ``<= offset + i``.
            kv_cache: a :class:`LatentKVCache`; the new latents are appended and all are used.
            layer_idx: index in ``kv_cache`` (default: the constructor's ``layer_idx``).
            absorb: fold ``W_UK`` into the query and ``W_UV`` into the output, attending directly over
                the cached latents (the decode-time path) instead of expanding per-head K and V.
            need_weights: also return the weights ``(B, H, T, T_k)``.

        Returns:
            ``(output (B, T, d_model), weights or None)``.
        """
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected last dimension d_model={self.d_model}, got shape {tuple(x.shape)}")
        b, t, _ = x.shape
        h, d_h, d_c, d_r = self.n_heads, self.head_dim, self.d_latent, self.d_rope
        layer = self.layer_idx if layer_idx is None else layer_idx
        offset = 0 if kv_cache is None else kv_cache.layer_length(layer)
        positions = torch.arange(offset, offset + t, device=x.device)

        lat = self.latents(x, positions)  # (B, T, d_c + d_R)
        c, k_r = lat[..., :d_c], lat[..., d_c:]
        if kv_cache is not None:
            c, k_r = kv_cache.update(layer, c, k_r)  # everything cached so far: (B, T_k, ·)
        t_k = c.shape[1]

        q_c = self.q_proj(x).view(b, t, h, d_h).transpose(1, 2)  # (B, H, T, d_h)
        if d_r:
            q_r = self._rotate(self.q_rope(x).view(b, t, h, d_r).transpose(1, 2), positions)  # (B, H, T, d_R)
        mask = attn_mask
        if is_causal:
            tri = causal(t, t_k, offset=t_k - t, device=x.device)
            mask = tri if mask is None else mask & tri
        scale = 1.0 / math.sqrt(d_h + d_r)

        if not absorb:
            k_c = self.up_k(c).view(b, t_k, h, d_h).transpose(1, 2)  # (B, H, T_k, d_h), recomputed
            v = self.up_v(c).view(b, t_k, h, d_h).transpose(1, 2)
            if d_r:
                q = torch.cat([q_c, q_r], dim=-1)
                k = torch.cat([k_c, k_r.unsqueeze(1).expand(b, h, t_k, d_r)], dim=-1)
            else:
                q, k = q_c, k_c
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
        else:
            w_uk = self.up_k.weight.view(h, d_h, d_c)  # k^C_i = c W_UK^iᵀ in nn.Linear's layout
            w_uv = self.up_v.weight.view(h, d_h, d_c)
            q_lat = q_c @ w_uk  # (B, H, T, d_c): q^C_i W_UK^i, so q_lat · c = q^C_i · k^C_i
            values = c.unsqueeze(1)  # (B, 1, T_k, d_c): one "KV head" shared by all heads, like MQA
            keys = values
            if d_r:
                q_lat = torch.cat([q_lat, q_r], dim=-1)
                keys = torch.cat([values, k_r.unsqueeze(1)], dim=-1)  # (B, 1, T_k, d_c + d_R)
            o_lat, weights = scaled_dot_product_attention(q_lat, keys, values, mask=mask, scale=scale)
            out = o_lat @ w_uv.transpose(-2, -1)  # (B, H, T, d_h): Σ_j a_ij c_j W_UV^iᵀ
        out = self.out_proj(out.transpose(1, 2).reshape(b, t, h * d_h))
        return out, (weights if need_weights else None)
