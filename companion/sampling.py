"""Sampling (采样) from a language model's next-token logits: the logit processors and the draw.

A language model gives logits ``z`` over the vocabulary for the next token; a sampling rule reshapes
them and draws one token:

* **logit processors**, applied to a ``(..., V)`` tensor of logits and returning one of the same shape
  with the removed tokens at ``-inf``: :func:`apply_temperature`, :func:`top_k_filter`,
  :func:`top_p_filter`, :func:`min_p_filter`, :func:`apply_repetition_penalty`, chained by
  :func:`process_logits` in the order Hugging Face ``transformers`` uses (repetition penalty →
  temperature → top-k → top-p → min-p). Each matches the corresponding ``transformers`` processor
  (``RepetitionPenaltyLogitsProcessor``, ``TemperatureLogitsWarper``, ``TopKLogitsWarper``,
  ``TopPLogitsWarper``, ``MinPLogitsWarper``) exactly (tested);
* **the draw** from the processed distribution with an explicit ``torch.Generator``: :func:`sample`.

Search (greedy, beam search) and generation with a model are in :mod:`companion.generate`.
"""

from __future__ import annotations

import torch

from companion._validate import (
    check_finite_number,
    check_positive_int,
    check_temperature,
    check_tensor,
    check_unit_fraction,
)

__all__ = [
    "apply_repetition_penalty",
    "apply_temperature",
    "min_p_filter",
    "process_logits",
    "sample",
    "top_k_filter",
    "top_p_filter",
]

NEG_INF = float("-inf")


def _check_logits(logits: object) -> torch.Tensor:
    x = check_tensor("logits", logits, min_ndim=1, floating=True)
    if x.shape[-1] == 0:
        raise ValueError("logits: the vocabulary dimension (last) is empty")
    return x


# ------------------------------------------------------------------------------------------------
# logit processors
# ------------------------------------------------------------------------------------------------
def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by ``T``: ``softmax(z / T) ∝ p^(1/T)``.

    ``T < 1`` sharpens the distribution, ``T > 1`` flattens it; ``T → 0`` tends to the argmax and
    ``T → ∞`` to the uniform distribution. Dividing *probabilities* by ``T`` and renormalizing would
    change nothing, which is why the logits are divided.

    Args:
        logits: ``(..., V)``.
        temperature: ``T > 0``.

    Returns:
        ``(..., V)`` logits ``z / T``.
    """
    logits = _check_logits(logits)
    return logits / check_temperature(temperature)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the others to ``-inf``.

    Ties: every token whose logit equals the ``k``-th largest is kept too (so more than ``k`` tokens
    may survive), as in Hugging Face's ``TopKLogitsWarper``. ``k >= V`` keeps everything.

    Args:
        logits: ``(..., V)``.
        k: a positive int.

    Returns:
        ``(..., V)`` logits with the removed tokens at ``-inf``.
    """
    logits = _check_logits(logits)
    k = check_positive_int("k", k)
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1): the k-th largest value
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most-probable tokens whose total probability is ``>= p``.

    Sort the probabilities in descending order and keep token ``i`` when the mass strictly before
    it is ``< p``; the most probable token is therefore always kept. This is the same set that Hugging
    Face's ``TopPLogitsWarper`` keeps (it removes tokens whose *ascending* cumulative probability is
    ``<= 1 - p``), up to rounding exactly at the boundary. It is *not* a per-token threshold:
    ``p = 0.9`` on ``[0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.03]`` keeps 5 tokens, none of which has
    probability above 0.9.

    Args:
        logits: ``(..., V)``.
        p: in ``(0, 1]``; ``1`` keeps every token.

    Returns:
        ``(..., V)`` logits with the removed tokens at ``-inf``.
    """
    logits = _check_logits(logits)
    p = check_unit_fraction("p", p)
    if p >= 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
    remove_sorted = mass_before >= p
    remove_sorted[..., 0] = False  # the top token always stays (guards against rounding)
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, NEG_INF)


def min_p_filter(logits: torch.Tensor, p_min: float) -> torch.Tensor:
    """Min-p filtering: keep tokens with ``p_i >= p_min · max_j p_j`` (a threshold relative to the top token).

    Args:
        logits: ``(..., V)``.
        p_min: in ``(0, 1]``.

    Returns:
        ``(..., V)`` logits with the removed tokens at ``-inf`` (the top token is always kept).
    """
    logits = _check_logits(logits)
    p_min = check_unit_fraction("p_min", p_min)
    probs = logits.softmax(dim=-1)
    threshold = p_min * probs.amax(dim=-1, keepdim=True)
    return logits.masked_fill(probs < threshold, NEG_INF)


def apply_repetition_penalty(logits: torch.Tensor, input_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty, in Hugging Face's form: for every token already in ``input_ids``,
    divide its logit by ``penalty`` if positive and multiply it by ``penalty`` if negative.

    (The CTRL paper divides all logits of seen tokens by the penalty; dividing a negative logit would
    *raise* its probability, hence the sign rule.) A token seen several times is penalized once.

    Args:
        logits: ``(B, V)``.
        input_ids: ``(B, T)`` token ids seen so far (prompt and generated).
        penalty: ``> 0``; ``1`` does nothing, ``> 1`` discourages repetition.

    Returns:
        ``(B, V)`` penalized logits.
    """
    logits = check_tensor("logits", logits, ndim=2, floating=True)
    input_ids = check_tensor("input_ids", input_ids, ndim=2)
    penalty = check_finite_number("penalty", penalty)
    if penalty <= 0:
        raise ValueError(f"penalty: expected a number > 0, got {penalty!r}")
    if input_ids.shape[0] != logits.shape[0]:
        raise ValueError(
            f"input_ids: expected batch size {logits.shape[0]}, got shape {tuple(input_ids.shape)}"
        )
    seen = torch.gather(logits, 1, input_ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, input_ids, seen)


def process_logits(
    logits: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
) -> torch.Tensor:
    """Apply the processors in Hugging Face's order: repetition penalty, temperature, top-k, top-p, min-p.

    The order matters: temperature comes *before* top-k/top-p, so a higher temperature flattens the
    distribution and enlarges the nucleus.

    Args:
        logits: ``(B, V)`` (or ``(..., V)`` without a repetition penalty).
        input_ids: ``(B, T)`` ids seen so far; required by ``repetition_penalty``.
        temperature: ``T > 0``; 1 leaves the logits unchanged.
        top_k, top_p, min_p, repetition_penalty: None switches a processor off.

    Returns:
        The processed logits, same shape.
    """
    logits = _check_logits(logits)
    if repetition_penalty is not None and repetition_penalty != 1.0:
        if input_ids is None:
            raise ValueError("input_ids: required when repetition_penalty is set")
        logits = apply_repetition_penalty(logits, input_ids, repetition_penalty)
    if check_temperature(temperature) != 1.0:
        logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    if min_p is not None:
        logits = min_p_filter(logits, min_p)
    return logits


def sample(
    logits: torch.Tensor,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Draw one token per row from ``softmax(filter(z / T))``; ``temperature=0`` returns the argmax.

    Args:
        logits: ``(V,)`` or ``(B, V)``.
        rng: the ``torch.Generator`` that makes the draw reproducible (None: the global one).
        temperature: ``>= 0``; temperature is applied before top-k and top-p.
        top_k, top_p: optional filters (None: off).

    Returns:
        A 0-D tensor for ``(V,)`` input, else ``(B,)`` token ids (int64).
    """
    logits = check_tensor("logits", logits, ndim=(1, 2), floating=True)
    t = check_temperature(temperature, allow_zero=True)
    if rng is not None and not isinstance(rng, torch.Generator):
        raise TypeError(f"rng: expected a torch.Generator or None, got {type(rng).__name__}")
    flat = logits.reshape(-1, logits.shape[-1])
    if t == 0:
        out = flat.argmax(dim=-1)
    else:
        z = process_logits(flat, temperature=t, top_k=top_k, top_p=top_p)
        out = torch.multinomial(z.float().softmax(dim=-1), 1, generator=rng).squeeze(-1)
    return out.reshape(logits.shape[:-1])
