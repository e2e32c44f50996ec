"""Non-smooth L1 optimization: the subgradient of ``|w|``, soft-thresholding (the proximal operator of
the L1 norm), the Elastic Net proximal step, ISTA and plain subgradient descent for the Lasso.

The Lasso objective here is ``f(w) + λ‖w‖₁`` with ``f(w) = (1/2n)‖y − Xw‖²`` (scikit-learn's
``Lasso`` scaling, no intercept). ``X`` has shape ``(n, p)``, ``y`` shape ``(n,)``, ``w`` shape ``(p,)``.
"""

from __future__ import annotations

import math

import torch

from companion._validate import check_tensor

__all__ = [
    "elastic_net_prox",
    "ista",
    "l1_subgrad",
    "lipschitz_constant",
    "soft_threshold",
    "subgradient_descent",
]


def _check_threshold(name: str, t: object) -> float | torch.Tensor:
    if isinstance(t, torch.Tensor):
        if not bool((t >= 0).all()):
            raise ValueError(f"{name}: expected thresholds >= 0, got a tensor with min {t.min().item():.3g}")
        return t
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0 or math.isinf(t):
        raise ValueError(f"{name}: expected a finite number >= 0, got {t!r}")
    return float(t)


def l1_subgrad(w: torch.Tensor) -> torch.Tensor:
    """The minimum-norm subgradient of ``‖w‖₁``: ``sign(w)``, which is 0 at ``w = 0``.

    ``d|w|/dw = sign(w) = ±1`` away from 0; at 0 the subdifferential is the whole interval
    ``[−1, 1]`` and its element of smallest magnitude, 0, is returned (as ``torch.abs``'s backward does).

    Args:
        w: any shape.

    Returns:
        A tensor of the shape and dtype of ``w`` with values in ``{−1, 0, 1}``.
    """
    w = check_tensor("w", w, floating=True)
    return torch.sign(w)


def soft_threshold(w: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Soft-thresholding ``S_t(w) = sign(w)·max(|w| − t, 0)``, the proximal operator of ``t‖·‖₁``.

    ``S_t(v) = argmin_u ½(u − v)² + t|u|``: every entry moves ``t`` towards 0 and stops there, so
    entries with ``|w| ≤ t`` become exactly 0.

    Args:
        w: any shape.
        t: threshold ``≥ 0``, a number or a tensor broadcastable to ``w``.

    Returns:
        A tensor of the shape and dtype of ``w``.
    """
    w = check_tensor("w", w, floating=True)
    t = _check_threshold("t", t)
    return torch.sign(w) * torch.clamp(w.abs() - t, min=0.0)


def elastic_net_prox(v: torch.Tensor, t1: float | torch.Tensor, t2: float | torch.Tensor) -> torch.Tensor:
    """Proximal operator of ``t1‖u‖₁ + (t2/2)‖u‖²``: ``S_{t1}(v) / (1 + t2)``.

    ``argmin_u ½‖u − v‖² + t1‖u‖₁ + (t2/2)‖u‖²`` separates per entry; its optimality condition
    ``v − u − t2·u ∈ t1·∂|u|`` gives soft-thresholding *then* a uniform shrink by ``1/(1 + t2)``. In a
    proximal-gradient step with step size ``η``: ``t1 = ηλ₁`` and ``t2 = ηλ₂``.

    Args:
        v: any shape.
        t1: L1 threshold ``≥ 0``.
        t2: L2 weight ``≥ 0``.

    Returns:
        A tensor of the shape and dtype of ``v``.
    """
    v = check_tensor("v", v, floating=True)
    t1 = _check_threshold("t1", t1)
    t2 = _check_threshold("t2", t2)
    return soft_threshold(v, t1) / (1.0 + t2)


def _check_problem(X: object, y: object, lam: object, steps: object) -> tuple[torch.Tensor, torch.Tensor]:
    X = check_tensor("X", X, ndim=2, floating=True)
    y = check_tensor("y", y, ndim=1, floating=True)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y: expected {X.shape[0]} targets (one per row of X), got shape {tuple(y.shape)}")
    if X.shape[0] == 0:
        raise ValueError("X: expected at least one sample")
    _check_threshold("lam", lam)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
    return X, y.to(X.dtype)


def lipschitz_constant(X: torch.Tensor) -> float:
    """``L = λ_max(XᵀX)/n``, the Lipschitz constant of ``∇f`` for ``f(w) = (1/2n)‖y − Xw‖²``. X: (n, p)."""
    X = check_tensor("X", X, ndim=2, floating=True)
    return float(torch.linalg.matrix_norm(X, ord=2) ** 2) / X.shape[0]


def _start(
    X: torch.Tensor, y: torch.Tensor, lam: float, steps: int, step_size: float | None, w0: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """The checked problem, the step ``η`` (default ``1/L``) and the starting ``w`` of both solvers."""
    X, y = _check_problem(X, y, lam, steps)
    eta = 1.0 / lipschitz_constant(X) if step_size is None else float(step_size)
    if not eta > 0:
        raise ValueError(f"step_size: expected a number > 0, got {step_size!r}")
    p = X.shape[1]
    w = torch.zeros(p, dtype=X.dtype) if w0 is None else check_tensor("w0", w0, ndim=1).to(X.dtype).clone()
    return X, y, eta, w


def ista(
    X: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    steps: int,
    *,
    step_size: float | None = None,
    w0: torch.Tensor | None = None,
    return_trace: bool = False,
) -> torch.Tensor:
    """ISTA (proximal gradient) for the Lasso ``(1/2n)‖y − Xw‖² + λ‖w‖₁``, no intercept.

    ``w ← S_{ηλ}(w − η∇f(w))`` with ``∇f(w) = −Xᵀ(y − Xw)/n`` and ``η = 1/L``,
    ``L = λ_max(XᵀX)/n`` (any ``η ≤ 1/L`` converges). Unlike subgradient descent, every iterate has
    exact zeros.

    Args:
        X: design matrix, shape ``(n, p)``.
        y: targets, shape ``(n,)``.
        lam: penalty ``λ ≥ 0`` (scikit-learn's ``Lasso(alpha=lam, fit_intercept=False)``).
        steps: number of iterations ``≥ 0``.
        step_size: ``η``; default ``1/L``.
        w0: start, shape ``(p,)``; default zeros.
        return_trace: also return every iterate.

    Returns:
        ``w`` of shape ``(p,)``, or the iterates ``(steps + 1, p)`` with ``return_trace``.
    """
    X, y, eta, w = _start(X, y, lam, steps, step_size, w0)
    n = X.shape[0]
    trace = [w]
    for _ in range(steps):
        grad = -(X.T @ (y - X @ w)) / n  # ∇f(w)
        w = soft_threshold(w - eta * grad, eta * lam)  # prox of ηλ‖·‖₁
        trace.append(w)
    return torch.stack(trace) if return_trace else w


def subgradient_descent(
    X: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    steps: int,
    *,
    step_size: float | None = None,
    w0: torch.Tensor | None = None,
    return_trace: bool = False,
) -> torch.Tensor:
    """Subgradient descent for the Lasso: ``w ← w − η_t(∇f(w) + λ·sign(w))``, ``η_t = η/√(t + 1)``.

    It converges (slowly) in objective value, but the iterates keep jumping across 0 — the ``λ·sign(w)``
    term overshoots — so coefficients that should be 0 are small but almost never exactly 0. Shown for
    comparison with :func:`ista`.

    Args:
        X: design matrix, shape ``(n, p)``.
        y: targets, shape ``(n,)``.
        lam: penalty ``λ ≥ 0``.
        steps: number of iterations ``≥ 0``.
        step_size: base step ``η``; default ``1/L``.
        w0: start, shape ``(p,)``; default zeros.
        return_trace: also return every iterate.

    Returns:
        ``w`` of shape ``(p,)``, or the iterates ``(steps + 1, p)`` with ``return_trace``.
    """
    X, y, eta, w = _start(X, y, lam, steps, step_size, w0)
    n = X.shape[0]
    trace = [w]
    for t in range(steps):
        g = -(X.T @ (y - X @ w)) / n + lam * torch.sign(w)  # a subgradient of the objective
        w = w - eta / math.sqrt(t + 1) * g
        trace.append(w)
    return torch.stack(trace) if return_trace else w
