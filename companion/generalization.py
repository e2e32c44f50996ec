"""Generalization (泛化): polynomial fits, the bias–variance decomposition, early stopping.

Helpers for the Generalization chapter. They use NumPy (the chapter's models are small least-squares
fits) and take an explicit ``numpy.random.Generator`` wherever randomness enters, so every number is
reproducible.

* :func:`polynomial_fit` / :func:`polynomial_predict` — least-squares polynomials in a rescaled
  variable ``t ∈ [-1, 1]``, which keeps the design matrix well conditioned up to degree 15;
* :func:`bias_variance` — estimates bias², variance and noise of a fitting procedure over many
  resampled training sets, next to a direct simulation of the expected test MSE;
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["bias_variance", "polynomial_fit", "polynomial_predict"]


def _check_domain(domain: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in domain)
    if not hi > lo:
        raise ValueError(f"domain: expected (low, high) with low < high, got {domain!r}")
    return lo, hi


def _rescale(x: np.ndarray, domain: tuple[float, float]) -> np.ndarray:
    lo, hi = _check_domain(domain)
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def _check_degree(degree: object) -> int:
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
        raise ValueError(f"degree: expected an int >= 0, got {degree!r}")
    return int(degree)


def polynomial_fit(
    x: np.ndarray, y: np.ndarray, degree: int, *, domain: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Least-squares polynomial of the given degree, in the rescaled variable ``t = 2(x-lo)/(hi-lo) - 1``.

    Solves ``min_c ‖V c - y‖²`` with the Vandermonde matrix ``V[i, j] = t_i^j`` by an SVD
    (``numpy.linalg.lstsq``); when ``degree + 1 > n`` it returns the minimum-norm solution.
    Rescaling ``[lo, hi]`` to ``[-1, 1]`` keeps the powers ``t^j`` of comparable size (on ``[0, 1]``
    the condition number of ``V`` is several orders of magnitude worse at degree 15).

    Args:
        x: ``(n,)`` inputs.
        y: ``(n,)`` targets.
        degree: ``d ≥ 0``.
        domain: the interval mapped to ``[-1, 1]``.

    Returns:
        ``(d + 1,)`` coefficients ``c_0, …, c_d`` of ``Σ_j c_j t^j`` (lowest power first).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    degree = _check_degree(degree)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x, y: expected two 1-D arrays of equal length, got shapes {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("x: need at least one training point")
    design = np.vander(_rescale(x, domain), degree + 1, increasing=True)  # (n, d + 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef


def polynomial_predict(
    coef: np.ndarray, x: np.ndarray, *, domain: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Evaluate ``Σ_j c_j t^j`` at ``x`` (rescaled with the same ``domain`` as in :func:`polynomial_fit`).

    Args:
        coef: ``(d + 1,)`` coefficients, lowest power first.
        x: ``(m,)`` inputs.

    Returns:
        ``(m,)`` predictions.
    """
    coef = np.asarray(coef, dtype=np.float64)
    if coef.ndim != 1 or coef.size == 0:
        raise ValueError(f"coef: expected a non-empty 1-D array, got shape {coef.shape}")
    return np.polynomial.polynomial.polyval(_rescale(np.asarray(x, dtype=np.float64), domain), coef)


def bias_variance(
    fit_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    f: Callable[[np.ndarray], np.ndarray],
    sigma: float,
    x_test: np.ndarray,
    n_train: int,
    n_rep: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Monte-Carlo bias–variance decomposition of the expected squared error of a fitting procedure.

    Model: ``y = f(x) + ε`` with ``ε ~ N(0, σ²)`` independent of everything else. Each of ``n_rep``
    repetitions draws, from ``rng`` and in this order, a training set — ``x ~ Uniform(0, 1)``
    (``n_train`` points), then their noise — fits it, ``ŷ_r = fit_fn(x_train, y_train, x_test)``, and
    draws fresh test noise to measure the test MSE directly. With ``ȳ = mean_r ŷ_r``, averaged over
    the test inputs:

    * ``bias2 = mean_x (f(x) - ȳ(x))²``;
    * ``variance = mean_x mean_r (ŷ_r(x) - ȳ(x))²``;
    * ``noise = σ²``;
    * ``expected_mse = mean_x mean_r (y_r(x) - ŷ_r(x))²`` with fresh noisy test targets ``y_r``.

    ``E[(y - ŷ)²] = bias² + variance + σ²`` exactly in expectation; in a simulation the two sides
    differ by ``mean[(ε² - σ²) + 2ε(f - ŷ)]``, a mean of zero-mean terms whose standard error is
    returned as ``mse_se`` — compare ``|bias2 + variance + noise - expected_mse|`` with a few of them.

    Args:
        fit_fn: ``fit_fn(x_train (n,), y_train (n,), x_test (m,)) -> predictions (m,)``.
        f: the true regression function, vectorized over a 1-D array.
        sigma: noise standard deviation ``σ ≥ 0``.
        x_test: ``(m,)`` test inputs.
        n_train: training-set size.
        n_rep: number of resampled training sets.
        rng: the random generator (the same state gives the same result).

    Returns:
        ``{"bias2", "variance", "noise", "expected_mse", "mse_se"}`` as floats.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    for name, value in (("n_train", n_train), ("n_rep", n_rep)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if n_rep < 2:
        raise ValueError(f"n_rep: need at least 2 repetitions to measure a variance, got {n_rep}")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma: expected a finite number >= 0, got {sigma!r}")
    x_test = np.asarray(x_test, dtype=np.float64)
    if x_test.ndim != 1 or x_test.size == 0:
        raise ValueError(f"x_test: expected a non-empty 1-D array, got shape {x_test.shape}")
    f_test = np.asarray(f(x_test), dtype=np.float64)
    preds = np.empty((n_rep, x_test.size))
    residual_terms = np.empty((n_rep, x_test.size))  # (ε² - σ²) + 2ε(f - ŷ): zero-mean, for the SE
    sq_errors = np.empty((n_rep, x_test.size))
    for r in range(n_rep):
        x_train = rng.uniform(0.0, 1.0, n_train)
        y_train = f(x_train) + sigma * rng.standard_normal(n_train)
        pred = np.asarray(fit_fn(x_train, y_train, x_test), dtype=np.float64)
        if pred.shape != x_test.shape:
            raise ValueError(f"fit_fn: expected predictions of shape {x_test.shape}, got {pred.shape}")
        eps_test = sigma * rng.standard_normal(x_test.size)  # fresh test noise, independent of training
        preds[r] = pred
        sq_errors[r] = (f_test + eps_test - pred) ** 2
        residual_terms[r] = eps_test**2 - sigma**2 + 2 * eps_test * (f_test - pred)
    mean_pred = preds.mean(axis=0)
    bias2 = float(np.mean((f_test - mean_pred) ** 2))
    variance = float(np.mean(preds.var(axis=0)))  # ddof = 0 makes mean_r (f - ŷ_r)² = bias² + variance exact
    # Repetitions are independent; test points within one repetition share the training set, so the
    # standard error is taken over the per-repetition means.
    per_rep = residual_terms.mean(axis=1)
    mse_se = float(per_rep.std(ddof=1) / math.sqrt(n_rep))
    return {
        "bias2": bias2,
        "variance": variance,
        "noise": float(sigma) ** 2,
        "expected_mse": float(sq_errors.mean()),
        "mse_se": mse_se,
    }
