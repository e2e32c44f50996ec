"""Exercises of the Scaling laws chapter (``notebooks/llm/scaling-laws.ipynb``).

Every check compares the candidate with an independent computation — the formula evaluated inline in
float64, ``scipy.optimize.minimize_scalar`` along ``C = 6ND``, known parameters that generated
synthetic runs — or with a property the construction guarantees (the token budget, the repeated
subset, the held-out split).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from companion.grading.checks import expect, expect_raises
from companion.grading.registry import Exercise, register
from companion.scaling import (
    BESIROGLU_REFIT,
    HOFFMANN_ROUNDED,
    HOFFMANN_UNROUNDED,
    chinchilla_loss,
    compute_optimal,
    fit_parametric,
)
from companion.train.budget import repeat_epochs, train_on_stream

# --------------------------------------------------------------------------------------------------
# scaling-laws.chinchilla
# --------------------------------------------------------------------------------------------------

CHINCHILLA = register(
    Exercise(
        id="scaling-laws.chinchilla",
        title="The Chinchilla law: loss, compute-optimal allocation and fit",
        names=("chinchilla_loss", "compute_optimal", "fit_parametric"),
        references=(chinchilla_loss, compute_optimal, fit_parametric),
        signature='''def chinchilla_loss(N, D, E, A, B, alpha, beta):
    """L(N, D) = E + A / N**alpha + B / D**beta, for floats or numpy arrays (broadcasting)."""

def compute_optimal(C, A, B, alpha, beta):
    """(N_opt, D_opt) minimising L(N, D) subject to 6·N·D = C (C a float or an array, > 0).
    N_opt = G·(C/6)**a, D_opt = (C/6)**b / G with a = beta/(alpha+beta), b = alpha/(alpha+beta),
    G = (alpha·A / (beta·B))**(1/(alpha+beta)). Raise ValueError if some C <= 0."""

def fit_parametric(runs):
    """Fit (E, A, B, alpha, beta) to runs, an (n, 3) array of (N, D, L) rows, as Hoffmann et al.'s
    Approach 3: minimise sum_i Huber_1e-3(log L_hat(N_i, D_i) - log L_i) with L-BFGS from several
    starting points. Return (E, A, B, alpha, beta): a tuple, a NamedTuple such as
    companion.scaling.ChinchillaParams, or a dict with those keys."""''',
        hint=(
            "set dL/dN = 0 along D = C/(6N): alpha·A·N^-alpha = beta·B·(6N/C)^beta. For the fit, work in "
            "log space (a = log A, b = log B, e = log E) and mind the optimiser's stopping tolerances."
        ),
    )
)

_SETS = {"rounded": HOFFMANN_ROUNDED, "unrounded": HOFFMANN_UNROUNDED, "refit": BESIROGLU_REFIT}


def _as_params(result: Any) -> tuple[float, float, float, float, float]:
    """Read (E, A, B, alpha, beta) from a tuple, a NamedTuple or a mapping."""
    if isinstance(result, Mapping):
        missing = [k for k in ("E", "A", "B", "alpha", "beta") if k not in result]
        expect(not missing, f"fit_parametric returned a dict without the key(s) {missing}")
        return tuple(float(result[k]) for k in ("E", "A", "B", "alpha", "beta"))  # type: ignore[return-value]
    expect(
        isinstance(result, (tuple, list)) and len(result) == 5,
        f"fit_parametric must return (E, A, B, alpha, beta), got {type(result).__name__}",
    )
    return tuple(float(x) for x in result)  # type: ignore[return-value]


def _optimal(compute_optimal, c, p):
    result = compute_optimal(c, p.A, p.B, p.alpha, p.beta)
    expect(
        isinstance(result, tuple) and len(result) == 2,
        f"compute_optimal must return a tuple (N_opt, D_opt), got {type(result).__name__}",
    )
    return float(result[0]), float(result[1])


@CHINCHILLA.check("chinchilla_loss matches E + A/N^alpha + B/D^beta (float64, rtol 1e-10), also on arrays")
def _loss_formula(chinchilla_loss, compute_optimal, fit_parametric):
    rng = np.random.default_rng(0)
    n = 10 ** rng.uniform(6, 12, 7)
    d = 10 ** rng.uniform(8, 13, 7)
    for name, p in _SETS.items():
        got = np.asarray(chinchilla_loss(n, d, *p), dtype=np.float64)
        want = p.E + p.A / n**p.alpha + p.B / d**p.beta
        expect(got.shape == want.shape, f"{name}: expected an array of shape {want.shape}, got {got.shape}")
        expect(np.allclose(got, want, rtol=1e-10, atol=0), f"{name}: expected {want[:3]}…, got {got[:3]}…")
    one = float(chinchilla_loss(70e9, 1.4e12, *HOFFMANN_ROUNDED))
    want = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28
    expect(
        math.isclose(one, want, rel_tol=1e-10),
        f"L(70B, 1.4T) with the rounded constants: expected {want:.6f}, got {one:.6f}",
    )


@CHINCHILLA.check("compute_optimal equals the numerical minimum of L along C = 6ND (rtol 1e-4)")
def _closed_vs_numeric(chinchilla_loss, compute_optimal, fit_parametric):
    for name, p in _SETS.items():
        for c in (1e18, 5.76e23, 1e26):
            n_opt, d_opt = _optimal(compute_optimal, c, p)
            res = minimize_scalar(
                lambda log_n, c=c, p=p: (
                    p.E + p.A * math.exp(-p.alpha * log_n) + p.B * (c / (6 * math.exp(log_n))) ** -p.beta
                ),
                bounds=(math.log(1e3), math.log(c / 6 / 1e3)),
                method="bounded",
                options={"xatol": 1e-10},
            )
            n_num = math.exp(res.x)
            expect(
                math.isclose(n_opt, n_num, rel_tol=1e-4),
                f"{name}, C = {c:.3g}: numerical minimum at N = {n_num:.6g}, "
                f"compute_optimal gives {n_opt:.6g}",
            )
            expect(
                math.isclose(6 * n_opt * d_opt, c, rel_tol=1e-10),
                f"{name}, C = {c:.3g}: 6·N·D = {6 * n_opt * d_opt:.6g} != C",
            )


@CHINCHILLA.check(
    "exponent a = 0.4516 (rounded), 0.4565 (unrounded), 0.5126 (refit); N_opt(5.76e23) = 3.22e10"
)
def _exponents(chinchilla_loss, compute_optimal, fit_parametric):
    refit = ("refit", 0.3658 / (0.3478 + 0.3658))
    for name, want in (("rounded", 0.28 / 0.62), ("unrounded", 0.2849 / 0.6241), refit):
        p = _SETS[name]
        n1, _ = _optimal(compute_optimal, 1e20, p)
        n2, _ = _optimal(compute_optimal, 1e24, p)
        a = math.log(n2 / n1) / math.log(1e4)
        expect(abs(a - want) < 1e-6, f"{name}: N_opt ∝ C^a with a = {want:.4f} expected, got a = {a:.4f}")
    n, d = _optimal(compute_optimal, 5.76e23, HOFFMANN_ROUNDED)
    expect(
        abs(n / 3.219e10 - 1) < 1e-3, f"rounded constants at C = 5.76e23: expected N ≈ 3.219e10, got {n:.4g}"
    )
    expect(
        abs(d / 2.982e12 - 1) < 1e-3, f"rounded constants at C = 5.76e23: expected D ≈ 2.982e12, got {d:.4g}"
    )


@CHINCHILLA.check("compute_optimal works element-wise on an array of budgets")
def _array_budgets(chinchilla_loss, compute_optimal, fit_parametric):
    c = np.array([1e19, 1e21, 1e23])
    p = HOFFMANN_ROUNDED
    result = compute_optimal(c, p.A, p.B, p.alpha, p.beta)
    expect(isinstance(result, tuple) and len(result) == 2, "compute_optimal must return (N_opt, D_opt)")
    n, d = (np.asarray(x, dtype=np.float64) for x in result)
    expect(n.shape == (3,) and d.shape == (3,), f"expected arrays of shape (3,), got {n.shape} and {d.shape}")
    g = (p.alpha * p.A / (p.beta * p.B)) ** (1 / (p.alpha + p.beta))
    want = g * (c / 6) ** (p.beta / (p.alpha + p.beta))
    expect(np.allclose(n, want, rtol=1e-10), f"N_opt: expected {want}, got {n}")


@CHINCHILLA.check("compute_optimal raises ValueError for C <= 0")
def _bad_budget(chinchilla_loss, compute_optimal, fit_parametric):
    p = HOFFMANN_ROUNDED
    for bad in (0.0, -1e20, np.array([1e20, 0.0])):
        expect_raises(
            ValueError, lambda bad=bad: compute_optimal(bad, p.A, p.B, p.alpha, p.beta), f"C = {bad!r}"
        )


def _synthetic_runs(p, noise: float, seed: int) -> np.ndarray:
    """64 runs on a log grid of N (1e7…1e11) × D (1e8…1e12), loss × exp(N(0, noise²))."""
    n, d = np.meshgrid(np.geomspace(1e7, 1e11, 8), np.geomspace(1e8, 1e12, 8))
    rng = np.random.default_rng(seed)
    loss = (p.E + p.A / n**p.alpha + p.B / d**p.beta) * np.exp(rng.normal(0.0, noise, n.shape))
    return np.stack([n.ravel(), d.ravel(), loss.ravel()], axis=1)


def _expect_recovered(fit, runs, p, rtol: float, what: str) -> None:
    got = _as_params(fit(runs))
    for name, g, w in zip(("E", "A", "B", "alpha", "beta"), got, p, strict=True):
        expect(abs(g / w - 1) <= rtol, f"{what}: {name} = {g:.6g}, expected {w:.6g} within {rtol:.0e}")


@CHINCHILLA.check("fit_parametric recovers the constants of noise-free runs of all three sets (rtol 1e-3)")
def _fit_exact(chinchilla_loss, compute_optimal, fit_parametric):
    # all three sets: an optimiser that stops early can get lucky on one data set, rarely on three
    for name, p in _SETS.items():
        _expect_recovered(fit_parametric, _synthetic_runs(p, 0.0, 0), p, 1e-3, f"noise-free runs ({name})")


@CHINCHILLA.check("fit_parametric recovers known constants within 5% from runs with 0.1% noise")
def _fit_noisy(chinchilla_loss, compute_optimal, fit_parametric):
    p = BESIROGLU_REFIT
    _expect_recovered(fit_parametric, _synthetic_runs(p, 1e-3, 1), p, 0.05, "runs with 0.1% noise")


# --------------------------------------------------------------------------------------------------
# scaling-laws.repetition
# --------------------------------------------------------------------------------------------------

REPETITION = register(
    Exercise(
        id="scaling-laws.repetition",
        title="Fixed-budget training on a repeated subset",
        names=("repeat_epochs",),
        references=(repeat_epochs,),
        signature='''def repeat_epochs(data, unique_frac, token_budget, *, train=None, val_frac=0.1):
    """Validation loss after training on exactly token_budget tokens, a fraction unique_frac unique.

    data: (n,) int64 token ids. The last int(val_frac * n) tokens are the validation split `val`
    (the same for every unique_frac); the rest is the training split.
    The stream: the first U = round(unique_frac * token_budget) training tokens, repeated and cut to
    exactly token_budget tokens (1/unique_frac epochs; unique_frac = 1: no repeats).
    Return float(train(stream, val)); train=None means
    companion.train.budget.train_on_stream (a tiny GPT, width 64).
    Raise ValueError if unique_frac is not in (0, 1], token_budget < 1, or U does not fit in the
    training split."""''',
        hint=(
            "split first (val = data[n - int(val_frac * n):]), then tile the first U training tokens "
            "with .repeat(ceil(token_budget / U)) and cut to token_budget."
        ),
    )
)


class _Spy:
    """A stand-in trainer that records what it was given and returns a cheap, deterministic loss:
    the cross-entropy of ``val`` under the add-one-smoothed unigram distribution of the stream."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, stream: torch.Tensor, val: torch.Tensor) -> float:
        self.calls.append((stream.clone(), val.clone()))
        counts = torch.bincount(stream, minlength=int(max(stream.max(), val.max())) + 1).double() + 1.0
        return float(-(counts / counts.sum()).log()[val].mean())


def _data(n: int = 5000, vocab: int = 13, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))


def _spy_call(repeat_epochs, data, unique_frac, budget, **kwargs):
    spy = _Spy()
    result = repeat_epochs(data, unique_frac, budget, train=spy, **kwargs)
    expect(len(spy.calls) == 1, f"train must be called exactly once, it was called {len(spy.calls)} times")
    stream, val = spy.calls[0]
    return result, stream, val, spy


@REPETITION.check("the stream has exactly token_budget tokens for every unique_frac")
def _budget(repeat_epochs):
    data = _data()
    for frac in (1.0, 0.5, 0.3, 0.25, 1 / 16):
        _, stream, _, _ = _spy_call(repeat_epochs, data, frac, 2000)
        expect(stream.ndim == 1, f"unique_frac={frac}: stream must be 1-D, got shape {tuple(stream.shape)}")
        expect(
            stream.numel() == 2000, f"unique_frac={frac}: expected 2000 training tokens, got {stream.numel()}"
        )


@REPETITION.check("unique_frac = 1 trains on the first token_budget training tokens, no repeats")
def _no_repeats(repeat_epochs):
    data = _data()
    _, stream, _, _ = _spy_call(repeat_epochs, data, 1.0, 3000)
    expect(torch.equal(stream, data[:3000]), "with unique_frac=1 the stream must be data[:token_budget]")


@REPETITION.check(
    "unique_frac = 1/k tiles the first U training tokens (also when 1/unique_frac is not an integer)"
)
def _tiled(repeat_epochs):
    data = _data()
    for frac, budget in ((0.25, 2000), (1 / 16, 1600), (0.3, 1000)):
        _, stream, _, _ = _spy_call(repeat_epochs, data, frac, budget)
        u = round(frac * budget)
        want = data[:u].repeat(math.ceil(budget / u))[:budget]
        expect(
            stream.numel() == budget and torch.equal(stream, want),
            f"unique_frac={frac}, budget={budget}: expected the first {u} tokens repeated to {budget} tokens",
        )


@REPETITION.check("the validation split is the last val_frac of data, identical for every unique_frac")
def _validation(repeat_epochs):
    data = _data()
    for val_frac in (0.1, 0.2):
        n_val = int(val_frac * data.numel())
        for frac in (1.0, 0.25):
            _, _, val, _ = _spy_call(repeat_epochs, data, frac, 1000, val_frac=val_frac)
            expect(
                torch.equal(val, data[-n_val:]),
                f"val_frac={val_frac}, unique_frac={frac}: val must be data[-{n_val}:]",
            )


@REPETITION.check("returns train's validation loss as a float")
def _returns(repeat_epochs):
    data = _data()
    result, stream, val, _ = _spy_call(repeat_epochs, data, 0.5, 1000)
    want = _Spy()(stream, val)
    expect(isinstance(result, float), f"expected a float, got {type(result).__name__}")
    expect(math.isclose(result, want, rel_tol=1e-12), f"expected train's value {want:.6f}, got {result}")


@REPETITION.check("bad unique_frac, token_budget or a subset too large raise ValueError")
def _errors(repeat_epochs):
    data = _data(1000)
    spy = _Spy()
    for frac, budget in ((0.0, 100), (1.5, 100), (-0.5, 100), (0.5, 0), (1.0, 950)):
        expect_raises(
            ValueError,
            lambda frac=frac, budget=budget: repeat_epochs(data, frac, budget, train=spy),
            f"unique_frac={frac}, token_budget={budget} (900 training tokens)",
        )


@REPETITION.check("the default trainer (a tiny GPT) returns a finite loss")
def _default_trainer(repeat_epochs):
    data = _data(30_000, vocab=11, seed=3)
    loss = repeat_epochs(data, 0.25, 2048)
    expect(isinstance(loss, float) and math.isfinite(loss), f"expected a finite float, got {loss!r}")
    stream = data[:512].repeat(4)
    want = train_on_stream(stream, data[-3000:], width=64)
    expect(
        math.isclose(loss, want, rel_tol=1e-6),
        f"expected the loss of train_on_stream on the stream, {want:.6f}, got {loss:.6f}",
    )
