"""Scaled dot-product attention (缩放点积注意力) and multi-head attention (多头注意力).

Shapes use ``B`` batch, ``H`` heads, ``T_q``/``T_k`` query/key lengths, ``d_k`` the query/key width
and ``d_v`` the value width. Masks are boolean with **True = may attend** (see
:mod:`companion.nn.masks`); a float mask is *added* to the scores.

The formula, derived in the Attention chapter::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

Two choices differ from a literal reading of the formula, both for robustness:

* blocked scores are replaced by the most negative finite value of the dtype rather than ``-inf``, and
  the weights of blocked entries are then set to exactly zero. A query whose every key is blocked
  therefore gets all-zero weights and a zero output (and finite gradients) instead of ``0/0 = NaN``;
* the softmax subtracts the row maximum, so logits of ±1e4 do not overflow.

The Efficient attention chapter adds :class:`GroupedQueryAttention` (GQA, with MQA and MHA as special
cases, a KV cache, RoPE and fused kernels), :func:`kv_cache_bytes`, :func:`mha_to_gqa` and
:func:`linformer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from companion._validate import check_positive_int, check_probability, check_tensor
from companion.nn.kv_cache import KVCache  # used in annotations (kv_cache does not import this module)
from companion.nn.masks import causal

__all__ = [
    "CrossAttention",
    "GroupedQueryAttention",
    "MultiHeadAttention",
    "kv_cache_bytes",
    "linformer",
    "mean_pool_kv_heads",
    "merge_heads",
    "mha_to_gqa",
    "repeat_kv",
    "scaled_dot_product_attention",
    "softmax",
    "split_heads",
]


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax: ``exp(x - max) / sum(exp(x - max))`` along ``dim``.

    Subtracting the maximum changes nothing mathematically (it cancels between numerator and
    denominator) but keeps ``exp`` from overflowing for large logits. Rows that are entirely ``-inf``
    return zeros rather than NaN.
    """
    check_tensor("x", x, floating=True)
    row_max = x.amax(dim=dim, keepdim=True)
    # An all -inf row has max -inf; use 0 there so that x - max stays -inf (exp -> 0), not NaN.
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    e = torch.exp(x - row_max)
    denom = e.sum(dim=dim, keepdim=True)
    return e / torch.where(denom > 0, denom, torch.ones_like(denom))


def _blocked_positions(
    scores: torch.Tensor, mask: torch.Tensor | None, is_causal: bool
) -> torch.Tensor | None:
    """Boolean tensor (broadcastable to ``scores``) of entries that may NOT be attended, or None."""
    blocked = None
    if mask is not None and mask.dtype == torch.bool:
        blocked = ~mask
    if is_causal:
        future = ~causal(*scores.shape[-2:], device=scores.device)
        blocked = future if blocked is None else blocked | future
    return blocked


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    *,
    scale: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention, returning the output *and* the attention weights.

    Args:
        q: queries, shape ``(..., T_q, d_k)``.
        k: keys, shape ``(..., T_k, d_k)``.
        v: values, shape ``(..., T_k, d_v)``.
        mask: optional mask broadcastable to ``(..., T_q, T_k)``: bool with True = may attend, or a
            float tensor added to the scores (e.g. an ALiBi bias, or ``-inf`` at blocked entries).
        is_causal: also block keys after the query (top-left aligned lower triangle, like
            ``torch.nn.functional.scaled_dot_product_attention``).
        dropout_p: dropout probability applied to the weights before they multiply ``v``.
        scale: score scale; default ``1 / sqrt(d_k)``.
        generator: random generator for the dropout mask (for reproducible dropout).

    Returns:
        ``(output, weights)`` with shapes ``(..., T_q, d_v)`` and ``(..., T_q, T_k)``. The weights
        are the softmax probabilities before dropout; each row sums to 1, except rows whose every key
        is blocked, which are all zero (and so is their output).

    Raises:
        TypeError, ValueError: on non-tensors, mismatched widths/lengths, or a mask of the wrong shape.
    """
    check_tensor("q", q, min_ndim=2, floating=True)
    check_tensor("k", k, min_ndim=2, floating=True)
    check_tensor("v", v, min_ndim=2, floating=True)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k: last dimensions (d_k) must match, got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v: must have the same number of keys T_k (dim -2), got k {tuple(k.shape)} "
            f"and v {tuple(v.shape)}"
        )
    check_probability("dropout_p", dropout_p)
    d_k = q.shape[-1]
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale

    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, T_k)
    if mask is not None:
        check_tensor("mask", mask)
        try:
            torch.broadcast_shapes(mask.shape, scores.shape)
        except RuntimeError as exc:
            raise ValueError(
                f"mask: shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                f"{tuple(scores.shape)} (..., T_q, T_k)"
            ) from exc
        if mask.dtype != torch.bool:
            scores = scores + mask.to(scores.dtype)
    blocked = _blocked_positions(scores, mask, is_causal)
    if mask is not None and mask.dtype != torch.bool:
        # An additive -inf blocks the entry just like a False in a boolean mask.
        neg_inf = torch.isneginf(scores)
        blocked = neg_inf if blocked is None else blocked | neg_inf
    if blocked is not None:
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)

    weights = torch.softmax(scores, dim=-1)
    if blocked is not None:
        # Fully blocked rows came out uniform over "min" scores; zero every blocked weight.
        weights = weights.masked_fill(blocked, 0.0)
    attn = weights
    if dropout_p > 0.0:
        if generator is None:
            attn = F.dropout(weights, p=dropout_p, training=True)
        else:
            keep = torch.rand(weights.shape, generator=generator, device=weights.device) >= dropout_p
            attn = weights * keep / (1.0 - dropout_p)
    return attn @ v, weights


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Split the channel dimension into heads: ``(B, T, H*d_h) -> (B, H, T, d_h)``."""
    check_tensor("x", x, ndim=3)
    check_positive_int("n_heads", n_heads)
    b, t, c = x.shape
    if c % n_heads:
        raise ValueError(f"x: channel dimension {c} is not divisible by n_heads={n_heads}")
    return x.view(b, t, n_heads, c // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_heads`: ``(B, H, T, d_h) -> (B, T, H*d_h)``."""
    check_tensor("x", x, ndim=4)
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class MultiHeadAttention(nn.Module):
    """Multi-head attention 多头注意力, for self-attention (自注意力) and cross-attention (交叉注意力).

    ``head_h = Attention(X W_Q^h, C W_K^h, C W_V^h)`` and ``MHA = Concat(head_1..head_H) W_O`` where
    ``C = X`` for self-attention or the ``context`` (e.g. the encoder output) for cross-attention.
    Each head has width ``d_h = d_model / n_heads``, so the cost does not grow with ``n_heads``.

    Args:
        d_model: model width ``d``; queries and outputs have this width.
        n_heads: number of heads ``H``; must divide ``d_model``.
        dropout: dropout on the attention weights (active in ``train()`` mode only).
        bias: whether the four projections have biases.
        kv_dim: width of the ``context`` for cross-attention (default ``d_model``).
        fused: use ``torch.nn.functional.scaled_dot_product_attention`` (FlashAttention /
            memory-efficient kernels on GPU) whenever the weights are not requested.
        device, dtype: where and how to allocate the parameters.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        kv_dim: int | None = None,
        fused: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("n_heads", n_heads)
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.kv_dim = d_model if kv_dim is None else check_positive_int("kv_dim", kv_dim)
        self.dropout = check_probability("dropout", dropout)
        self.fused = fused
        kw = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(d_model, d_model, bias=bias, **kw)
        self.k_proj = nn.Linear(self.kv_dim, d_model, bias=bias, **kw)
        self.v_proj = nn.Linear(self.kv_dim, d_model, bias=bias, **kw)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias, **kw)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        key_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``x`` to itself, or to ``context`` if given.

        Args:
            x: queries' input, ``(B, T_q, d_model)``.
            context: keys' and values' input ``(B, T_k, kv_dim)``; default ``x`` (self-attention).
            key_mask: ``(B, T_k)`` bool, True at real (non-padding) keys.
            attn_mask: bool mask broadcastable to ``(B, H, T_q, T_k)``, True = may attend.
            is_causal: block attention to later positions (decoder self-attention).
            need_weights: also return the attention weights.

        Returns:
            ``(output, weights)``: output ``(B, T_q, d_model)``; weights ``(B, H, T_q, T_k)`` or
            None when ``need_weights`` is False.
        """
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected last dimension d_model={self.d_model}, got shape {tuple(x.shape)}")
        ctx = x if context is None else check_tensor("context", context, ndim=3, floating=True)
        if ctx.shape[-1] != self.kv_dim:
            raise ValueError(
                f"context: expected last dimension kv_dim={self.kv_dim}, got shape {tuple(ctx.shape)}"
            )
        if ctx.shape[0] != x.shape[0]:
            raise ValueError(f"context: batch size {ctx.shape[0]} differs from x's {x.shape[0]}")
        b, t_k = ctx.shape[0], ctx.shape[1]

        mask = attn_mask
        if mask is not None:
            check_tensor("attn_mask", mask)
            if mask.dtype != torch.bool:
                raise TypeError(f"attn_mask: expected a bool mask (True = attend), got dtype {mask.dtype}")
            scores_shape = (b, self.n_heads, x.shape[1], t_k)
            try:
                torch.broadcast_shapes(mask.shape, scores_shape)
            except RuntimeError as exc:
                raise ValueError(
                    f"attn_mask: shape {tuple(mask.shape)} does not broadcast to (B, H, T_q, T_k)="
                    f"{scores_shape}"
                ) from exc
        if key_mask is not None:
            check_tensor("key_mask", key_mask, ndim=2)
            if key_mask.dtype != torch.bool or tuple(key_mask.shape) != (b, t_k):
                raise ValueError(
                    f"key_mask: expected a bool tensor of shape (B, T_k)=({b}, {t_k}), "
                    f"got {key_mask.dtype} {tuple(key_mask.shape)}"
                )
            km = key_mask[:, None, None, :]
            mask = km if mask is None else mask & km

        q = split_heads(self.q_proj(x), self.n_heads)  # (B, H, T_q, d_h)
        k = split_heads(self.k_proj(ctx), self.n_heads)  # (B, H, T_k, d_h)
        v = split_heads(self.v_proj(ctx), self.n_heads)
        p = self.dropout if self.training else 0.0

        if self.fused and not need_weights:
            if is_causal and mask is not None:
                # torch's SDPA documents that attn_mask and is_causal must not both be set (its math
                # backend raises): fold the (top-left aligned) causal mask into the boolean mask.
                mask = mask & causal(x.shape[1], t_k, device=mask.device)
                is_causal = False
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal)
            weights = None
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, dropout_p=p)
        return self.out_proj(merge_heads(out)), (weights if need_weights else None)

    def macs(self, t_q: int, t_k: int | None = None) -> dict[str, int]:
        """Analytic multiply-accumulate counts for one sequence (batch 1), ignoring softmax and biases.

        Returns a dict with ``projections`` (``(2 T_q + 2 T_k)·d²`` for same-width context),
        ``attention`` (``2·T_q·T_k·d``: scores plus the weighted sum) and ``total``. Neither term
        depends on the number of heads.
        """
        t_k = t_q if t_k is None else t_k
        d = self.d_model
        proj = 2 * t_q * d * d + 2 * t_k * self.kv_dim * d
        attn = 2 * t_q * t_k * d
        return {"projections": proj, "attention": attn, "total": proj + attn}

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """Build an equivalent module from a ``torch.nn.MultiheadAttention`` (weights copied).

        Torch stores ``[W_Q; W_K; W_V]`` stacked in ``in_proj_weight`` of shape ``(3d, d)``.
        """
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"module: expected torch.nn.MultiheadAttention, got {type(module).__name__}")
        if not module._qkv_same_embed_dim or module.bias_k is not None or module.add_zero_attn:
            raise ValueError("module: only same-width q/k/v without bias_k/add_zero_attn is supported")
        d = module.embed_dim
        has_bias = module.in_proj_bias is not None
        w = module.in_proj_weight
        new = cls(d, module.num_heads, dropout=module.dropout, bias=has_bias, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
                proj.weight.copy_(w[i * d : (i + 1) * d])
                if has_bias:
                    proj.bias.copy_(module.in_proj_bias[i * d : (i + 1) * d])
            new.out_proj.weight.copy_(module.out_proj.weight)
            if has_bias:
                new.out_proj.bias.copy_(module.out_proj.bias)
        return new


class CrossAttention(MultiHeadAttention):
    """Encoder–decoder (cross) attention 交叉注意力: queries from the decoder, keys/values from the encoder.

    Only the *source* padding mask applies; no causal mask is used, because every decoder position may
    look at the whole (already available) source sequence.
    """

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Args: ``x`` ``(B, T_dec, d)``, ``context`` ``(B, T_src, kv_dim)``, ``context_mask``
        ``(B, T_src)`` bool, True at real source tokens. Returns ``(B, T_dec, d)`` and the weights."""
        if context is None:
            raise ValueError("context: cross-attention needs the encoder output, got None")
        return super().forward(x, context, key_mask=context_mask, need_weights=need_weights)


# ==================================================================================================
# Efficient attention (the Efficient attention chapter): GQA/MQA, KV-cache sizes, Linformer
# ==================================================================================================

# torch >= 2.5 can broadcast KV heads inside F.scaled_dot_product_attention (enable_gqa=True).
_SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat each key/value head ``n_rep`` times: ``(B, G, T, d_h) -> (B, G·n_rep, T, d_h)``.

    Head ``g`` is repeated into heads ``g·n_rep, …, (g+1)·n_rep - 1``, so query head ``h`` reads KV
    head ``h // n_rep`` — the same as ``x.repeat_interleave(n_rep, dim=1)`` and as
    ``F.scaled_dot_product_attention(..., enable_gqa=True)``.
    """
    check_tensor("x", x, ndim=4)
    check_positive_int("n_rep", n_rep)
    if n_rep == 1:
        return x
    b, g, t, d = x.shape
    return x[:, :, None].expand(b, g, n_rep, t, d).reshape(b, g * n_rep, t, d)


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


def mean_pool_kv_heads(weight: torch.Tensor, n_heads: int, n_kv_heads: int) -> torch.Tensor:
    """Mean-pool the key (or value) heads of an MHA projection into ``n_kv_heads`` groups.

    ``W^g = (G/H) · Σ_{h in group g} W^h`` with group ``g`` = heads ``g·H/G, …, (g+1)·H/G - 1``
    (Ainslie et al., 2023, "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head
    Checkpoints", §2.1).

    Args:
        weight: an ``nn.Linear`` weight ``(H·d_h, d_in)`` or bias ``(H·d_h,)``; rows are head-major.
        n_heads: ``H``.
        n_kv_heads: ``G``, a divisor of ``H``.

    Returns:
        ``(G·d_h, d_in)`` (or ``(G·d_h,)``).
    """
    check_tensor("weight", weight, ndim=(1, 2), floating=True)
    check_positive_int("n_heads", n_heads)
    check_positive_int("n_kv_heads", n_kv_heads)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}")
    if weight.shape[0] % n_heads:
        raise ValueError(f"weight: first dimension {weight.shape[0]} is not divisible by n_heads={n_heads}")
    d_h = weight.shape[0] // n_heads
    rest = tuple(weight.shape[1:])
    grouped = weight.reshape(n_kv_heads, n_heads // n_kv_heads, d_h, *rest)
    return grouped.mean(dim=1).reshape(n_kv_heads * d_h, *rest)


def linformer(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    proj_k: torch.Tensor,
    proj_v: torch.Tensor,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Linformer attention ``softmax(Q (E K)ᵀ / sqrt(d_k)) (F V)`` (Wang et al., 2020).

    The ``n`` keys and values are projected along the *sequence* axis to ``k_proj`` rows, so the
    score matrix is ``n × k_proj``: cost ``O(n·k_proj)`` instead of ``O(n²)``. With ``k_proj = n``
    and identity projections it is ordinary attention. (No causal mask: mixing positions along the
    sequence axis lets future tokens leak, so Linformer is for encoders.)

    Args:
        q: ``(..., n, d_k)``; k: ``(..., n, d_k)``; v: ``(..., n, d_v)``.
        proj_k: ``E``, shape ``(k_proj, n)``; proj_v: ``F``, shape ``(k_proj, n)``.
        scale: score scale, default ``1/sqrt(d_k)``.

    Returns:
        ``(..., n, d_v)``.
    """
    check_tensor("k", k, min_ndim=2, floating=True)
    check_tensor("v", v, min_ndim=2, floating=True)
    for name, proj, x in (("proj_k", proj_k, k), ("proj_v", proj_v, v)):
        check_tensor(name, proj, ndim=2, floating=True)
        if proj.shape[1] != x.shape[-2]:
            raise ValueError(
                f"{name}: expected shape (k_proj, n) with n = {x.shape[-2]} positions, "
                f"got {tuple(proj.shape)}"
            )
    return scaled_dot_product_attention(q, proj_k @ k, proj_v @ v, scale=scale)[0]


def _to_groups(m: torch.Tensor, n_kv_heads: int, n_rep: int) -> torch.Tensor:
    """Reshape a mask/bias broadcastable to ``(B, H, T_q, T_k)`` to ``(B, G, n_rep, T_q, T_k)`` form."""
    m = m.reshape((1,) * (4 - m.ndim) + tuple(m.shape))
    if m.shape[1] == 1:
        return m.unsqueeze(2)
    return m.reshape(m.shape[0], n_kv_heads, n_rep, m.shape[2], m.shape[3])


def _stack_heads(m: torch.Tensor, n_rep: int, t_q: int) -> torch.Tensor:
    """``(B|1, G|1, R|1, T_q|1, T_k|1)`` -> ``(B|1, G|1, R·T_q, T_k|1)``, matching stacked query heads."""
    b, g, _, _, t_k = m.shape
    return m.expand(b, g, n_rep, t_q, t_k).reshape(b, g, n_rep * t_q, t_k)


class GroupedQueryAttention(nn.Module):
    """Grouped-query attention 分组查询注意力 (GQA); multi-query (MQA) and multi-head (MHA) as special cases.

    ``H`` query heads share ``G`` key/value heads: query head ``h`` reads KV head ``h // (H/G)``
    (Ainslie et al., 2023). ``G = H`` is multi-head attention, ``G = 1`` is multi-query attention
    (Shazeer, 2019). Only the K and V projections shrink (to ``G·d_h`` outputs); the attention
    FLOPs are those of MHA. What shrinks by ``H/G`` is the KV cache that decoding keeps and reads
    at every step.

    The non-fused path never copies K and V: the ``H/G`` query heads of a group are stacked along
    the query axis, ``(B, G, H/G·T, d_h)``, and multiplied with the group's keys ``(B, G, T_k, d_h)``.

    Args:
        d_model: model width ``d``.
        n_heads: query heads ``H``.
        n_kv_heads: key/value heads ``G``; must divide ``H``.
        head_dim: per-head width ``d_h`` (default ``d_model // n_heads``).
        bias: whether the projections have biases (Llama: no; GPT-2: yes).
        dropout: dropout on the attention weights in ``train()`` mode.
        rotary: optional callable ``rotary(x (B, heads, T, d_h), positions (T,)) -> x`` applied to
            queries and keys before caching (RoPE).
        fused: use ``torch.nn.functional.scaled_dot_product_attention`` (FlashAttention /
            memory-efficient kernels on CUDA) when the weights are not requested. Fully masked query
            rows are then backend-defined (the explicit path returns zeros).
        layer_idx: default index of this layer in a shared :class:`~companion.nn.kv_cache.KVCache`.
        device, dtype: of the parameters.

    Projections are named like :class:`MultiHeadAttention`'s (``q_proj``, ``k_proj``, ``v_proj``,
    ``out_proj``), so with ``G = H`` and ``bias=True`` an MHA ``state_dict`` loads unchanged.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int,
        *,
        head_dim: int | None = None,
        bias: bool = False,
        dropout: float = 0.0,
        rotary: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        fused: bool = False,
        layer_idx: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("n_heads", n_heads)
        check_positive_int("n_kv_heads", n_kv_heads)
        if n_heads % n_kv_heads:
            raise ValueError(
                f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}: every KV head must serve "
                "the same number of query heads"
            )
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}; pass head_dim")
            head_dim = d_model // n_heads
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.n_rep = n_heads // n_kv_heads
        self.head_dim = check_positive_int("head_dim", head_dim)
        self.dropout = check_probability("dropout", dropout)
        self.fused = fused
        if rotary is not None and not callable(rotary):
            raise TypeError(f"rotary: expected a callable rotary(x, positions), got {type(rotary).__name__}")
        self.rotary = rotary
        self.layer_idx = layer_idx
        kw = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=bias, **kw)
        self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias, **kw)
        self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias, **kw)
        self.out_proj = nn.Linear(n_heads * head_dim, d_model, bias=bias, **kw)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, "
            f"head_dim={self.head_dim}, fused={self.fused}"
        )

    def _check_mask(
        self, name: str, m: torch.Tensor, shape: tuple[int, int, int, int], want_bool: bool
    ) -> None:
        check_tensor(name, m)
        if want_bool and m.dtype != torch.bool:
            raise TypeError(f"{name}: expected a bool mask (True = may attend), got dtype {m.dtype}")
        if not want_bool and not m.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point additive bias, got dtype {m.dtype}")
        if m.ndim > 4:
            raise ValueError(f"{name}: expected at most 4 dimensions (B, H, T_q, T_k), got {tuple(m.shape)}")
        try:
            if torch.broadcast_shapes(m.shape, shape) != torch.Size(shape):
                raise RuntimeError
        except RuntimeError as exc:
            raise ValueError(
                f"{name}: shape {tuple(m.shape)} does not broadcast to (B, H, T_q, T_k)={shape}"
            ) from exc

    def forward(
        self,
        x: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        is_causal: bool = False,
        kv_cache: KVCache | None = None,
        layer_idx: int | None = None,
        positions: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over ``x``, optionally appending to and reading from a KV cache.

        Args:
            x: ``(B, T, d_model)``: the new tokens (the whole prompt, or one token when decoding).
            attn_mask: bool, True = may attend, broadcastable to ``(B, H, T, T_k)`` where ``T_k`` counts
                cached plus new keys.
            attn_bias: float added to the scores (e.g. ALiBi), broadcastable to ``(B, H, T, T_k)``.
            is_causal: block keys after each query. With a cache the queries sit at absolute positions
                ``offset … offset + T - 1`` (``offset`` = cached length), and query ``i`` sees keys
                ``<= offset + i`` (a bottom-right aligned triangle).
            kv_cache: a :class:`~companion.nn.kv_cache.KVCache`; new keys/values are appended to layer
                ``layer_idx`` and attention runs over all of them.
            layer_idx: this layer's index in ``kv_cache`` (default: the constructor's ``layer_idx``).
            positions: ``(T,)`` absolute positions for ``rotary`` (default ``offset + arange(T)``).
            need_weights: also return the attention weights ``(B, H, T, T_k)``.

        Returns:
            ``(output (B, T, d_model), weights or None)``.
        """
        check_tensor("x", x, ndim=3, floating=True)
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x: expected last dimension d_model={self.d_model}, got shape {tuple(x.shape)}")
        b, t, _ = x.shape
        h, g, d = self.n_heads, self.n_kv_heads, self.head_dim
        layer = self.layer_idx if layer_idx is None else layer_idx
        offset = 0 if kv_cache is None else kv_cache.layer_length(layer)

        q = self.q_proj(x).view(b, t, h, d).transpose(1, 2)  # (B, H, T, d_h)
        k = self.k_proj(x).view(b, t, g, d).transpose(1, 2)  # (B, G, T, d_h)
        v = self.v_proj(x).view(b, t, g, d).transpose(1, 2)
        if self.rotary is not None:
            if positions is None:
                positions = torch.arange(offset, offset + t, device=x.device)
            elif tuple(positions.shape) != (t,):
                raise ValueError(f"positions: expected shape (T,)=({t},), got {tuple(positions.shape)}")
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # all keys/values so far: (B, G, offset + T, d_h)
        t_k = k.shape[2]

        shape = (b, h, t, t_k)
        if attn_mask is not None:
            self._check_mask("attn_mask", attn_mask, shape, want_bool=True)
        if attn_bias is not None:
            self._check_mask("attn_bias", attn_bias, shape, want_bool=False)
        p = self.dropout if self.training else 0.0

        if self.fused and not need_weights:
            out = self._fused(q, k, v, attn_mask, attn_bias, is_causal, p)
            weights = None
        else:
            out, weights = self._explicit(q, k, v, attn_mask, attn_bias, is_causal, p)
        out = out.transpose(1, 2).reshape(b, t, h * d)
        return self.out_proj(out), (weights if need_weights else None)

    def _explicit(self, q, k, v, attn_mask, attn_bias, is_causal, p):
        b, h, t, d = q.shape
        g, r, t_k = self.n_kv_heads, self.n_rep, k.shape[2]
        allowed = attn_mask
        if is_causal:
            tri = causal(t, t_k, offset=t_k - t, device=q.device)
            allowed = tri if allowed is None else allowed & tri
        # Head h = g·(H/G) + r. Stack each group's H/G query heads along the query axis, so that one
        # (R·T × d_h) @ (d_h × T_k) product per group reads the group's K and V once — never copied.
        qg = q.reshape(b, g, r * t, d)  # (B, G, R·T, d_h)
        mask = None if allowed is None else _stack_heads(_to_groups(allowed, g, r), r, t)
        if attn_bias is not None:
            bias = _stack_heads(_to_groups(attn_bias.to(q.dtype), g, r), r, t)
            # One float mask: the bias where allowed, -inf where blocked (the companion SDPA zeroes
            # the weights of -inf entries, so fully blocked rows still give zeros, not NaN).
            if mask is not None:
                bias = torch.where(mask, bias, torch.tensor(float("-inf"), dtype=q.dtype, device=q.device))
            mask = bias
        out, weights = scaled_dot_product_attention(qg, k, v, mask=mask, dropout_p=p)
        return out.reshape(b, h, t, d), weights.reshape(b, h, t, t_k)

    def _fused(self, q, k, v, attn_mask, attn_bias, is_causal, p):
        t, t_k = q.shape[2], k.shape[2]
        mask = attn_mask
        if t == 1:  # one query at the end (decoding with a cache): the causal triangle hides nothing
            is_causal = False
        if is_causal and (mask is not None or attn_bias is not None or t != t_k):
            # SDPA's is_causal is top-left aligned and may not be combined with attn_mask: build it.
            tri = causal(t, t_k, offset=t_k - t, device=q.device)
            mask = tri if mask is None else mask & tri
            is_causal = False
        if attn_bias is not None:
            bias = attn_bias.to(q.dtype)
            mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        if _SDPA_HAS_GQA:
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal, enable_gqa=self.n_rep > 1
            )
        k, v = repeat_kv(k, self.n_rep), repeat_kv(v, self.n_rep)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal)


def mha_to_gqa(module: MultiHeadAttention | GroupedQueryAttention, n_kv_heads: int) -> GroupedQueryAttention:
    """Convert a multi-head attention layer to GQA with ``n_kv_heads`` groups by mean-pooling K/V heads.

    ``W_K^g = (G/H) Σ_{h in g} W_K^h`` (and the same for ``W_V`` and the biases); ``W_Q`` and ``W_O``
    are copied. Ainslie et al. (2023) follow this with a short uptraining run (about 5% of the
    pretraining compute). When the heads within each group are identical the conversion is exact.

    Args:
        module: a :class:`MultiHeadAttention` (self-attention) or a :class:`GroupedQueryAttention`
            with ``n_kv_heads == n_heads``.
        n_kv_heads: ``G``, a divisor of the number of heads.

    Returns:
        A new :class:`GroupedQueryAttention` on the same device and dtype.
    """
    if isinstance(module, GroupedQueryAttention):
        if module.n_kv_heads != module.n_heads:
            raise ValueError(
                f"module: expected an MHA layer (n_kv_heads == n_heads), got n_kv_heads={module.n_kv_heads}"
            )
        head_dim = module.head_dim
    elif isinstance(module, MultiHeadAttention):
        if module.kv_dim != module.d_model:
            raise ValueError("module: cross-attention layers (kv_dim != d_model) are not supported")
        head_dim = module.d_head
    else:
        raise TypeError(
            f"module: expected MultiHeadAttention or GroupedQueryAttention, got {type(module).__name__}"
        )
    h = module.n_heads
    w = module.q_proj.weight
    has_bias = module.q_proj.bias is not None
    new = GroupedQueryAttention(
        module.d_model, h, n_kv_heads, head_dim=head_dim, bias=has_bias, fused=module.fused,
        device=w.device, dtype=w.dtype,
    )  # fmt: skip
    with torch.no_grad():
        new.q_proj.load_state_dict(module.q_proj.state_dict())
        new.out_proj.load_state_dict(module.out_proj.state_dict())
        for name in ("k_proj", "v_proj"):
            src, dst = getattr(module, name), getattr(new, name)
            dst.weight.copy_(mean_pool_kv_heads(src.weight, h, n_kv_heads))
            if has_bias:
                dst.bias.copy_(mean_pool_kv_heads(src.bias, h, n_kv_heads))
    return new
