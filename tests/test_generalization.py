"""Tests of companion.generalization against references we did not write.

References: ``numpy.polynomial.Polynomial.fit``, ``numpy.polyfit`` and scikit-learn's
``PolynomialFeatures`` + ``LinearRegression`` (polynomial least squares); the bias–variance identity
checked against a direct simulation of the test error with a tolerance of 4 standard errors; early
stopping on hand-made curves.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import PolynomialFeatures

from companion.generalization import bias_variance, polynomial_fit, polynomial_predict
from companion.regularization import early_stopping

HYPO = settings(max_examples=60, deadline=None)


def f_true(x):
    return np.sin(2 * np.pi * x)


def _data(n=30, sigma=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    return x, f_true(x) + sigma * rng.standard_normal(n)


def _poly_fit_fn(degree):
    def fit(x_train, y_train, x_test):
        return polynomial_predict(polynomial_fit(x_train, y_train, degree), x_test)

    return fit


# --- polynomial fits --------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 3, 6, 9])
def test_polynomial_coefficients_match_sklearn(degree):
    x, y = _data()
    t = 2 * x - 1  # the same rescaling to [-1, 1]
    coef = polynomial_fit(x, y, degree)
    if degree == 0:  # PolynomialFeatures refuses an empty feature matrix; the fit is the mean
        expected = np.r_[y.mean()]
    else:
        feats = PolynomialFeatures(degree, include_bias=False).fit_transform(t[:, None])
        reg = LinearRegression().fit(feats, y)
        expected = np.r_[reg.intercept_, reg.coef_]
    np.testing.assert_allclose(coef, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("degree", [0, 2, 5, 10, 15])
def test_polynomial_predictions_match_numpy(degree):
    x, y = _data(n=40, seed=1)
    x_new = np.linspace(0, 1, 101)
    ours = polynomial_predict(polynomial_fit(x, y, degree), x_new)
    ref = np.polynomial.Polynomial.fit(x, y, degree, domain=[0, 1])(x_new)
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-8)
    if degree <= 9:  # numpy.polyfit works in raw powers of x, whose conditioning degrades with the degree
        np.testing.assert_allclose(ours, np.polyval(np.polyfit(x, y, degree), x_new), rtol=1e-7, atol=1e-7)


def test_polynomial_custom_domain_and_interpolation():
    x = np.array([2.0, 3.0, 5.0])
    y = np.array([1.0, -1.0, 4.0])
    coef = polynomial_fit(x, y, 2, domain=(2.0, 5.0))
    np.testing.assert_allclose(polynomial_predict(coef, x, domain=(2.0, 5.0)), y, atol=1e-12)


def test_training_error_never_increases_with_degree():
    x, y = _data(n=30, seed=2)
    errors = [np.mean((polynomial_predict(polynomial_fit(x, y, d), x) - y) ** 2) for d in range(16)]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(errors)), errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: polynomial_fit(np.zeros(3), np.zeros(4), 1), "x, y"),
        (lambda: polynomial_fit(np.zeros(3), np.zeros(3), -1), "degree"),
        (lambda: polynomial_fit(np.zeros(3), np.zeros(3), 1.5), "degree"),
        (lambda: polynomial_fit(np.zeros(0), np.zeros(0), 1), "x"),
        (lambda: polynomial_fit(np.zeros(3), np.zeros(3), 1, domain=(1, 1)), "domain"),
        (lambda: polynomial_predict(np.zeros((2, 2)), np.zeros(3)), "coef"),
    ],
)
def test_polynomial_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- bias–variance ----------------------------------------------------------------------------------

X_TEST = np.linspace(0.05, 0.95, 40)


@pytest.mark.parametrize("degree", [0, 1, 3, 7, 10])
def test_bias_variance_terms_sum_to_the_simulated_test_mse(degree):
    result = bias_variance(_poly_fit_fn(degree), f_true, 0.3, X_TEST, 30, 1000, np.random.default_rng(degree))
    total = result["bias2"] + result["variance"] + result["noise"]
    # The two sides differ by a mean of independent zero-mean terms: 4 standard errors.
    assert abs(total - result["expected_mse"]) <= 4 * result["mse_se"], result
    assert result["mse_se"] < 0.02 * result["expected_mse"]  # so the check above is at least as tight as 2%


def test_bias_variance_limits_and_monotonicity():
    rng = np.random.default_rng
    low = bias_variance(_poly_fit_fn(0), f_true, 0.3, X_TEST, 50, 300, rng(0))
    high = bias_variance(_poly_fit_fn(12), f_true, 0.3, X_TEST, 50, 300, rng(0))
    assert low["bias2"] > high["bias2"] and high["variance"] > low["variance"]
    small = bias_variance(_poly_fit_fn(5), f_true, 0.3, X_TEST, 20, 300, rng(1))
    large = bias_variance(_poly_fit_fn(5), f_true, 0.3, X_TEST, 200, 300, rng(1))
    assert large["variance"] < 0.5 * small["variance"]


def test_bias_variance_exact_cases():
    const = bias_variance(
        lambda xt, yt, xs: np.full_like(xs, 0.5), f_true, 0.3, X_TEST, 10, 50, np.random.default_rng(0)
    )
    assert math.isclose(const["bias2"], float(np.mean((f_true(X_TEST) - 0.5) ** 2)), rel_tol=1e-12)
    assert const["variance"] == 0.0
    noiseless = bias_variance(_poly_fit_fn(3), f_true, 0.0, X_TEST, 30, 200, np.random.default_rng(0))
    assert noiseless["noise"] == 0.0
    assert math.isclose(noiseless["bias2"] + noiseless["variance"], noiseless["expected_mse"], rel_tol=1e-10)
    oracle = bias_variance(
        lambda xt, yt, xs: f_true(xs), f_true, 0.5, X_TEST, 10, 400, np.random.default_rng(0)
    )
    assert oracle["bias2"] < 1e-25 and oracle["variance"] < 1e-25  # zero up to the rounding of a mean
    assert abs(oracle["expected_mse"] - 0.25) <= 4 * oracle["mse_se"]


def test_bias_variance_is_reproducible():
    a = bias_variance(_poly_fit_fn(4), f_true, 0.2, X_TEST, 25, 100, np.random.default_rng(7))
    b = bias_variance(_poly_fit_fn(4), f_true, 0.2, X_TEST, 25, 100, np.random.default_rng(7))
    assert a == b


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"rng": 0}, TypeError, "rng"),
        ({"n_rep": 1}, ValueError, "n_rep"),
        ({"n_train": 0}, ValueError, "n_train"),
        ({"sigma": -1.0}, ValueError, "sigma"),
        ({"x_test": np.zeros((2, 2))}, ValueError, "x_test"),
        ({"fit_fn": lambda xt, yt, xs: np.zeros(3)}, ValueError, "fit_fn"),
    ],
)
def test_bias_variance_bad_input(kwargs, exc, match):
    args = {
        "fit_fn": _poly_fit_fn(1),
        "f": f_true,
        "sigma": 0.1,
        "x_test": X_TEST,
        "n_train": 10,
        "n_rep": 5,
        "rng": np.random.default_rng(0),
    }
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        bias_variance(**args)


# --- early stopping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("losses", "patience", "min_delta", "expected"),
    [
        ([1.0, 0.8, 0.6, 0.61, 0.62, 0.63, 0.5], 3, 0.0, 5),  # three epochs without improvement
        ([1.0, 0.8, 0.6, 0.61, 0.62, 0.63, 0.5], 4, 0.0, 6),  # more patience: never stops
        ([1.0, 0.5, 0.7, 0.6, 0.55, 0.52], 3, 0.0, 4),  # compared with the best, not the previous epoch
        ([1.0, 0.9, 0.895, 0.893, 0.892, 0.5], 3, 0.01, 4),  # steps below min_delta do not count
        ([1.0, 0.9, 0.895, 0.893, 0.892, 0.5], 3, 0.0, 5),
        ([1.0, 0.995, 0.99, 0.985, 0.98, 0.975], 3, 0.01, 5),  # small steps add up against the best
        ([1.0, float("nan"), float("nan"), float("nan"), 0.5], 3, 0.0, 3),  # NaN never improves
        ([float("nan"), float("nan"), 1.0], 2, 0.0, 1),
        ([2.0], 1, 0.0, 0),
        ([3.0, 3.0], 1, 0.0, 1),  # equal is not better
    ],
)
def test_early_stopping_on_crafted_curves(losses, patience, min_delta, expected):
    assert early_stopping(losses, patience, min_delta) == expected


@HYPO
@given(n=st.integers(1, 60), patience=st.integers(1, 10))
def test_a_steadily_improving_curve_never_stops_early(n, patience):
    assert early_stopping([1.0 / (i + 1) for i in range(n)], patience) == n - 1


@HYPO
@given(
    losses=st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=40),
    patience=st.integers(1, 8),
)
def test_early_stopping_matches_the_definition(losses, patience):
    stop = early_stopping(losses, patience)
    assert 0 <= stop < len(losses)
    if stop < len(losses) - 1:  # stopped early: the last `patience` epochs did not beat the earlier best
        best_before = min(losses[: stop - patience + 1])
        assert min(losses[stop - patience + 1 : stop + 1]) >= best_before
    assert early_stopping(np.array(losses), patience) == stop  # any sequence of numbers works


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([], 3), "val_losses"),
        (([1.0], 0), "patience"),
        (([1.0], 2.5), "patience"),
        (([1.0], 2, -0.1), "min_delta"),
    ],
)
def test_early_stopping_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        early_stopping(*args)
