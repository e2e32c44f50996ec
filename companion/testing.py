"""Testing helpers that learners can reuse on their own models."""

from __future__ import annotations

from collections.abc import Callable

import torch

from companion._validate import check_positive_int, check_tensor

__all__ = ["assert_causal"]


def assert_causal(
    model: Callable[[torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    vocab_size: int,
    *,
    atol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> None:
    """Assert that ``model``'s output at position ``t`` depends only on tokens ``0..t`` (a leak test).

    For every ``t`` in ``0 … T-1`` every token after ``t`` is replaced by a different random token,
    and the outputs at positions ``≤ t`` must not move by more than ``atol``.

    Args:
        model: maps token ids ``(B, T)`` to outputs ``(B, T, ...)``.
        ids: ``(B, T)`` integer token ids in ``[0, vocab_size)``.
        vocab_size: size of the vocabulary (at least 2, so that a token can be changed).
        atol: largest change tolerated at positions that must be unaffected.
        generator: random generator for the replacement tokens.

    Raises:
        AssertionError: naming the first position whose output changed when a later token changed.
    """
    check_tensor("ids", ids, ndim=2)
    if ids.dtype.is_floating_point:
        raise TypeError(f"ids: expected integer token ids, got dtype {ids.dtype}")
    if check_positive_int("vocab_size", vocab_size) < 2:
        raise ValueError(f"vocab_size: need at least 2 tokens to perturb a sequence, got {vocab_size}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(
            f"ids: values must lie in [0, vocab_size={vocab_size}), got range "
            f"[{int(ids.min())}, {int(ids.max())}]"
        )
    with torch.no_grad():
        base = model(ids)
        t_len = ids.shape[1]
        for t in range(t_len - 1):
            perturbed = ids.clone()
            # Adding 1..V-1 modulo V changes every later token to a different valid token.
            shift = torch.randint(
                1, vocab_size, perturbed[:, t + 1 :].shape, generator=generator, device=ids.device
            )
            perturbed[:, t + 1 :] = (perturbed[:, t + 1 :] + shift) % vocab_size
            out = model(perturbed)
            change = (out[:, : t + 1] - base[:, : t + 1]).abs().amax()
            if not bool(change <= atol):
                raise AssertionError(
                    f"future tokens leak: changing tokens after position {t} moved the outputs at positions "
                    f"≤ {t} by {float(change):.3g} (> atol={atol:g})"
                )
