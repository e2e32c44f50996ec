"""Why attention divides its scores by √d_k (缩放点积): the measurements the Attention chapter plots.

:func:`score_stats` draws random queries and keys of width ``d_k`` and reports the spread of the raw
and scaled scores and how saturated the resulting softmax is; :func:`softmax_jacobian_norm` is the size
of the softmax's Jacobian, which a saturated softmax drives to 0 (no gradient flows back).
"""

from __future__ import annotations

import math

import torch

from companion._validate import check_positive_int

__all__ = ["N_KEYS", "score_stats", "softmax_jacobian_norm"]

#: Number of keys each query is scored against in :func:`score_stats`.
N_KEYS = 32


def softmax_jacobian_norm(p: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of the softmax Jacobian ``diag(p) - p pᵀ`` for each row of ``p``.

    Uses ``‖diag(p) - ppᵀ‖_F² = Σ p_i² (1 - 2 p_i) + (Σ p_i²)²`` to avoid building the matrix.

    Args:
        p: probabilities, shape ``(..., K)``.

    Returns:
        Shape ``(...)``. It is 0 for a one-hot ``p`` (a saturated softmax passes no gradient).
    """
    p2 = p * p
    sq = (p2 * (1 - 2 * p)).sum(-1) + p2.sum(-1) ** 2
    return sq.clamp_min(0).sqrt()


def score_stats(
    d_k: int, n: int, scaled: bool, generator: torch.Generator | None = None
) -> tuple[float, float, float]:
    """Statistics of attention scores for random unit-variance queries and keys.

    Draws ``Q ∈ R^{n×d_k}`` and then ``K ∈ R^{32×d_k}`` with i.i.d. N(0, 1) entries (float64, from
    ``generator`` in that order) and forms the logits ``Z = Q Kᵀ`` (divided by ``sqrt(d_k)`` when
    ``scaled``), one row of 32 scores per query.

    Args:
        d_k: query/key width.
        n: number of queries.
        scaled: divide the scores by ``sqrt(d_k)``.
        generator: random generator (default: torch's global one).

    Returns:
        ``(var, entropy, grad_norm)``: the sample variance of all entries of ``Z`` (about ``d_k``
        unscaled, about 1 scaled); the mean softmax entropy of a row in nats (at most ``log 32``); the
        mean Frobenius norm of the softmax Jacobian ``diag(p) - ppᵀ`` of a row, which shrinks towards 0
        as the softmax saturates.
    """
    check_positive_int("d_k", d_k)
    check_positive_int("n", n)
    q = torch.randn(n, d_k, generator=generator, dtype=torch.float64)
    k = torch.randn(N_KEYS, d_k, generator=generator, dtype=torch.float64)
    z = q @ k.T
    if scaled:
        z = z / math.sqrt(d_k)
    p = torch.softmax(z, dim=-1)
    log_p = torch.log_softmax(z, dim=-1)
    entropy = -(p * log_p).sum(-1).mean()
    return float(z.var()), float(entropy), float(softmax_jacobian_norm(p).mean())
