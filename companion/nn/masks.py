"""Attention masks (掩码).

Convention used everywhere in the package: a **boolean mask with True = may attend**, the same
convention as ``torch.nn.functional.scaled_dot_product_attention``. Masks broadcast against the score
tensor of shape ``(B, H, T_q, T_k)``; combining masks is a logical AND (the union of blocked entries).

The masks that define the three families of language models are one family here:
:func:`bidirectional` (an encoder: BERT), :func:`causal` (a decoder: GPT) and :func:`prefix_lm`
(bidirectional over a prefix, causal after it: UniLM, T5's prefix-LM variant, GLM), with
:func:`glm_blank_infilling` building GLM's mask and its two position ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from companion._validate import check_positive_int

__all__ = [
    "bidirectional",
    "block_sparse",
    "causal",
    "combine",
    "glm_blank_infilling",
    "glm_mask",
    "glm_positions",
    "padding",
    "prefix_lm",
    "sliding_window",
]


def bidirectional(
    t_q: int, t_k: int | None = None, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """The encoder's mask: every query may attend to every key (combine with :func:`padding`)."""
    check_positive_int("t_q", t_q)
    t_k = t_q if t_k is None else check_positive_int("t_k", t_k)
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device)


def prefix_lm(t: int, prefix_len: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Prefix-LM mask: positions ``< prefix_len`` see the whole prefix (bidirectionally); every later
    position sees the prefix and the positions up to itself (causally). ``prefix_len = 0`` is
    :func:`causal`, ``prefix_len = t`` is :func:`bidirectional`.

    Returns:
        Bool ``(t, t)``: key ``j`` visible from query ``i`` iff ``j < prefix_len`` or ``j <= i``.
    """
    check_positive_int("t", t)
    if isinstance(prefix_len, bool) or not isinstance(prefix_len, int) or not 0 <= prefix_len <= t:
        raise ValueError(f"prefix_len: expected an int in [0, t={t}], got {prefix_len!r}")
    j = torch.arange(t, device=device)
    return (j[None, :] < prefix_len) | (j[None, :] <= j[:, None])


def glm_blank_infilling(
    len_a: int, spans: Sequence[tuple[int, int]], *, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GLM's autoregressive blank infilling (Du et al., "GLM: General Language Model Pretraining with
    Autoregressive Blank Infilling", 2022): the mask and the 2-D positions of ``[Part A | Part B]``.

    Part A is the corrupted text, ``len_a`` tokens, each blanked span replaced by one ``[MASK]``;
    Part B is the spans, each as ``[START] s_1 … s_n`` (predicting ``s_1 … s_n [END]``). Part A sees all
    of Part A; a Part B token sees Part A and the Part B tokens up to itself — a prefix-LM mask with
    prefix ``len_a``. Position 1 is the position in Part A (for a span's tokens: its ``[MASK]``'s);
    position 2 is 0 in Part A and ``1 … n + 1`` within a span.

    Args:
        len_a: the length of Part A.
        spans: ``(mask_position, n)`` per span, in Part B's order: the ``[MASK]``'s index in Part A and
            the span's length.

    Returns:
        ``(mask (T, T) bool, position_1 (T,), position_2 (T,))`` with ``T = len_a + Σ (n + 1)``.
    """
    pos1, pos2 = glm_positions(len_a, spans, device=device)
    return glm_mask(len_a, len(pos1) - len_a, device=device), pos1, pos2


def glm_mask(len_a: int, len_b: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """GLM's attention mask over ``[Part A | Part B]``: Part A (``len_a`` tokens) sees all of Part A and
    none of Part B; a Part B token sees Part A and the Part B tokens up to itself. It is
    :func:`prefix_lm` with prefix ``len_a``; ``len_b = 0`` is :func:`bidirectional`.

    Returns:
        Bool ``(len_a + len_b, len_a + len_b)``, True = may attend.
    """
    check_positive_int("len_a", len_a)
    if isinstance(len_b, bool) or not isinstance(len_b, int) or len_b < 0:
        raise ValueError(f"len_b: expected an int >= 0, got {len_b!r}")
    return prefix_lm(len_a + len_b, len_a, device=device)


def glm_positions(
    len_a: int, spans: Sequence[tuple[int, int]], *, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """GLM's 2-D positions: position 1 is the index in Part A (a span's ``[START]`` and tokens take
    their ``[MASK]``'s index); position 2 is 0 in Part A and ``1 … n + 1`` within a span of ``n`` tokens.

    Args:
        len_a: the length of Part A.
        spans: ``(mask_position, n)`` per span, in Part B's order.

    Returns:
        ``(position_1, position_2)``, int64 ``(len_a + Σ (n + 1),)`` each.
    """
    check_positive_int("len_a", len_a)
    pos1, pos2 = list(range(len_a)), [0] * len_a
    for k, (where, n) in enumerate(spans):
        if not (isinstance(where, int) and 0 <= where < len_a and isinstance(n, int) and n >= 1):
            raise ValueError(
                f"spans[{k}]: expected (mask position in [0, {len_a}), length >= 1), got {(where, n)!r}"
            )
        pos1 += [where] * (n + 1)
        pos2 += list(range(1, n + 2))
    return torch.tensor(pos1, device=device), torch.tensor(pos2, device=device)


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


def sliding_window(
    t_q: int,
    t_k: int | None = None,
    *,
    window: int,
    offset: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Causal sliding-window mask: query ``i`` sees key ``j`` iff ``i + offset - window < j <= i + offset``.

    Each query sees itself and the ``window - 1`` keys before it (fewer near the start), as in
    Longformer/Mistral-style local attention. With ``window >= t_k`` it equals :func:`causal`. For a
    square ``L × L`` mask with ``L >= window`` the number of True entries is ``L·w - w(w - 1)/2``.

    Args:
        t_q: number of queries.
        t_k: number of keys (default ``t_q``).
        window: how many keys (the query's own position included) each query may see; ``>= 1``.
        offset: absolute position of query 0 minus that of key 0; pass ``t_k - t_q`` when the
            queries are the last ``t_q`` of ``t_k`` positions (decoding with a KV cache).
        device: where to allocate the mask.

    Returns:
        Bool tensor of shape ``(t_q, t_k)``, True = may attend.
    """
    check_positive_int("t_q", t_q)
    t_k = t_q if t_k is None else check_positive_int("t_k", t_k)
    check_positive_int("window", window)
    i = torch.arange(t_q, device=device).unsqueeze(1) + offset
    j = torch.arange(t_k, device=device).unsqueeze(0)
    return (j <= i) & (j > i - window)


_BLOCK_PATTERNS = ("local", "strided", "fixed")


def block_sparse(
    t: int,
    block: int,
    pattern: str | torch.Tensor = "local",
    *,
    causal: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Block-sparse attention masks (稀疏注意力/分块注意力) for a sequence of ``t`` positions.

    Patterns, with ``l = block``, key ``j`` and query ``i`` (and ``j <= i`` when ``causal``):

    * ``"local"`` — blockwise attention: ``j`` in the same block as ``i``, ``j // l == i // l``.
    * ``"strided"`` — the two heads of the Sparse Transformer's *strided* pattern (Child et al., 2019)
      merged into one mask: a local window ``i - j < l`` or a stride ``(i - j) % l == 0``.
    * ``"fixed"`` — the *fixed* pattern: the same block, or a "summary" column ``j % l == l - 1``
      (the last position of every block).
    * a bool tensor ``layout`` of shape ``(n_blocks, n_blocks)`` with ``n_blocks = ceil(t / l)`` —
      query block ``a`` may attend to key block ``b`` iff ``layout[a, b]`` (BigBird /
      block-sparse FlashAttention style).

    With ``causal`` and ``l ≈ sqrt(t)`` the strided and fixed patterns keep ``O(t·sqrt(t))`` entries
    instead of ``t²/2``.

    Args:
        t: sequence length (queries and keys).
        block: block size ``l``.
        pattern: ``"local"``, ``"strided"``, ``"fixed"`` or a block layout.
        causal: also block keys after the query.
        device: where to allocate the mask.

    Returns:
        Bool tensor of shape ``(t, t)``, True = may attend.
    """
    check_positive_int("t", t)
    check_positive_int("block", block)
    i = torch.arange(t, device=device).unsqueeze(1)
    j = torch.arange(t, device=device).unsqueeze(0)
    if isinstance(pattern, torch.Tensor):
        n_blocks = -(-t // block)
        if pattern.dtype != torch.bool or tuple(pattern.shape) != (n_blocks, n_blocks):
            raise ValueError(
                f"pattern: a block layout must be a bool tensor of shape (ceil(t/block),)*2 = "
                f"({n_blocks}, {n_blocks}), got {pattern.dtype} {tuple(pattern.shape)}"
            )
        mask = pattern.to(device)[i // block, j // block]
    elif pattern == "local":
        mask = (i // block) == (j // block)
    elif pattern == "strided":
        mask = ((i - j).abs() < block) | ((i - j) % block == 0)
    elif pattern == "fixed":
        mask = ((i // block) == (j // block)) | (j % block == block - 1)
    else:
        raise ValueError(f"pattern: expected one of {_BLOCK_PATTERNS} or a bool layout, got {pattern!r}")
    return mask & (j <= i) if causal else mask
