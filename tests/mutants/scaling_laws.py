"""Plausible wrong answers to the Scaling laws chapter's exercises: each must fail at least one check."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

from companion.scaling import chinchilla_loss, compute_optimal, fit_parametric
from companion.train.budget import split_data

# --- scaling-laws.chinchilla ------------------------------------------------------------------------


def optimal_swapped_exponents(C, A, B, alpha, beta):
    """Swaps a and b: N_opt ∝ C^(alpha/(alpha+beta)) — the 0.548 mistaken for the 0.452."""
    c = np.asarray(C, dtype=np.float64)
    if (c <= 0).any():
        raise ValueError("C must be > 0")
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    a, b = alpha / (alpha + beta), beta / (alpha + beta)
    return g * (c / 6) ** a, (c / 6) ** b / g


def optimal_without_root(C, A, B, alpha, beta):
    """Forgets the power 1/(alpha+beta) in G."""
    c = np.asarray(C, dtype=np.float64)
    if (c <= 0).any():
        raise ValueError("C must be > 0")
    g = alpha * A / (beta * B)
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    return g * (c / 6) ** a, (c / 6) ** b / g


def optimal_without_six(C, A, B, alpha, beta):
    """Uses C instead of C/6 (as if C = N·D)."""
    c = np.asarray(C, dtype=np.float64)
    if (c <= 0).any():
        raise ValueError("C must be > 0")
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    return g * c**a, c**b / g


def optimal_no_validation(C, A, B, alpha, beta):
    """Right formula, but C <= 0 silently gives nan instead of an error."""
    c = np.asarray(C, dtype=np.float64)
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    with np.errstate(invalid="ignore"):
        return g * (c / 6) ** a, (c / 6) ** b / g


def loss_without_e(N, D, E, A, B, alpha, beta):
    """Drops the irreducible loss E."""
    return A / np.asarray(N, dtype=np.float64) ** alpha + B / np.asarray(D, dtype=np.float64) ** beta


def _huber(r, delta=1e-3):
    return np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))


def fit_default_tolerances(runs):
    """The published fit's problem (Besiroglu et al., 2024): the raw Huber objective (~1e-5) with the
    optimiser's default stopping rule, from a single start — L-BFGS stops long before the minimum."""
    runs = np.asarray(runs, dtype=np.float64)
    log_n, log_d, log_l = np.log(runs[:, 0]), np.log(runs[:, 1]), np.log(runs[:, 2])

    def objective(theta):
        a, b, e, alpha, beta = theta
        pred = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
        return float(np.sum(_huber(pred - log_l)))

    res = minimize(objective, np.array([5.0, 5.0, 0.5, 0.5, 0.5]), method="L-BFGS-B")
    a, b, e, alpha, beta = res.x
    return math.exp(e), math.exp(a), math.exp(b), float(alpha), float(beta)


def fit_linear_least_squares(runs):
    """Least squares on the loss itself from one start (no log space, no Huber): noise and the
    optimiser's stopping rule leave the exponents far off."""
    runs = np.asarray(runs, dtype=np.float64)
    n, d, loss = runs[:, 0], runs[:, 1], runs[:, 2]

    def objective(theta):
        e, a, b, alpha, beta = theta
        return float(np.sum((e + a / n**alpha + b / d**beta - loss) ** 2))

    res = minimize(
        objective, np.array([1.0, 100.0, 100.0, 0.3, 0.3]), method="Nelder-Mead", options={"maxiter": 400}
    )
    return tuple(float(x) for x in res.x)


MUTANTS_CHINCHILLA = [
    (chinchilla_loss, optimal_swapped_exponents, fit_parametric),
    (chinchilla_loss, optimal_without_root, fit_parametric),
    (chinchilla_loss, optimal_without_six, fit_parametric),
    (chinchilla_loss, optimal_no_validation, fit_parametric),
    (loss_without_e, compute_optimal, fit_parametric),
    (chinchilla_loss, compute_optimal, fit_default_tolerances),
    (chinchilla_loss, compute_optimal, fit_linear_least_squares),
]

# --- scaling-laws.repetition -----------------------------------------------------------------------


def _stream(train, unique_frac, token_budget):
    if not 0 < unique_frac <= 1 or token_budget < 1:
        raise ValueError("bad unique_frac or token_budget")
    unique = max(1, round(unique_frac * token_budget))
    if unique > train.numel():
        raise ValueError("subset too large")
    return train[:unique].repeat(math.ceil(token_budget / unique))[:token_budget]


def repeat_whole_data(data, unique_frac, token_budget, *, train=None, val_frac=0.1):
    """Ignores unique_frac: always the first token_budget tokens (no subset is ever repeated)."""
    train_ids, val = split_data(data, val_frac)
    if not 0 < unique_frac <= 1 or token_budget < 1 or token_budget > train_ids.numel():
        raise ValueError("bad arguments")
    return float(train(train_ids[:token_budget], val))


def repeat_whole_epochs_only(data, unique_frac, token_budget, *, train=None, val_frac=0.1):
    """Repeats the subset int(1/unique_frac) times without cutting to the budget: 0.3 → 3 × 300 = 900."""
    train_ids, val = split_data(data, val_frac)
    if not 0 < unique_frac <= 1 or token_budget < 1:
        raise ValueError("bad arguments")
    unique = max(1, round(unique_frac * token_budget))
    if unique > train_ids.numel():
        raise ValueError("subset too large")
    return float(train(train_ids[:unique].repeat(int(1 / unique_frac)), val))


def repeat_val_from_start(data, unique_frac, token_budget, *, train=None, val_frac=0.1):
    """Holds out the *first* val_frac of the data and trains on what follows."""
    n_val = int(val_frac * data.numel())
    val, train_ids = data[:n_val], data[n_val:]
    return float(train(_stream(train_ids, unique_frac, token_budget), val))


def repeat_random_subset(data, unique_frac, token_budget, *, train=None, val_frac=0.1):
    """Samples the stream with replacement from the whole training split instead of repeating a
    fixed subset: the model sees about as many distinct tokens as with unique data."""
    train_ids, val = split_data(data, val_frac)
    _stream(train_ids, unique_frac, token_budget)  # same validation
    idx = torch.randint(0, train_ids.numel(), (token_budget,), generator=torch.Generator().manual_seed(0))
    return float(train(train_ids[idx], val))


def repeat_no_validation(data, unique_frac, token_budget, *, train=None, val_frac=0.1):
    """Right stream for valid arguments, but a fraction above 1 or 0 is not rejected (clamped instead)."""
    train_ids, val = split_data(data, val_frac)
    frac = min(max(unique_frac, 1e-9), 1.0)
    unique = max(1, round(frac * max(token_budget, 1)))
    unique = min(unique, train_ids.numel())
    stream = train_ids[:unique].repeat(math.ceil(max(token_budget, 1) / unique))[: max(token_budget, 1)]
    return float(train(stream, val))


MUTANTS = {
    "scaling-laws.chinchilla": MUTANTS_CHINCHILLA,
    "scaling-laws.repetition": [
        repeat_whole_data,
        repeat_whole_epochs_only,
        repeat_val_from_start,
        repeat_random_subset,
        repeat_no_validation,
    ],
}
