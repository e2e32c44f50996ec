"""Attention masks (掩码).

Convention used everywhere in the package: a **boolean mask with True = may attend**, the same
convention as ``torch.nn.functional.scaled_dot_product_attention``. Masks broadcast against the score
tensor of shape ``(B, H, T_q, T_k)``; combining masks is a logical AND (the union of blocked entries).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from companion._validate import check_positive_int

__all__ = ["causal", "combine", "padding"]


def causal(
    t_q: int,
    t_k: int | None = None,
    *,
    offset: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Causal (look-ahead) mask 因果掩码: query ``i`` may attend to key ``j`` iff ``j <= i + offset``.

    The default ``offset=0`` is the lower triangle *including* the diagonal, aligned at the top-left
    corner like ``F.scaled_dot_product_attention(is_causal=True)``. When the queries are the last
    ``t_q`` of ``t_k`` positions (decoding with a KV cache) pass ``offset=t_k - t_q``.

    Args:
        t_q: number of queries.
        t_k: number of keys (default ``t_q``).
        offset: how many extra keys past the diagonal each query may see.
        device: where to allocate the mask.

    Returns:
        Bool tensor of shape ``(t_q, t_k)``.
    """
    check_positive_int("t_q", t_q)
    t_k = t_q if t_k is None else check_positive_int("t_k", t_k)
    i = torch.arange(t_q, device=device).unsqueeze(1)
    j = torch.arange(t_k, device=device).unsqueeze(0)
    return j <= i + offset


def padding(
    lengths: torch.Tensor | Sequence[int],
    max_len: int,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Key-padding mask 填充掩码 from sequence lengths (sequences are right-padded).

    Args:
        lengths: ``(B,)`` number of real tokens in each sequence, each in ``[0, max_len]``.
        max_len: padded length ``L``.
        device: where to allocate the mask (default: the device of ``lengths``).

    Returns:
        Bool tensor of shape ``(B, 1, 1, L)``: True at real tokens. It broadcasts over heads and
        queries, so ``combine(padding(...), causal(L))`` has shape ``(B, 1, L, L)``.
    """
    check_positive_int("max_len", max_len)
    lengths_t = torch.as_tensor(lengths, device=device)
    if not isinstance(lengths, torch.Tensor) and lengths_t.numel() == 0:
        lengths_t = lengths_t.long()  # an empty list becomes float32 in torch; it is a batch of size 0
    if lengths_t.ndim != 1:
        raise ValueError(f"lengths: expected a 1-D sequence of lengths, got shape {tuple(lengths_t.shape)}")
    if lengths_t.dtype.is_floating_point or lengths_t.dtype == torch.bool:
        raise TypeError(f"lengths: expected integers, got dtype {lengths_t.dtype}")
    if lengths_t.numel() and (int(lengths_t.min()) < 0 or int(lengths_t.max()) > max_len):
        raise ValueError(
            f"lengths: every length must lie in [0, max_len={max_len}], got {lengths_t.tolist()}"
        )
    positions = torch.arange(max_len, device=lengths_t.device)
    return (positions.unsqueeze(0) < lengths_t.unsqueeze(1))[:, None, None, :]


def combine(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Combine boolean masks: a position may attend only if *every* mask allows it.

    ``None`` entries are ignored; with no mask at all the result is ``None`` (attend everywhere).
    Shapes broadcast, e.g. ``(B, 1, 1, T) & (T, T) -> (B, 1, T, T)``.
    """
    present = [m for m in masks if m is not None]
    for idx, m in enumerate(present):
        if m.dtype != torch.bool:
            raise TypeError(f"masks[{idx}]: expected a bool mask (True = attend), got dtype {m.dtype}")
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = out & m
    return out
