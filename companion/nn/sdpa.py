"""Scaled dot-product attention (缩放点积注意力) as functions: the formula and the two kernels that
:class:`companion.nn.attention.GroupedQueryAttention` chooses by name.

Shapes use ``B`` batch, ``H`` query heads, ``G`` key/value heads, ``T_q``/``T_k`` query/key lengths,
``d_k`` the query/key width and ``d_v`` the value width. Masks are boolean with **True = may attend**
(see :mod:`companion.nn.masks`); a float mask or bias is *added* to the scores.

The formula, derived in the Attention chapter::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

Two choices differ from a literal reading of the formula, both for robustness:

* blocked scores are replaced by the most negative finite value of the dtype rather than ``-inf``, and
  the weights of blocked entries are then set to exactly zero. A query whose every key is blocked
  therefore gets all-zero weights and a zero output (and finite gradients) instead of ``0/0 = NaN``;
* the softmax subtracts the row maximum, so logits of ±1e4 do not overflow.

:func:`scaled_dot_product_attention` is the formula, returning the weights. The kernels take heads
already split, ``H`` query heads over ``G`` key/value heads: ``"explicit"`` (:func:`explicit_attention`,
the formula per group of heads, with weights) and ``"sdpa"`` (:func:`sdpa_attention`, PyTorch's fused
``F.scaled_dot_product_attention``: FlashAttention and memory-efficient kernels on a GPU, no weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from companion._validate import check_positive_int, check_probability, check_tensor
from companion.nn.masks import causal

__all__ = [
    "ATTENTION_KERNELS",
    "explicit_attention",
    "repeat_kv",
    "scaled_dot_product_attention",
    "sdpa_attention",
    "softmax",
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
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale)
    ):
        raise ValueError(f"scale: expected a finite number (or None for 1/sqrt(d_k)), got {scale!r}")
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale

    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, T_k)
    if mask is not None:
        check_tensor("mask", mask)
        # An integer 0/1 mask would be *added* to the scores (blocking nothing); accept only the two
        # meanings that cannot be confused: bool (True = may attend) or a float bias.
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise TypeError(
                f"mask: expected a bool mask (True = may attend) or a floating-point bias added to the "
                f"scores, got dtype {mask.dtype} (for a 0/1 mask use mask.bool())"
            )
        if mask.is_floating_point() and bool((torch.isnan(mask) | torch.isposinf(mask)).any()):
            raise ValueError("mask: an additive mask may hold -inf (blocked) but not NaN or +inf")
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


def explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``"explicit"`` kernel: :func:`scaled_dot_product_attention` over grouped heads.

    Args:
        q: ``(B, H, T, d_k)``; k: ``(B, G, T_k, d_k)``; v: ``(B, G, T_k, d_v)``, with ``G`` dividing ``H``.
        allowed: bool, True = may attend, broadcastable to ``(B, H, T, T_k)``.
        bias: float added to the scores, broadcastable to ``(B, H, T, T_k)``.
        is_causal: also block keys after each query, bottom-right aligned (query ``i`` sees keys
            ``<= T_k - T + i``, as when the first ``T_k - T`` keys come from a cache).
        dropout_p: dropout on the weights.
        scale: score scale; default ``1 / sqrt(d_k)`` (T5 uses 1).

    Returns:
        ``(out (B, H, T, d_v), weights (B, H, T, T_k))``.

    K and V are never copied: head ``h = g·(H/G) + r``, so each group's ``H/G`` query heads are stacked
    along the query axis and one ``(R·T × d_k) @ (d_k × T_k)`` product per group reads its keys once.
    """
    b, h, t, d = q.shape
    g, t_k = k.shape[1], k.shape[2]
    n_rep = h // g
    if is_causal:
        tri = causal(t, t_k, offset=t_k - t, device=q.device)
        allowed = tri if allowed is None else allowed & tri
    qg = q if n_rep == 1 else q.reshape(b, g, n_rep * t, d)  # (B, G, R·T, d_k)
    mask = None if allowed is None else _stack_heads(_to_groups(allowed, g, n_rep), n_rep, t)
    if bias is not None:
        float_mask = _stack_heads(_to_groups(bias.to(q.dtype), g, n_rep), n_rep, t)
        # One float mask: the bias where allowed, -inf where blocked (scaled_dot_product_attention
        # zeroes the weights of -inf entries, so fully blocked rows still give zeros, not NaN).
        if mask is not None:
            minus_inf = torch.tensor(float("-inf"), dtype=q.dtype, device=q.device)
            float_mask = torch.where(mask, float_mask, minus_inf)
        mask = float_mask
    out, weights = scaled_dot_product_attention(qg, k, v, mask=mask, dropout_p=dropout_p, scale=scale)
    return out.reshape(b, h, t, v.shape[-1]), weights.reshape(b, h, t, t_k)


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, None]:
    """The ``"sdpa"`` kernel: PyTorch's fused ``F.scaled_dot_product_attention``; arguments as for
    :func:`explicit_attention`, and no weights (``None``).

    The causal triangle is left to SDPA when it is the whole mask (SDPA's own ``is_causal`` is top-left
    aligned, which is the same when ``T = T_k``), dropped for a single query at the end (it hides
    nothing there) and built otherwise. Fully masked query rows are backend-defined (the explicit
    kernel returns zeros).
    """
    t, t_k, n_rep = q.shape[2], k.shape[2], q.shape[1] // k.shape[1]
    if t == 1:
        is_causal = False
    if is_causal and (allowed is not None or bias is not None or t != t_k):
        tri = causal(t, t_k, offset=t_k - t, device=q.device)
        allowed = tri if allowed is None else allowed & tri
        is_causal = False
    mask = allowed
    if bias is not None:
        mask = bias.to(q.dtype) if mask is None else bias.to(q.dtype).masked_fill(~mask, float("-inf"))
    if _SDPA_HAS_GQA:
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=dropout_p,
            is_causal=is_causal,
            scale=scale,
            enable_gqa=n_rep > 1,
        )
    else:
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
        )
    return out, None


ATTENTION_KERNELS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor | None]]] = {
    "explicit": explicit_attention,
    "sdpa": sdpa_attention,
}
"""The kernels :class:`~companion.nn.attention.GroupedQueryAttention` chooses by name
(``kernel="explicit"`` or ``"sdpa"``)."""
