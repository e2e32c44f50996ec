"""Exercises of the Generalization chapter (``notebooks/foundations/generalization.ipynb``).

The bias–variance checks use polynomial fits of ``sin(2πx)`` and compare the candidate's terms with
each other and with exact limits (a fit that ignores the data has zero variance; ``σ = 0`` has zero
noise); the early-stopping checks run the candidate on hand-made validation curves.
"""

from __future__ import annotations

import math

import numpy as np

from companion.generalization import bias_variance, polynomial_fit, polynomial_predict
from companion.grading.checks import as_number, expect, expect_raises
from companion.grading.registry import Exercise, register
from companion.regularization import early_stopping

# --------------------------------------------------------------------------------------------------
# generalization.bias-variance
# --------------------------------------------------------------------------------------------------

BIAS_VARIANCE = register(
    Exercise(
        id="generalization.bias-variance",
        title="Bias–variance decomposition by resampling training sets",
        names=("bias_variance",),
        references=(bias_variance,),
        signature='''def bias_variance(fit_fn, f, sigma, x_test, n_train, n_rep, rng):
    """Monte-Carlo bias–variance decomposition of a fitting procedure; returns a dict of floats.

    For r = 1 … n_rep, using rng (a numpy.random.Generator):
      x_train = rng.uniform(0, 1, n_train);  y_train = f(x_train) + sigma * rng.standard_normal(n_train)
      pred_r  = fit_fn(x_train, y_train, x_test)                 # (m,) predictions at x_test (m,)
      y_r     = f(x_test) + sigma * rng.standard_normal(m)       # fresh noisy test targets
    With mean_pred = mean over r of pred_r, and every term averaged over the m test inputs:
      "bias2":        mean_x (f(x) - mean_pred(x))²
      "variance":     mean_x mean_r (pred_r(x) - mean_pred(x))²
      "noise":        sigma²
      "expected_mse": mean_x mean_r (y_r(x) - pred_r(x))²        # measured directly
    """''',
        hint="square the bias *after* averaging the predictions over the training sets; "
        "the noise term is σ², and the expected MSE is measured against fresh noisy targets.",
    )
)

_X_TEST = np.linspace(0.05, 0.95, 40)


def _f(x: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * x)


def _poly(degree: int):
    def fit(x_train, y_train, x_test):
        return polynomial_predict(polynomial_fit(x_train, y_train, degree), x_test)

    return fit


def _run(candidate, fit_fn, sigma, n_train, n_rep, seed) -> dict[str, float]:
    result = candidate(fit_fn, _f, sigma, _X_TEST, n_train, n_rep, np.random.default_rng(seed))
    expect(isinstance(result, dict), f"expected a dict, got {type(result).__name__}")
    missing = {"bias2", "variance", "noise", "expected_mse"} - set(result)
    expect(not missing, f"the dict is missing the key(s) {sorted(missing)}")
    values = {k: as_number(result[k], k) for k in ("bias2", "variance", "noise", "expected_mse")}
    expect(all(math.isfinite(v) for v in values.values()), f"values must be finite, got {values}")
    return values


@BIAS_VARIANCE.check("returns bias2, variance, noise and expected_mse as finite numbers ≥ 0")
def _bv_keys(candidate):
    r = _run(candidate, _poly(3), 0.3, 30, 50, 0)
    expect(all(v >= 0 for v in r.values()), f"every term is an average of squares, so ≥ 0; got {r}")


@BIAS_VARIANCE.check("bias² + variance + noise = expected MSE within 2% (degree 3, 2000 training sets)")
def _bv_sum(candidate):
    # The two sides differ by a mean of zero-mean terms with a standard error of about 0.5% of the MSE
    # here, so 2% is 4 standard errors.
    r = _run(candidate, _poly(3), 0.3, 30, 2000, 1)
    total = r["bias2"] + r["variance"] + r["noise"]
    expect(
        abs(total - r["expected_mse"]) <= 0.02 * r["expected_mse"],
        f"bias2 + variance + noise = {total:.5g}, but the measured expected MSE is {r['expected_mse']:.5g} "
        f"({r})",
    )


def _expect_real_variance(value: float, floor: float, what: str) -> None:
    # An absolute floor, not only a comparison: a variance of rounding noise (1e-30, when every training
    # set is the same) would otherwise pass relative comparisons by chance.
    expect(
        value > floor,
        f"{what}: variance {value:.4g}, expected well above rounding noise (> {floor:g}; the reference "
        "gets about 4 times that) — are the training sets really drawn afresh from rng each repetition?",
    )


@BIAS_VARIANCE.check("degree 0 has the larger bias², degree 12 the larger variance (n_train = 50)")
def _bv_degrees(candidate):
    low = _run(candidate, _poly(0), 0.3, 50, 300, 2)
    high = _run(candidate, _poly(12), 0.3, 50, 300, 2)
    expect(low["bias2"] > high["bias2"], f"bias2: degree 0 {low['bias2']:.4g}, degree 12 {high['bias2']:.4g}")
    _expect_real_variance(high["variance"], 0.04, "degree 12, 50 points")
    expect(
        high["variance"] > low["variance"],
        f"variance: degree 0 {low['variance']:.4g}, degree 12 {high['variance']:.4g}",
    )


@BIAS_VARIANCE.check("variance shrinks as n_train grows (degree 5: 20 → 200 points)")
def _bv_n_train(candidate):
    small = _run(candidate, _poly(5), 0.3, 20, 300, 3)
    large = _run(candidate, _poly(5), 0.3, 200, 300, 3)
    _expect_real_variance(small["variance"], 0.02, "degree 5, 20 points")
    expect(
        large["variance"] < 0.5 * small["variance"],
        f"variance with 20 points {small['variance']:.4g}, with 200 points {large['variance']:.4g}",
    )


@BIAS_VARIANCE.check("sigma = 0 gives noise 0 and expected_mse = bias² + variance")
def _bv_noiseless(candidate):
    r = _run(candidate, _poly(3), 0.0, 30, 200, 4)
    expect(r["noise"] == 0.0, f"noise must be 0 for sigma = 0, got {r['noise']:.4g}")
    total = r["bias2"] + r["variance"]
    expect(
        math.isclose(total, r["expected_mse"], rel_tol=1e-9),
        f"without noise the identity is exact: bias2 + variance = {total:.10g}, "
        f"expected_mse = {r['expected_mse']:.10g}",
    )


@BIAS_VARIANCE.check("a fit that ignores the data: variance 0 and bias² = mean (f(x) − c)²")
def _bv_constant(candidate):
    r = _run(candidate, lambda xt, yt, xs: np.full_like(xs, 0.25), 0.3, 10, 50, 5)
    want = float(np.mean((_f(_X_TEST) - 0.25) ** 2))
    expect(math.isclose(r["bias2"], want, rel_tol=1e-9), f"bias2 expected {want:.8g}, got {r['bias2']:.8g}")
    expect(r["variance"] <= 1e-20, f"a constant prediction has variance 0, got {r['variance']:.4g}")
    expect(
        math.isclose(r["noise"], 0.09, rel_tol=1e-12),
        f"noise expected sigma² = 0.09, got {r['noise']:.6g}",
    )


@BIAS_VARIANCE.check("the same generator state gives identical output")
def _bv_reproducible(candidate):
    a = _run(candidate, _poly(4), 0.2, 25, 100, 6)
    b = _run(candidate, _poly(4), 0.2, 25, 100, 6)
    expect(a == b, f"two runs from default_rng(6) differ: {a} vs {b}")


# --------------------------------------------------------------------------------------------------
# generalization.early-stopping
# --------------------------------------------------------------------------------------------------

EARLY_STOPPING = register(
    Exercise(
        id="generalization.early-stopping",
        title="Patience-based early stopping",
        names=("early_stopping",),
        references=(early_stopping,),
        signature='''def early_stopping(val_losses, patience, min_delta=0.0):
    """Index of the epoch at which early stopping halts.

    Epoch i improves when val_losses[i] < best - min_delta, where best is the loss of the last
    improving epoch (+inf before the first); NaN never improves. Stop at the first epoch that ends
    `patience` consecutive epochs without improvement; if that never happens return
    len(val_losses) - 1. Raise ValueError for an empty sequence.
    """''',
        hint="keep the best loss so far and a counter of epochs since it improved; compare each epoch "
        "with the best (minus min_delta), not with the previous epoch.",
    )
)


def _stop(candidate, losses, patience, min_delta=0.0) -> int:
    got = candidate(losses, patience, min_delta)
    expect(isinstance(got, (int, np.integer)), f"expected an int epoch index, got {type(got).__name__}")
    return int(got)


def _expect_stop(candidate, losses, patience, min_delta, want, why):
    got = _stop(candidate, losses, patience, min_delta)
    expect(
        got == want,
        f"{why}: early_stopping({losses}, patience={patience}, min_delta={min_delta}) should be {want}, "
        f"got {got}",
    )


@EARLY_STOPPING.check("stops after `patience` epochs without improvement")
def _es_basic(candidate):
    curve = [1.0, 0.8, 0.6, 0.61, 0.62, 0.63, 0.5]
    _expect_stop(candidate, curve, 3, 0.0, 5, "epochs 3, 4, 5 do not beat 0.6")
    _expect_stop(candidate, curve, 4, 0.0, 6, "with patience 4 the improvement at epoch 6 comes in time")
    _expect_stop(candidate, [3.0, 3.0], 1, 0.0, 1, "an equal loss is not an improvement")


@EARLY_STOPPING.check("compares with the best loss so far, not the previous epoch")
def _es_best(candidate):
    _expect_stop(candidate, [1.0, 0.5, 0.7, 0.6, 0.55, 0.52], 3, 0.0, 4, "0.6, 0.55, 0.52 never beat 0.5")


@EARLY_STOPPING.check("an improvement smaller than min_delta does not reset patience")
def _es_min_delta(candidate):
    curve = [1.0, 0.9, 0.895, 0.893, 0.892, 0.5]
    _expect_stop(candidate, curve, 3, 0.01, 4, "steps of < 0.01 below 0.9 do not count with min_delta=0.01")
    _expect_stop(candidate, curve, 3, 0.0, 5, "with min_delta=0 every decrease counts")
    _expect_stop(
        candidate, [1.0, 0.995, 0.99, 0.985, 0.98, 0.975], 3, 0.01, 5, "small steps add up against the best"
    )


@EARLY_STOPPING.check("a steadily improving curve never stops early (returns the last index)")
def _es_improving(candidate):
    curve = [1.0 / (i + 1) for i in range(30)]
    _expect_stop(candidate, curve, 2, 0.0, 29, "every epoch improves")
    _expect_stop(candidate, [2.0], 1, 0.0, 0, "a single epoch")


@EARLY_STOPPING.check("NaN counts as no improvement")
def _es_nan(candidate):
    nan = float("nan")
    _expect_stop(candidate, [1.0, nan, nan, nan, 0.5], 3, 0.0, 3, "three NaN epochs exhaust patience 3")
    _expect_stop(candidate, [nan, nan, 1.0], 2, 0.0, 1, "NaN epochs before any finite loss")


@EARLY_STOPPING.check("an empty list raises ValueError")
def _es_empty(candidate):
    expect_raises(ValueError, lambda: candidate([], 3, 0.0), "early_stopping([], 3)")
