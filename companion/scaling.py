"""Scaling laws (扩展法则): the Chinchilla parametric loss, its compute-optimal allocation, IsoFLOP
curves, training-FLOP counting, the Kaplan laws, data-constrained scaling, and fitting the
parametric law to your own runs.

The parametric law of Hoffmann et al., "Training Compute-Optimal Large Language Models" (2022),
Eq. (2), predicts the final loss (nats per token) of a model with ``N`` parameters trained on ``D``
tokens::

    L(N, D) = E + A / N**alpha + B / D**beta

Minimising it under the compute constraint ``C = 6·N·D`` (their Eq. (4); derived in the chapter with
a Lagrange multiplier) gives::

    N_opt = G · (C/6)**a,   D_opt = (C/6)**b / G,
    a = beta / (alpha + beta),   b = alpha / (alpha + beta),   G = (alpha·A / (beta·B))**(1/(alpha + beta))

:func:`fit_parametric` estimates ``(E, A, B, alpha, beta)`` from runs ``(N_i, D_i, L_i)`` as in the
paper's Approach 3 (§3.3 and Appendix D.2): minimise the Huber loss (δ = 1e-3) between the predicted
and observed *log* loss, with the prediction written as a log-sum-exp of ``(a − alpha·log N,
b − beta·log D, e)`` where ``A = exp(a)``, ``B = exp(b)``, ``E = exp(e)``, by L-BFGS started from a
grid of initialisations.

Every function works on floats and on numpy arrays (broadcasting), in float64.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp  # huber(delta, r): the Huber loss of the Losses chapter

__all__ = [
    "BESIROGLU_REFIT",
    "BESIROGLU_REFIT_SE",
    "CHINCHILLA_MODEL",
    "HOFFMANN_ROUNDED",
    "HOFFMANN_UNROUNDED",
    "KAPLAN",
    "PAPER_INIT_GRID",
    "PF_DAY",
    "TABLE2_EXPONENT_A",
    "TABLE3",
    "ChinchillaParams",
    "allocation_constant",
    "bootstrap_fit",
    "chinchilla_loss",
    "compute_optimal",
    "effective_data",
    "fit_parametric",
    "huber_objective_and_grad",
    "isoflop_curve",
    "kaplan_loss_d",
    "kaplan_loss_n",
    "kaplan_optimal_n",
    "optimal_exponents",
    "parametric_objective",
    "training_flops",
]

ArrayLike = float | np.ndarray


class ChinchillaParams(NamedTuple):
    """The five constants of ``L(N, D) = E + A/N^alpha + B/D^beta``.

    A ``NamedTuple``: unpack it as ``E, A, B, alpha, beta = params`` or read the fields by name.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    @property
    def a(self) -> float:
        """Exponent of ``N_opt ∝ C^a``: ``beta / (alpha + beta)``."""
        return optimal_exponents(self.alpha, self.beta)[0]

    @property
    def b(self) -> float:
        """Exponent of ``D_opt ∝ C^b``: ``alpha / (alpha + beta)``."""
        return optimal_exponents(self.alpha, self.beta)[1]

    @property
    def G(self) -> float:
        """``(alpha·A / (beta·B))^(1/(alpha+beta))``, the constant of the allocation."""
        return allocation_constant(self.A, self.B, self.alpha, self.beta)

    def loss(self, N: ArrayLike, D: ArrayLike) -> ArrayLike:
        """``L(N, D)`` with these constants (see :func:`chinchilla_loss`)."""
        return chinchilla_loss(N, D, *self)

    def optimal(self, C: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
        """``(N_opt, D_opt)`` for a budget of ``C`` FLOPs (see :func:`compute_optimal`)."""
        return compute_optimal(C, self.A, self.B, self.alpha, self.beta)


#: The constants as printed in Hoffmann et al. (2022), section 3.3 (E = 1.69, A = 406.4, B = 410.7,
#: alpha = 0.34, beta = 0.28), in nats per token on MassiveText with their tokenizer.
HOFFMANN_ROUNDED = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

#: The same fit with the exponents and E to four decimals, as in the paper's TeX source according to
#: Besiroglu et al. (2024), who list them beside their refit (A and B as printed).
#: Checked against independent public transcriptions of that table, among them the analysis script
#: of Pearce and Song (2024).
HOFFMANN_UNROUNDED = ChinchillaParams(E=1.6934, A=406.4, B=410.7, alpha=0.3392, beta=0.2849)

#: The refit of Besiroglu, Erdil, Barnett and You (2024, Table 1 of arXiv 2404.10102) to runs
#: reconstructed from Hoffmann et al.'s figure ("Chinchilla Scaling: A replication attempt"), to every
#: printed digit. The PDF itself was not reachable from the book's build machines: the values are those on
#: which several independent public transcriptions of Table 1 agree (among them the analysis script
#: of Pearce and Song, 2024), and they reproduce the paper's printed a = beta/(alpha + beta) = 0.5126.
BESIROGLU_REFIT = ChinchillaParams(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)

#: The standard errors Besiroglu et al. (2024) print next to the refit in their Table 1 (same
#: provenance as ``BESIROGLU_REFIT``): A is uncertain to 26%, B to 62%, the exponents to about 0.02.
BESIROGLU_REFIT_SE: dict[str, float] = {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02}

#: Rows (parameters, training tokens, training FLOPs) of Table 3 (Approach 1) of Hoffmann et al. (2022).
TABLE3: tuple[tuple[float, float, float], ...] = (
    (400e6, 8.0e9, 1.92e19),
    (1e9, 20.2e9, 1.21e20),
    (10e9, 205.1e9, 1.23e22),
    (67e9, 1.5e12, 5.76e23),
)

#: The exponent ``a`` of ``N_opt ∝ C^a`` from each approach in Table 2 of Hoffmann et al. (2022), and
#: Kaplan et al.'s.
TABLE2_EXPONENT_A: dict[str, float] = {
    "approach 1": 0.50,
    "approach 2": 0.49,
    "approach 3": 0.46,
    "kaplan": 0.73,
}

#: Chinchilla itself, 70B parameters trained on 1.4T tokens.
CHINCHILLA_MODEL: tuple[float, float] = (70e9, 1.4e12)

#: One petaflop/s-day in FLOPs, 1e15 · 86 400.
PF_DAY = 1e15 * 24 * 3600

#: The constants of Kaplan et al. (2020), ``L(N) = (N_c/N)^alpha_N`` and ``L(D) = (D_c/D)^alpha_D``
#: (N counts non-embedding parameters), and the compute-efficient model size
#: ``N_opt = N_e · (C_min / PF-day)^p_N`` of their Table 6.
KAPLAN: dict[str, float] = {
    "alpha_N": 0.076,
    "N_c": 8.8e13,
    "alpha_D": 0.095,
    "D_c": 5.4e13,
    "p_N": 0.73,
    "N_e": 1.3e9,
}

#: The 4 500 initialisations of Hoffmann et al. (2022, Appendix D.2), alpha and beta in {0, 0.5, …, 2},
#: e in {-1, -0.5, …, 1}, a and b in {0, 5, …, 25}, as tuples (a, b, e, alpha, beta).
PAPER_INIT_GRID: tuple[tuple[float, ...], ...] = tuple(
    itertools.product(
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),  # a = log A
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),  # b = log B
        (-1.0, -0.5, 0.0, 0.5, 1.0),  # e = log E
        (0.0, 0.5, 1.0, 1.5, 2.0),  # alpha
        (0.0, 0.5, 1.0, 1.5, 2.0),  # beta
    )
)


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _positive(name: str, value: ArrayLike) -> np.ndarray:
    """``value`` as a float64 array, every element finite and > 0, else ValueError naming ``name``."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{name}: expected a number or an array of numbers, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: expected a number or an array of numbers, got {type(value).__name__}"
        ) from None
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one value, got an empty array")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        raise ValueError(f"{name}: expected finite values > 0, got {arr[bad].flat[0]!r}")
    return arr


def _out(x: np.ndarray) -> ArrayLike:
    """Return a Python float for 0-d results, an array otherwise."""
    return float(x) if np.ndim(x) == 0 else x


# --------------------------------------------------------------------------------------------------
# The parametric law and its optimum
# --------------------------------------------------------------------------------------------------


def chinchilla_loss(
    N: ArrayLike, D: ArrayLike, E: float, A: float, B: float, alpha: float, beta: float
) -> ArrayLike:
    """The Chinchilla parametric loss ``L(N, D) = E + A/N^alpha + B/D^beta`` (Hoffmann et al., Eq. 2).

    Args:
        N: parameters (> 0), a float or an array.
        D: training tokens (> 0), broadcastable with ``N``.
        E: the irreducible loss (不可约损失), in nats per token (≥ 0).
        A, B, alpha, beta: the constants of the model-size and data terms (> 0).

    Returns:
        The predicted loss, a float or an array of the broadcast shape of ``N`` and ``D``.
    """
    n, d = _positive("N", N), _positive("D", D)
    for name, value in (("A", A), ("B", B), ("alpha", alpha), ("beta", beta)):
        _positive(name, value)
    if not (isinstance(E, (int, float, np.floating)) and math.isfinite(E) and E >= 0):
        raise ValueError(f"E: expected a finite number >= 0, got {E!r}")
    return _out(E + A / n**alpha + B / d**beta)


def optimal_exponents(alpha: float, beta: float) -> tuple[float, float]:
    """``(a, b) = (beta/(alpha+beta), alpha/(alpha+beta))``: ``N_opt ∝ C^a`` and ``D_opt ∝ C^b``."""
    _positive("alpha", alpha)
    _positive("beta", beta)
    return beta / (alpha + beta), alpha / (alpha + beta)


def allocation_constant(A: float, B: float, alpha: float, beta: float) -> float:
    """``G = (alpha·A / (beta·B))^(1/(alpha+beta))`` of ``N_opt = G·(C/6)^a``."""
    for name, value in (("A", A), ("B", B), ("alpha", alpha), ("beta", beta)):
        _positive(name, value)
    return float((alpha * A / (beta * B)) ** (1.0 / (alpha + beta)))


def compute_optimal(
    C: ArrayLike, A: float, B: float, alpha: float, beta: float
) -> tuple[ArrayLike, ArrayLike]:
    """The compute-optimal (计算最优) allocation of ``C`` training FLOPs under ``C = 6·N·D``.

    Setting the derivative of ``L(N, C/(6N))`` to zero gives ``alpha·A·N^-alpha = beta·B·(6N/C)^beta``,
    hence ``N_opt = G·(C/6)^a`` and ``D_opt = G^-1·(C/6)^b`` (Hoffmann et al., Eq. 4). ``E`` does not
    enter. ``6·N_opt·D_opt = C`` exactly, since ``a + b = 1``.

    Args:
        C: training FLOPs (> 0), a float or an array.
        A, B, alpha, beta: the constants of the parametric law (> 0).

    Returns:
        ``(N_opt, D_opt)``, floats or arrays shaped like ``C``.

    Raises:
        ValueError: if some ``C <= 0`` (or is not finite), or a constant is not > 0.
    """
    c = _positive("C", C)
    a, b = optimal_exponents(alpha, beta)
    g = allocation_constant(A, B, alpha, beta)
    return _out(g * (c / 6.0) ** a), _out((c / 6.0) ** b / g)


def isoflop_curve(C: float, N: ArrayLike, params: ChinchillaParams) -> tuple[ArrayLike, ArrayLike]:
    """Tokens and loss along the IsoFLOP curve of budget ``C``: ``D = C/(6N)``, ``L(N, D)``.

    Args:
        C: the budget in FLOPs (> 0).
        N: model sizes to evaluate (> 0).
        params: the constants of the law.

    Returns:
        ``(D, L)``, each shaped like ``N``.
    """
    c = _positive("C", C)
    if c.ndim:
        raise ValueError(f"C: expected one budget (a scalar), got shape {c.shape}")
    n = _positive("N", N)
    d = float(c) / (6.0 * n)
    return _out(d), _out(np.asarray(params.loss(n, d)))


# --------------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------------


def training_flops(
    n_params: ArrayLike,
    n_tokens: ArrayLike,
    *,
    n_layer: int = 0,
    seq_len: int = 0,
    d_attn: int = 0,
) -> ArrayLike:
    """Training FLOPs: ``D · (6·N + 12·n_layer·seq_len·d_attn)``.

    Every weight takes part in one multiply–accumulate (2 FLOPs) per token in the forward pass and in
    two in the backward pass (the gradients with respect to the input and to the weight): ``6N`` per
    token. Attention adds the products ``QKᵀ`` and ``AV``, ``2·seq_len·d_attn`` multiply–accumulates
    per token and layer in the forward pass, three times that with the backward pass. Kaplan et al.
    (2020, §2.1) keep only ``6N`` (``C ≈ 6ND``), because the attention term is small when
    ``d_model ≫ seq_len/12``. With the default ``n_layer = 0`` this is ``6ND``.

    Args:
        n_params: ``N``, the parameters that take part in matrix products (> 0).
        n_tokens: ``D``, training tokens (> 0).
        n_layer: transformer layers (≥ 0), for the attention term.
        seq_len: context length the model is trained at (≥ 0).
        d_attn: total width of the attention heads, ``n_head · d_head`` (≥ 0).

    Returns:
        The FLOPs, a float or an array.
    """
    n, d = _positive("n_params", n_params), _positive("n_tokens", n_tokens)
    for name, value in (("n_layer", n_layer), ("seq_len", seq_len), ("d_attn", d_attn)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    return _out(d * (6.0 * n + 12.0 * n_layer * seq_len * d_attn))


# --------------------------------------------------------------------------------------------------
# Kaplan et al. (2020)
# --------------------------------------------------------------------------------------------------


def kaplan_loss_n(N: ArrayLike) -> ArrayLike:
    """Kaplan's ``L(N) = (N_c/N)^alpha_N`` for models trained to convergence (N: non-embedding params)."""
    return _out((KAPLAN["N_c"] / _positive("N", N)) ** KAPLAN["alpha_N"])


def kaplan_loss_d(D: ArrayLike) -> ArrayLike:
    """Kaplan's ``L(D) = (D_c/D)^alpha_D`` for large models trained with early stopping on ``D`` tokens."""
    return _out((KAPLAN["D_c"] / _positive("D", D)) ** KAPLAN["alpha_D"])


def kaplan_optimal_n(C: ArrayLike) -> ArrayLike:
    """Kaplan's compute-efficient model size ``N_opt = 1.3e9 · (C / PF-day)^0.73`` (their Table 6).

    Args:
        C: the compute budget in FLOPs (> 0).

    Returns:
        Non-embedding parameters, a float or an array.
    """
    return _out(KAPLAN["N_e"] * (_positive("C", C) / PF_DAY) ** KAPLAN["p_N"])


# --------------------------------------------------------------------------------------------------
# Data-constrained scaling (Muennighoff et al., 2023)
# --------------------------------------------------------------------------------------------------


def effective_data(unique_tokens: ArrayLike, repetitions: ArrayLike, r_star: float = 15.4) -> ArrayLike:
    """Effective data ``D' = U + U·R*·(1 − exp(−R/R*))`` of ``U`` unique tokens seen ``1 + R`` times.

    From Muennighoff et al., "Scaling Data-Constrained Language Models" (2023), Eq. 5, with their
    fitted ``R* ≈ 15.4``: the first few repetitions are worth almost as much as new data, and the
    value of repeating saturates at ``U·(1 + R*)``.

    Args:
        unique_tokens: ``U`` (> 0).
        repetitions: ``R`` ≥ 0, the number of *extra* epochs (4 epochs: ``R = 3``).
        r_star: ``R*`` (> 0).
    """
    u = _positive("unique_tokens", unique_tokens)
    r = np.asarray(repetitions, dtype=np.float64)
    if not (np.isfinite(r).all() and (r >= 0).all()):
        raise ValueError(f"repetitions: expected finite values >= 0, got {repetitions!r}")
    _positive("r_star", r_star)
    return _out(u + u * r_star * (1.0 - np.exp(-r / r_star)))


# --------------------------------------------------------------------------------------------------
# Fitting the parametric law (Hoffmann et al., Approach 3)
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run L-BFGS with one BLAS thread: its tiny matrix products are many times slower when
    OpenBLAS wakes several threads for each (measured 30× on a busy 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn, not with scipy
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _runs_array(runs: object) -> np.ndarray:
    """``runs`` as an ``(n, 3)`` float64 array of ``(N, D, L)`` with every entry finite and > 0."""
    if isinstance(runs, Mapping):
        raise TypeError("runs: expected a sequence of (N, D, L) triples or an (n, 3) array, got a mapping")
    try:
        arr = np.asarray(list(runs) if not isinstance(runs, np.ndarray) else runs, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("runs: expected a sequence of (N, D, L) triples or an (n, 3) array") from None
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"runs: expected shape (n, 3) of (N, D, L) rows, got {arr.shape}")
    if arr.shape[0] < 5:
        raise ValueError(f"runs: need at least 5 runs to fit 5 constants, got {arr.shape[0]}")
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError("runs: every N, D and L must be finite and > 0")
    return arr


def huber_objective_and_grad(
    theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float
) -> tuple[float, np.ndarray]:
    """Huber objective (divided by ``delta``) and its gradient in ``theta = (a, b, e, alpha, beta)``.

    The objective :func:`fit_parametric` minimizes with L-BFGS, in log space: the predicted log-loss is
    ``logsumexp(a − α·log N, b − β·log D, e)`` (so ``A = e^a``, ``B = e^b``, ``E = e^e``) and each run adds
    ``huber_δ(prediction − log L) / δ``.

    Args:
        theta: ``(5,)`` the point ``(a, b, e, alpha, beta)``.
        log_n, log_d, log_l: ``(n,)`` logs of the runs' parameters, tokens and losses.
        delta: the Huber threshold ``δ``.

    Returns:
        ``(objective, gradient (5,))``.
    """
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])  # (3, n)
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    lse = top + np.log(total)  # log L̂ = log(A/N^α + B/D^β + E), computed stably
    w /= total  # softmax weights: ∂ lse / ∂ term
    r = lse - log_l
    absr = np.abs(r)
    psi = np.clip(r, -delta, delta) / delta  # Huber'(r) / delta
    value = float(np.sum(np.where(absr <= delta, 0.5 * r * r, delta * (absr - 0.5 * delta)))) / delta
    grad = np.array(
        [
            np.sum(psi * w[0]),
            np.sum(psi * w[1]),
            np.sum(psi * w[2]),
            np.sum(psi * w[0] * -log_n),
            np.sum(psi * w[1] * -log_d),
        ]
    )
    return value, grad


def parametric_objective(params: ChinchillaParams, runs: object, delta: float = 1e-3) -> float:
    """``Σ_i Huber_δ(log L̂(N_i, D_i) − log L_i)``, the quantity Approach 3 minimises (Hoffmann et al., Eq. 3).

    Args:
        params: the constants to evaluate.
        runs: ``(N, D, L)`` triples, an ``(n, 3)`` array-like.
        delta: the Huber threshold.
    """
    _positive("delta", delta)
    arr = _runs_array(runs)
    p = ChinchillaParams(*params)
    pred = np.log(np.asarray(p.loss(arr[:, 0], arr[:, 1])))
    return float(np.sum(huber(delta, pred - np.log(arr[:, 2]))))


def fit_parametric(
    runs: object,
    *,
    delta: float = 1e-3,
    init_grid: Iterable[tuple[float, float, float, float, float]] | None = None,
    n_starts: int | None = 8,
) -> ChinchillaParams:
    """Fit ``L(N, D) = E + A/N^alpha + B/D^beta`` to runs, as Approach 3 of Hoffmann et al. (2022).

    Minimises ``Σ_i Huber_δ(LSE(a − alpha·log N_i, b − beta·log D_i, e) − log L_i)`` over
    ``(a, b, e, alpha, beta)`` with L-BFGS (``A = e^a``, ``B = e^b``, ``E = e^e``; the log-sum-exp
    ``LSE`` is ``log L̂``), from a grid of initialisations, keeping the best optimum (their Eq. 3 and
    Appendix D.2). Two practical choices, neither of which changes the minimiser:

    * the objective is divided by ``delta`` and L-BFGS runs with tight tolerances. With δ = 1e-3 the
      raw objective is tiny, and an optimiser with default stopping rules halts before it converges —
      the problem Besiroglu et al. (2024) found in the published fit;
    * the objective is first evaluated at every grid point, and L-BFGS starts from the ``n_starts``
      best (``None``: from every point, as in the paper, about 50× slower).

    Args:
        runs: ``(N, D, L)`` triples (parameters, tokens, final loss in nats), at least 5.
        delta: the Huber threshold (the paper's 1e-3).
        init_grid: ``(a, b, e, alpha, beta)`` starting points; None (default) means the paper's 4 500
            (``PAPER_INIT_GRID``).
        n_starts: how many of the best grid points to refine (None: all).

    Returns:
        The fitted :class:`ChinchillaParams`.
    """
    arr = _runs_array(runs)
    _positive("delta", delta)
    # A None default keeps the 4 500-row grid out of the signature (and out of the rendered API page).
    grid = np.asarray(list(PAPER_INIT_GRID if init_grid is None else init_grid), dtype=np.float64)
    if grid.ndim != 2 or grid.shape[1] != 5 or len(grid) == 0:
        raise ValueError(f"init_grid: expected (a, b, e, alpha, beta) rows, got shape {grid.shape}")
    if n_starts is not None and (isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1):
        raise ValueError(f"n_starts: expected None or an int >= 1, got {n_starts!r}")
    log_n, log_d, log_l = np.log(arr[:, 0]), np.log(arr[:, 1]), np.log(arr[:, 2])

    if n_starts is not None and n_starts < len(grid):
        # vectorised objective at every grid point: (n_grid, 3, n_runs) terms
        g = grid[:, :, None]
        e_terms = np.broadcast_to(g[:, 2], (len(grid), len(log_n)))
        terms = np.stack([g[:, 0] - g[:, 3] * log_n, g[:, 1] - g[:, 4] * log_d, e_terms], axis=1)
        values = np.sum(huber(delta, logsumexp(terms, axis=1) - log_l), axis=1)
        starts = grid[np.argsort(values, kind="stable")[:n_starts]]
    else:
        starts = grid

    best_value, best_theta = math.inf, None
    with _one_blas_thread():
        for theta0 in starts:
            res = minimize(
                huber_objective_and_grad,
                theta0,
                args=(log_n, log_d, log_l, delta),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-10},
            )
            if np.isfinite(res.fun) and res.fun < best_value:
                best_value, best_theta = float(res.fun), res.x
    if best_theta is None:  # pragma: no cover - every start diverged
        raise RuntimeError("fit_parametric: L-BFGS failed from every initialisation")
    a, b, e, alpha, beta = (float(x) for x in best_theta)
    return ChinchillaParams(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta)


def bootstrap_fit(
    runs: object,
    n_boot: int = 200,
    *,
    seed: int = 0,
    delta: float = 1e-3,
    n_starts: int | None = 4,
) -> np.ndarray:
    """Refit on ``n_boot`` resamples of the runs (with replacement): uncertainty of the constants.

    Args:
        runs: ``(N, D, L)`` triples.
        n_boot: number of bootstrap resamples.
        seed: seed of the ``numpy.random.Generator`` that draws the resamples.
        delta, n_starts: passed to :func:`fit_parametric`.

    Returns:
        ``(n_boot, 5)`` array; columns ``E, A, B, alpha, beta``. Percentiles of a column give a
        bootstrap interval, e.g. ``np.percentile(out[:, 3], [5, 95])`` for alpha.
    """
    arr = _runs_array(runs)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot: expected a positive int, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, 5))
    for i in range(n_boot):
        idx = rng.integers(0, len(arr), len(arr))
        while len(np.unique(idx)) < 5:  # five constants need five distinct runs
            idx = rng.integers(0, len(arr), len(arr))
        out[i] = fit_parametric(arr[idx], delta=delta, n_starts=n_starts)
    return out
