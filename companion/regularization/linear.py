"""Penalized linear regression: ridge (closed form), Lasso and Elastic Net (coordinate descent), and
their regularization paths with warm starts.

The objectives use scikit-learn's scalings exactly, so that coefficients can be compared one to one:

- ridge: ``‖y − Xw − b‖² + α‖w‖²`` (no ``1/n``), as ``sklearn.linear_model.Ridge``;
- Elastic Net: ``(1/2n)‖y − Xw − b‖² + αρ‖w‖₁ + ½α(1 − ρ)‖w‖²`` with ``ρ`` = ``l1_ratio``, as
  ``sklearn.linear_model.ElasticNet``; ``ρ = 1`` is the Lasso, ``sklearn.linear_model.Lasso``.

The intercept ``b`` is never penalized: with ``fit_intercept=True`` the columns of ``X`` and ``y`` are
centred, the penalized problem is solved on the centred data, and ``b = ȳ − x̄ w``.

Everything is computed in float64. ``X`` has shape ``(n, p)`` (``n`` samples, ``p`` features) and
``y`` shape ``(n,)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from companion._validate import check_positive_int, check_tensor

__all__ = [
    "ConvergenceWarning",
    "LinearFit",
    "alpha_max",
    "coordinate_descent",
    "elastic_net",
    "elastic_net_objective",
    "enet_duality_gap",
    "enet_path",
    "lasso",
    "lasso_path",
    "ridge",
    "ridge_objective",
    "ridge_path",
]


class ConvergenceWarning(UserWarning):
    """Coordinate descent stopped at ``max_iter`` before the duality gap fell below ``tol``."""


@dataclass(frozen=True)
class LinearFit:
    """The result of a penalized linear fit.

    Attributes:
        coef: the weights ``w``, shape ``(p,)``, float64.
        intercept: the unpenalized bias ``b`` (0.0 without an intercept).
        n_iter: coordinate-descent sweeps used (0 for a closed form).
        dual_gap: duality gap of the objective at ``coef`` (an upper bound on its suboptimality; 0.0 for
            a closed form).
        converged: whether the stopping criterion was met within ``max_iter``.
    """

    coef: torch.Tensor
    intercept: float
    n_iter: int
    dual_gap: float
    converged: bool


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------


def _check_xy(X: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    X = check_tensor("X", X, ndim=2)
    y = check_tensor("y", y, ndim=1)
    if X.is_complex() or X.dtype == torch.bool:
        raise TypeError(f"X: expected a real numeric tensor, got dtype {X.dtype}")
    if y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y: expected a real numeric tensor, got dtype {y.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X: expected at least one sample and one feature, got shape {tuple(X.shape)}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y: expected {X.shape[0]} targets (one per row of X), got shape {tuple(y.shape)}")
    X, y = X.detach().to("cpu", torch.float64), y.detach().to("cpu", torch.float64)
    if not torch.isfinite(X).all():
        raise ValueError("X: contains NaN or infinite values")
    if not torch.isfinite(y).all():
        raise ValueError("y: contains NaN or infinite values")
    return X, y


def _check_nonneg(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _check_l1_ratio(l1_ratio: object) -> float:
    if isinstance(l1_ratio, bool) or not isinstance(l1_ratio, (int, float)) or not 0 <= l1_ratio <= 1:
        raise ValueError(f"l1_ratio: expected a number in [0, 1], got {l1_ratio!r}")
    return float(l1_ratio)


def _check_tol(tol: object) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0 or math.isinf(tol):
        raise ValueError(f"tol: expected a finite number > 0, got {tol!r}")
    return float(tol)


def _center(
    X: torch.Tensor, y: torch.Tensor, fit_intercept: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre the columns of X and y when fitting an intercept (so the intercept is not penalized)."""
    if not isinstance(fit_intercept, bool):
        raise TypeError(f"fit_intercept: expected a bool, got {type(fit_intercept).__name__}")
    if fit_intercept:
        x_mean, y_mean = X.mean(dim=0), y.mean()
        return X - x_mean, y - y_mean, x_mean, y_mean
    return X, y, torch.zeros(X.shape[1], dtype=X.dtype), torch.zeros((), dtype=y.dtype)


# --------------------------------------------------------------------------------------------------
# objectives
# --------------------------------------------------------------------------------------------------


def ridge_objective(
    X: torch.Tensor, y: torch.Tensor, coef: torch.Tensor, intercept: float, alpha: float
) -> float:
    """``‖y − Xw − b‖² + α‖w‖²`` (scikit-learn's ``Ridge`` scaling). X: (n, p); y: (n,); coef: (p,)."""
    X, y = _check_xy(X, y)
    w = check_tensor("coef", coef, ndim=1).detach().to(torch.float64)
    r = y - X @ w - float(intercept)
    return float(r @ r + alpha * (w @ w))


def elastic_net_objective(
    X: torch.Tensor,
    y: torch.Tensor,
    coef: torch.Tensor,
    intercept: float,
    alpha: float,
    l1_ratio: float = 1.0,
) -> float:
    """``(1/2n)‖y − Xw − b‖² + αρ‖w‖₁ + ½α(1 − ρ)‖w‖²`` (scikit-learn's ``ElasticNet`` scaling).

    X: (n, p); y: (n,); coef: (p,). ``l1_ratio = 1`` gives the Lasso objective.
    """
    X, y = _check_xy(X, y)
    w = check_tensor("coef", coef, ndim=1).detach().to(torch.float64)
    r = y - X @ w - float(intercept)
    n = X.shape[0]
    return float(
        (r @ r) / (2 * n) + alpha * l1_ratio * w.abs().sum() + 0.5 * alpha * (1 - l1_ratio) * (w @ w)
    )


def enet_duality_gap(
    X: torch.Tensor, y: torch.Tensor, coef: torch.Tensor, alpha: float, l1_ratio: float
) -> float:
    """Duality gap of the Elastic Net objective (no intercept; centre X and y first to handle one).

    With ``λ₁ = nαρ``, ``λ₂ = nα(1 − ρ)`` the primal ``P(w) = ½‖r‖² + λ₁‖w‖₁ + ½λ₂‖w‖²`` (``r = y − Xw``)
    is ``n`` times the objective above. Scaling the residual to ``θ = s·r`` with
    ``s = min(1, λ₁ / ‖Xᵀr − λ₂w‖_∞)`` gives a dual-feasible point, and
    ``P(w) − D(θ) = ½(1 + s²)‖r‖² + λ₁‖w‖₁ − s·rᵀy + ½λ₂(1 + s²)‖w‖²`` ≥ 0, which is 0 exactly at the
    optimum. The value returned is divided by ``n``: it bounds the suboptimality of the ``1/(2n)``-scaled
    objective. X: (n, p); y: (n,); coef: (p,).
    """
    X, y = _check_xy(X, y)
    w = check_tensor("coef", coef, ndim=1).detach().to(torch.float64).numpy()
    return _gap(X.numpy(), y.numpy(), w, y.numpy() - X.numpy() @ w, alpha, l1_ratio) / X.shape[0]


def _gap(X: np.ndarray, y: np.ndarray, w: np.ndarray, r: np.ndarray, alpha: float, l1_ratio: float) -> float:
    """Duality gap in the un-normalized scaling (n times the 1/(2n) objective); see enet_duality_gap.

    Any dual-feasible point gives a valid bound, so the smaller of two standard constructions is used:
    (a) for λ₁ > 0, the Lasso on augmented data [X; √λ₂ I], [y; 0] with its residual rescaled into the
    dual ball (scikit-learn's construction); (b) for λ₂ > 0, the residual itself in the dual
    D(θ) = θᵀy − ½‖θ‖² − Σ_j max(|X_jᵀθ| − λ₁, 0)²/(2λ₂), which also covers λ₁ = 0 (pure L2).
    """
    n = X.shape[0]
    l1, l2 = n * alpha * l1_ratio, n * alpha * (1.0 - l1_ratio)
    xt_r = X.T @ r
    r2, w2, w1, ry = float(r @ r), float(w @ w), float(np.abs(w).sum()), float(r @ y)
    primal = 0.5 * r2 + l1 * w1 + 0.5 * l2 * w2
    gaps = []
    if l1 > 0:
        dual_norm = float(np.abs(xt_r - l2 * w).max())
        s = min(1.0, l1 / dual_norm) if dual_norm > 0 else 1.0
        gaps.append(0.5 * (1 + s * s) * (r2 + l2 * w2) + l1 * w1 - s * ry)
    if l2 > 0:
        excess = np.maximum(np.abs(xt_r) - l1, 0.0)
        gaps.append(primal - (ry - 0.5 * r2 - float(excess @ excess) / (2 * l2)))
    if not gaps:  # alpha = 0: plain least squares, optimal when Xᵀr = 0
        return 0.0 if float(np.abs(xt_r).max()) <= 1e-12 * max(1.0, float(y @ y)) else math.inf
    return max(min(gaps), 0.0)  # ≥ 0 mathematically; clip rounding noise


# --------------------------------------------------------------------------------------------------
# ridge
# --------------------------------------------------------------------------------------------------


def ridge(X: torch.Tensor, y: torch.Tensor, alpha: float, *, fit_intercept: bool = True) -> LinearFit:
    """Ridge regression in closed form: ``argmin ‖y − Xw − b‖² + α‖w‖²``.

    ``w = (XᵀX + αI)⁻¹Xᵀy`` on centred data (``fit_intercept=True``; the intercept is not penalized)
    or on the raw data. When ``n < p`` the equivalent ``w = Xᵀ(XXᵀ + αI)⁻¹y`` solves an ``n × n``
    system instead. ``alpha = 0`` returns the minimum-norm least-squares solution.

    Args:
        X: design matrix, shape ``(n, p)``.
        y: targets, shape ``(n,)``.
        alpha: penalty strength ``α ≥ 0`` (scikit-learn's ``Ridge(alpha=...)``).
        fit_intercept: fit an unpenalized intercept by centring.

    Returns:
        A :class:`LinearFit` with ``coef`` of shape ``(p,)`` in float64.

    Raises:
        TypeError, ValueError: for tensors of the wrong type, rank, length or with NaN, or ``alpha < 0``.
    """
    X, y = _check_xy(X, y)
    alpha = _check_nonneg("alpha", alpha)
    Xc, yc, x_mean, y_mean = _center(X, y, fit_intercept)
    n, p = Xc.shape
    if alpha == 0.0:
        w = torch.linalg.pinv(Xc) @ yc  # minimum-norm least squares
    elif n >= p:
        gram = Xc.T @ Xc + alpha * torch.eye(p, dtype=Xc.dtype)  # (p, p), symmetric positive definite
        w = torch.cholesky_solve((Xc.T @ yc)[:, None], torch.linalg.cholesky(gram))[:, 0]
    else:
        kernel = Xc @ Xc.T + alpha * torch.eye(n, dtype=Xc.dtype)  # (n, n): cheaper when n < p
        w = Xc.T @ torch.cholesky_solve(yc[:, None], torch.linalg.cholesky(kernel))[:, 0]
    intercept = float(y_mean - x_mean @ w) if fit_intercept else 0.0
    return LinearFit(w, intercept, 0, 0.0, True)


def ridge_path(
    X: torch.Tensor, y: torch.Tensor, alphas: torch.Tensor, *, fit_intercept: bool = True
) -> torch.Tensor:
    """Ridge coefficients for many ``α`` at once from one SVD: ``w(α) = V diag(s/(s² + α)) Uᵀy``.

    Args:
        X: design matrix, shape ``(n, p)``.
        y: targets, shape ``(n,)``.
        alphas: penalties ``α > 0``, shape ``(k,)``.
        fit_intercept: centre ``X`` and ``y`` first (unpenalized intercept).

    Returns:
        Coefficients of shape ``(p, k)``, column ``j`` for ``alphas[j]``.
    """
    X, y = _check_xy(X, y)
    alphas = check_tensor("alphas", alphas, ndim=1).detach().to(torch.float64)
    if not bool((alphas > 0).all()) or not bool(torch.isfinite(alphas).all()):
        raise ValueError("alphas: expected finite values > 0")
    Xc, yc, _, _ = _center(X, y, fit_intercept)
    u, s, vh = torch.linalg.svd(Xc, full_matrices=False)  # Xc = U diag(s) Vᵀ
    uty = u.T @ yc  # (r,)
    shrink = s[:, None] / (s[:, None] ** 2 + alphas[None, :])  # (r, k): each direction shrunk by s²/(s²+α)
    return vh.T @ (shrink * uty[:, None])


# --------------------------------------------------------------------------------------------------
# coordinate descent for the Elastic Net (and the Lasso)
# --------------------------------------------------------------------------------------------------


def coordinate_descent(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    alpha: float,
    l1_ratio: float,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, int, float, bool]:
    """Cyclic coordinate descent on ½‖y − Xw‖² + λ₁‖w‖₁ + ½λ₂‖w‖² (λ₁ = nαρ, λ₂ = nα(1−ρ)).

    Coordinate j minimizes exactly with the others fixed: with the partial residual r_j = r + X_j w_j,
    w_j ← S_{λ₁}(X_jᵀ r_j) / (‖X_j‖² + λ₂). Sweeps stop when the duality gap falls below
    tol·‖y‖² (scikit-learn's criterion); the gap is only computed when the weights have nearly stopped
    moving, because it costs a full X^T r. The solver behind :func:`elastic_net` and :func:`lasso`,
    for validated inputs.

    Args:
        X: ``(n, p)`` design matrix; y: ``(n,)`` targets; w: ``(p,)`` starting weights (updated in place).
        alpha, l1_ratio: scikit-learn's ``alpha`` and ``l1_ratio`` (``ρ``).
        tol: the duality-gap tolerance, relative to ``‖y‖²``; max_iter: at most this many sweeps.

    Returns:
        ``(w, sweeps, duality_gap, converged)``.
    """
    n, p = X.shape
    l1, l2 = n * alpha * l1_ratio, n * alpha * (1.0 - l1_ratio)
    cols = np.ascontiguousarray(X.T)  # row j = column X_j, contiguous for the inner products
    col_sq = np.einsum("ij,ij->i", cols, cols)  # ‖X_j‖²
    r = y - X @ w
    gap_tol = tol * float(y @ y)
    gap = math.inf
    for sweep in range(1, max_iter + 1):
        w_max = dw_max = 0.0
        for j in range(p):
            if col_sq[j] == 0.0:  # a constant-zero column: its weight stays 0
                continue
            w_old = w[j]
            if w_old != 0.0:
                r += w_old * cols[j]  # partial residual r_j
            rho = float(cols[j] @ r)
            w_new = math.copysign(max(abs(rho) - l1, 0.0), rho) / (col_sq[j] + l2)  # soft-threshold
            if w_new != 0.0:
                r -= w_new * cols[j]
            w[j] = w_new
            dw_max = max(dw_max, abs(w_new - w_old))
            w_max = max(w_max, abs(w_new))
        # Cheap test first (weights barely moved), then the certificate (duality gap).
        if w_max == 0.0 or dw_max / w_max < tol or sweep == max_iter:
            gap = _gap(X, y, w, r, alpha, l1_ratio)
            if gap <= gap_tol:
                return w, sweep, gap / n, True
    return w, max_iter, gap / n, False


def elastic_net(
    X: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    l1_ratio: float = 0.5,
    *,
    fit_intercept: bool = True,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    warm_start: torch.Tensor | None = None,
) -> LinearFit:
    """Elastic Net by cyclic coordinate descent:
    ``argmin (1/2n)‖y − Xw − b‖² + αρ‖w‖₁ + ½α(1 − ρ)‖w‖²``, ``ρ`` = ``l1_ratio``.

    Each coordinate update is exact: ``w_j ← S_{nαρ}(X_jᵀr_j) / (‖X_j‖² + nα(1 − ρ))`` with the soft
    threshold ``S`` and the partial residual ``r_j``. Iteration stops when the duality gap is at most
    ``tol·‖y‖²/n`` (the same criterion as scikit-learn's ``tol``), or after ``max_iter`` sweeps with a
    :class:`ConvergenceWarning`.

    Args:
        X: design matrix, shape ``(n, p)``.
        y: targets, shape ``(n,)``.
        alpha: overall penalty ``α ≥ 0``.
        l1_ratio: ``ρ ∈ [0, 1]``; 1 is the Lasso, 0 a ridge penalty in the ``1/(2n)`` scaling.
        fit_intercept: fit an unpenalized intercept by centring.
        tol: relative duality-gap tolerance (> 0).
        max_iter: maximum number of sweeps over the coordinates.
        warm_start: initial weights, shape ``(p,)`` (e.g. the solution at a nearby ``α``).

    Returns:
        A :class:`LinearFit` with ``coef`` of shape ``(p,)`` in float64.

    Raises:
        TypeError, ValueError: for tensors of the wrong type, rank, length or with NaN, and for
            out-of-range ``alpha``, ``l1_ratio``, ``tol`` or ``max_iter``.
    """
    X, y = _check_xy(X, y)
    alpha = _check_nonneg("alpha", alpha)
    l1_ratio = _check_l1_ratio(l1_ratio)
    tol = _check_tol(tol)
    check_positive_int("max_iter", max_iter)
    Xc, yc, x_mean, y_mean = _center(X, y, fit_intercept)
    p = X.shape[1]
    if warm_start is None:
        w0 = np.zeros(p)
    else:
        w0 = check_tensor("warm_start", warm_start, ndim=1)
        if w0.shape[0] != p:
            raise ValueError(f"warm_start: expected shape ({p},), got {tuple(w0.shape)}")
        w0 = w0.detach().to("cpu", torch.float64).numpy().copy()
    w, n_iter, gap, converged = coordinate_descent(Xc.numpy(), yc.numpy(), w0, alpha, l1_ratio, tol, max_iter)
    if not converged:
        warnings.warn(
            f"coordinate descent did not converge in max_iter={max_iter} sweeps "
            f"(duality gap {gap:.3g}); increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    coef = torch.from_numpy(w)
    intercept = float(y_mean - x_mean @ coef) if fit_intercept else 0.0
    return LinearFit(coef, intercept, n_iter, gap, converged)


def lasso(
    X: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    *,
    fit_intercept: bool = True,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    warm_start: torch.Tensor | None = None,
) -> LinearFit:
    """The Lasso, ``argmin (1/2n)‖y − Xw − b‖² + α‖w‖₁``: :func:`elastic_net` with ``l1_ratio = 1``.

    Args:
        X: design matrix, shape ``(n, p)``.
        y: targets, shape ``(n,)``.
        alpha: penalty ``α ≥ 0`` (scikit-learn's ``Lasso(alpha=...)``).
        fit_intercept: fit an unpenalized intercept by centring.
        tol: relative duality-gap tolerance (> 0).
        max_iter: maximum number of sweeps.
        warm_start: initial weights, shape ``(p,)``.

    Returns:
        A :class:`LinearFit` with ``coef`` of shape ``(p,)`` in float64.
    """
    return elastic_net(
        X, y, alpha, 1.0, fit_intercept=fit_intercept, tol=tol, max_iter=max_iter, warm_start=warm_start
    )


def alpha_max(
    X: torch.Tensor, y: torch.Tensor, l1_ratio: float = 1.0, *, fit_intercept: bool = True
) -> float:
    """The smallest ``α`` at which every Elastic Net coefficient is 0: ``max_j |X_jᵀy| / (nρ)``.

    At ``w = 0`` the optimality condition is ``|X_jᵀy|/n ≤ αρ`` for every ``j``. X: (n, p); y: (n,).
    """
    X, y = _check_xy(X, y)
    l1_ratio = _check_l1_ratio(l1_ratio)
    if l1_ratio == 0:
        raise ValueError("l1_ratio: must be > 0 (a pure ridge penalty never sets coefficients to 0)")
    Xc, yc, _, _ = _center(X, y, fit_intercept)
    return float((Xc.T @ yc).abs().max()) / (X.shape[0] * l1_ratio)


def enet_path(
    X: torch.Tensor,
    y: torch.Tensor,
    l1_ratio: float = 0.5,
    *,
    alphas: torch.Tensor | None = None,
    n_alphas: int = 100,
    eps: float = 1e-3,
    fit_intercept: bool = False,
    warm_start: bool = True,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Elastic Net coefficients along a decreasing grid of ``α``, each fit warm-started from the last.

    The default grid is ``n_alphas`` values spaced evenly in ``log α`` from :func:`alpha_max` (all
    coefficients 0) down to ``eps · alpha_max``, as ``sklearn.linear_model.enet_path``. Like
    scikit-learn's path functions, the default fits no intercept.

    Args:
        X: design matrix, shape ``(n, p)``.
        y: targets, shape ``(n,)``.
        l1_ratio: ``ρ ∈ (0, 1]``.
        alphas: an explicit grid, shape ``(k,)`` (sorted into decreasing order).
        n_alphas: grid size when ``alphas`` is None.
        eps: ``α_min / α_max`` when ``alphas`` is None.
        fit_intercept: centre ``X`` and ``y`` first.
        warm_start: start each fit from the previous solution (True) or from 0 (False).
        tol: relative duality-gap tolerance per fit.
        max_iter: maximum sweeps per fit.

    Returns:
        ``(alphas, coefs, n_iters)``: alphas ``(k,)`` decreasing, coefs ``(p, k)``, and the sweeps each
        fit used (warm starts make these small).
    """
    X, y = _check_xy(X, y)
    l1_ratio = _check_l1_ratio(l1_ratio)
    if alphas is None:
        check_positive_int("n_alphas", n_alphas)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ValueError(f"eps: expected a number in (0, 1), got {eps!r}")
        top = alpha_max(X, y, l1_ratio, fit_intercept=fit_intercept)
        grid = torch.logspace(math.log10(top), math.log10(top * eps), n_alphas, dtype=torch.float64)
    else:
        grid = check_tensor("alphas", alphas, ndim=1).detach().to(torch.float64)
        if not bool((grid >= 0).all()) or not bool(torch.isfinite(grid).all()):
            raise ValueError("alphas: expected finite values >= 0")
        grid = grid.sort(descending=True).values
    coefs = torch.zeros(X.shape[1], grid.shape[0], dtype=torch.float64)
    n_iters: list[int] = []
    w = None
    for k, a in enumerate(grid.tolist()):
        fit = elastic_net(
            X, y, a, l1_ratio, fit_intercept=fit_intercept, tol=tol, max_iter=max_iter,
            warm_start=w if warm_start else None,
        )  # fmt: skip
        coefs[:, k] = fit.coef
        n_iters.append(fit.n_iter)
        w = fit.coef
    return grid, coefs, n_iters


def lasso_path(
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    alphas: torch.Tensor | None = None,
    n_alphas: int = 100,
    eps: float = 1e-3,
    fit_intercept: bool = False,
    warm_start: bool = True,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The Lasso path: :func:`enet_path` with ``l1_ratio = 1`` (compare ``sklearn.linear_model.lasso_path``).

    Returns:
        ``(alphas, coefs, n_iters)`` with alphas ``(k,)`` decreasing and coefs ``(p, k)``.
    """
    return enet_path(
        X, y, 1.0, alphas=alphas, n_alphas=n_alphas, eps=eps, fit_intercept=fit_intercept,
        warm_start=warm_start, tol=tol, max_iter=max_iter,
    )  # fmt: skip
