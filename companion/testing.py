"""Testing helpers that learners can reuse on their own models."""

from __future__ import annotations

from collections.abc import Callable

import torch

from companion._validate import check_positive_int, check_tensor

__all__ = ["assert_causal", "is_linear"]


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


def is_linear(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    a: float = 2.0,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> bool:
    """Whether ``f`` behaves linearly at ``x`` and ``y``: homogeneous, ``f(a·x) = a·f(x)``, **and**
    additive, ``f(x + y) = f(x) + f(y)``, each within ``torch.allclose(rtol, atol)``.

    Both are needed: ReLU is homogeneous for ``a > 0`` but not additive, and an affine map
    ``Wx + b`` (a ``nn.Linear`` with a bias) is neither. Float rounding makes exact equality fail even
    for a matrix product, hence the tolerances.

    Args:
        f: maps a tensor to a tensor (e.g. a Transformer block in eval mode).
        x, y: two inputs of the same shape.
        a: the scale of the homogeneity test (not 0 or 1, which test nothing).
        rtol, atol: the tolerance of each comparison.
    """
    check_tensor("x", x)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise ValueError(
            f"y: expected a tensor of x's shape {tuple(x.shape)}, got {getattr(y, 'shape', y)!r}"
        )
    if a in (0, 1):
        raise ValueError(f"a: expected a scale other than 0 and 1 (they test nothing), got {a!r}")
    with torch.no_grad():
        fx, fy = f(x), f(y)
        homogeneous = torch.allclose(f(a * x), a * fx, rtol=rtol, atol=atol)
        additive = torch.allclose(f(x + y), fx + fy, rtol=rtol, atol=atol)
    return bool(homogeneous and additive)
