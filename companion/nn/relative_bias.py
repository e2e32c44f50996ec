"""Relative position biases added to the attention scores: ALiBi (线性偏置注意力; Press et al., "Train
Short, Test Long: Attention with Linear Biases Enables Input Length Extrapolation", 2022) and T5's
bucketed relative bias (Raffel et al., "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer", 2020).

Both add a ``(H, T_q, T_k)`` bias to the pre-softmax scores that depends only on the offset between
query and key: ALiBi a fixed linear penalty per head with no parameters, T5 a learned scalar per head
and log-spaced bucket of offsets. Derived in the Positional encoding chapter; the absolute encodings
are in :mod:`companion.nn.positional`, RoPE in :mod:`companion.nn.rope`.

Shapes: ``H`` heads, ``T_q``/``T_k`` query/key positions. Positions count from 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from companion._validate import check_nonnegative_int, check_positive_int, check_tensor

__all__ = ["ALiBi", "T5RelativeBias", "alibi_bias", "alibi_slopes", "t5_relative_bucket"]


def alibi_slopes(n_heads: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ALiBi's head slopes ``m_h``, shape ``(n_heads,)``.

    For ``H`` a power of two, ``m_h = 2^(−8h/H)``, ``h = 1 … H`` (8 heads: 1/2, 1/4, …, 1/256).
    Otherwise, as in the reference code of Press et al. (``get_slopes``): the ``2^⌊log₂H⌋`` slopes of
    the nearest smaller power of two, followed by every other slope (the 1st, 3rd, …) of the sequence
    for twice that power, until there are ``H`` (12 heads: 2^−1 … 2^−8, then 2^−0.5, 2^−1.5, 2^−2.5,
    2^−3.5). Computed in float64, then cast to ``dtype``.
    """
    check_positive_int("n_heads", n_heads)

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    p = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two(p)
    if p < n_heads:
        slopes += power_of_two(2 * p)[0::2][: n_heads - p]
    return torch.tensor(slopes, dtype=torch.float64).to(dtype)


def alibi_bias(
    n_heads: int, L: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The ALiBi bias ``−m_h·(i − j)`` for ``L`` queries and keys, shape ``(n_heads, L, L)``.

    Entries above the diagonal (``j > i``) follow the same formula; the causal mask, applied
    separately, removes them.
    """
    check_positive_int("L", L)
    return ALiBi(n_heads).bias(L, L, device=device, dtype=dtype)


class ALiBi(nn.Module):
    """Attention with Linear Biases: add ``−m_h·(i − j)`` to the pre-softmax score of head ``h``.

    No parameters: the slopes are a fixed (non-persistent) buffer, and there is no position embedding
    anywhere else in the model. Adding the bias to the logits multiplies the *unnormalized* weights
    ``exp(s_ij)`` by ``exp(−m_h (i − j))``: a recency prior that decays geometrically with distance.

    Args:
        n_heads: number of heads ``H``; slopes from :func:`alibi_slopes`.
    """

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def bias(
        self,
        t_q: int,
        t_k: int,
        *,
        offset: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """The additive bias, shape ``(H, t_q, t_k)``: entry ``(h, i, j)`` is ``−m_h·(offset + i − j)``.

        Args:
            t_q, t_k: numbers of queries and keys.
            offset: position of the first query (``t_k − t_q`` when decoding with a KV cache).
            device, dtype: of the result (defaults: the slopes' device, float32).
        """
        check_positive_int("t_q", t_q)
        check_positive_int("t_k", t_k)
        check_nonnegative_int("offset", offset)
        device = self.slopes.device if device is None else device
        i = torch.arange(offset, offset + t_q, device=device, dtype=torch.float32)[:, None]
        j = torch.arange(t_k, device=device, dtype=torch.float32)[None, :]
        bias = -self.slopes.to(device)[:, None, None] * (i - j)
        return bias if dtype is None else bias.to(dtype)

    def forward(self, t_q: int, t_k: int | None = None, offset: int = 0) -> torch.Tensor:
        """Same as :meth:`bias` (``t_k`` defaults to ``t_q``)."""
        return self.bias(t_q, t_q if t_k is None else t_k, offset=offset)


def t5_relative_bucket(
    rel: torch.Tensor, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    """T5's bucket of each relative position ``rel = key position − query position``.

    Bidirectional: half the buckets per sign (``num_buckets/2`` added for ``rel > 0``). Within a side
    of ``n_b`` buckets, distances ``n < n_b/2`` get their own bucket and larger ones share
    logarithmically wider buckets, ``n_b/2 + ⌊log(n / (n_b/2)) / log(max_distance / (n_b/2)) ·
    n_b/2⌋``, capped at ``n_b − 1`` (so everything from ``max_distance`` on shares the last bucket).
    Unidirectional (causal): future offsets (``rel > 0``) all go to bucket 0 and all ``num_buckets``
    serve the past.

    Args:
        rel: integer tensor of relative positions, any shape.
        bidirectional: encoder (True) or causal decoder (False).
        num_buckets, max_distance: T5's defaults are 32 and 128.

    Returns:
        Long tensor of bucket ids in ``[0, num_buckets)``, same shape as ``rel``.
    """
    check_tensor("rel", rel)
    if rel.is_floating_point():
        raise TypeError(f"rel: expected an integer tensor, got dtype {rel.dtype}")
    check_positive_int("num_buckets", num_buckets)
    check_positive_int("max_distance", max_distance)
    rel = rel.long()
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = (-rel).clamp(min=0)
    max_exact = num_buckets // 2
    if max_distance <= max_exact:  # the log formula would divide by log(max_distance / max_exact) <= 0
        raise ValueError(
            f"max_distance: must exceed the {max_exact} exact buckets per side "
            f"(num_buckets={2 * num_buckets if bidirectional else num_buckets}), got {max_distance}"
        )
    is_small = n < max_exact
    # log(0) is avoided by clamping; those entries take the "small" branch anyway.
    large = (
        max_exact
        + (
            torch.log(n.clamp(min=1).double() / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).long()
    )
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, n, large)


class T5RelativeBias(nn.Module):
    """T5's learned relative position bias: one scalar per (bucket, head), added to the scores.

    The table starts at zero (no preference for any distance) and is learned with the model. Buckets
    for distances never seen in training keep their initial value, so choose ``max_distance`` no
    larger than the training length if the model must run on longer inputs.

    Args:
        n_heads: number of heads ``H``.
        num_buckets, max_distance: bucketing of :func:`t5_relative_bucket`.
        bidirectional: False for a causal decoder.
    """

    def __init__(
        self, n_heads: int, *, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = False
    ) -> None:
        super().__init__()
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.num_buckets = check_positive_int("num_buckets", num_buckets)
        self.max_distance = check_positive_int("max_distance", max_distance)
        self.bidirectional = bool(bidirectional)
        self.embedding = nn.Embedding(num_buckets, n_heads)
        nn.init.zeros_(self.embedding.weight)

    def bias(self, t_q: int, t_k: int, *, offset: int = 0) -> torch.Tensor:
        """The learned bias, shape ``(H, t_q, t_k)``, for queries at positions ``offset …``."""
        check_positive_int("t_q", t_q)
        check_positive_int("t_k", t_k)
        check_nonnegative_int("offset", offset)
        device = self.embedding.weight.device
        i = torch.arange(offset, offset + t_q, device=device)[:, None]
        j = torch.arange(t_k, device=device)[None, :]
        buckets = t5_relative_bucket(j - i, self.bidirectional, self.num_buckets, self.max_distance)
        return self.embedding(buckets).permute(2, 0, 1)  # (t_q, t_k, H) -> (H, t_q, t_k)

    def forward(self, t_q: int, t_k: int | None = None, offset: int = 0) -> torch.Tensor:
        """Same as :meth:`bias` (``t_k`` defaults to ``t_q``)."""
        return self.bias(t_q, t_q if t_k is None else t_k, offset=offset)
