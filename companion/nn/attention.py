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
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from companion._validate import check_positive_int, check_probability, check_tensor
from companion.nn.masks import causal

__all__ = [
    "CrossAttention",
    "MultiHeadAttention",
    "merge_heads",
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
