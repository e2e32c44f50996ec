"""Linformer attention (Wang et al., "Linformer: Self-Attention with Linear Complexity", 2020).

The Efficient attention chapter's low-rank alternative to full attention: the keys and values are
projected along the sequence axis, so the score matrix has ``k_proj`` columns instead of ``n``.
"""

from __future__ import annotations

import torch

from companion._validate import check_tensor
from companion.nn.sdpa import scaled_dot_product_attention

__all__ = ["linformer"]


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
