"""Exercises of the Evaluation metrics chapter (``notebooks/foundations/metrics.ipynb``).

The checks compare the candidate with scikit-learn (imported inside the checks: it is a reference
library, not a dependency of the package) on seeded random inputs with ties, with hand-worked examples,
and with properties the math guarantees. Arguments follow scikit-learn's order ``(y_true, y_score)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from companion.grading.checks import expect, expect_raises
from companion.grading.registry import Exercise, register
from companion.metrics import classification as cls
from companion.metrics import clustering as clu
from companion.metrics import ranking as rnk
from companion.metrics import regression as reg

TOL = 1e-12


def _array(value: Any, what: str) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value)
        expect(arr.dtype.kind in "biuf", f"{what}: expected numbers, got {type(value).__name__} {value!r}")
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{what}: expected numbers, got {type(value).__name__}") from None


def _num(value: Any, what: str) -> float:
    arr = _array(value, what)
    expect(arr.size == 1, f"{what}: expected one number, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def _close(actual: Any, expected: Any, what: str, tol: float = TOL) -> None:
    """|actual − expected| <= tol·max(1, |expected|) element-wise; NaN/inf must match exactly."""
    a, e = _array(actual, what), _array(expected, what)
    expect(a.shape == e.shape, f"{what}: expected shape {e.shape}, got {a.shape}")
    finite = np.isfinite(e)
    expect(
        np.array_equal(a[~finite], e[~finite], equal_nan=True),
        f"{what}: expected {e[~finite][:5].tolist()} at the non-finite entries, "
        f"got {a[~finite][:5].tolist()}",
    )
    err = np.abs(a[finite] - e[finite])
    if not np.isfinite(a[finite]).all() or (err > tol * np.maximum(1.0, np.abs(e[finite]))).any():
        bad = int(np.argmax(np.where(np.isfinite(err), err, np.inf)))
        if e.ndim == 0:
            raise AssertionError(f"{what}: expected {e.item():.12g}, got {a.item():.12g}")
        raise AssertionError(
            f"{what}: first mismatch at flat index {bad}: expected {e[finite][bad]:.12g}, "
            f"got {a[finite][bad]:.12g} (tolerance {tol:g})"
        )


def _binary_data(seed: int, n: int, decimals: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[-1] = 0, 1
    s = rng.normal(size=n) + 0.8 * y
    return y, (s if decimals is None else np.round(s, decimals))


# --------------------------------------------------------------------------------------------------
# metrics.roc-auc
# --------------------------------------------------------------------------------------------------


def _reference_roc_curve(y_true, y_score):
    return cls.roc_curve(y_true, y_score, drop_intermediate=False)


ROC = register(
    Exercise(
        id="metrics.roc-auc",
        title="ROC curve and AUC as the Mann–Whitney probability",
        names=("roc_curve", "roc_auc"),
        references=(_reference_roc_curve, cls.roc_auc_score),
        signature='''def roc_curve(y_true, y_score):
    """ROC curve of labels y_true (n,) in {0, 1} and real scores y_score (n,).

    Predicting positive when score >= t gives one point (FPR, TPR) per distinct score t. Return
    (fpr, tpr, thresholds), three 1-D float arrays: first the point (0, 0) with threshold +inf,
    then one point per distinct score, thresholds decreasing — scikit-learn's
    roc_curve(y_true, y_score, drop_intermediate=False).
    """

def roc_auc(y_true, y_score):
    """AUC = P(s+ > s-) + 1/2 P(s+ = s-) for a random positive and a random negative, as a float,
    in O(n log n) (mid-ranks: U = R+ - n+(n+ + 1)/2, AUC = U / (n+ n-)).
    Raise ValueError when y_true contains only one class.
    """''',
        hint="sort once; tied scores share their mid-rank (and enter the ROC curve together), so a tie "
        "counts ½ of a pair.",
    )
)


def _curve(label, fn, y, s, names):
    """The learner's curve ``fn(y, s)``, checked to be a tuple of len(names) arrays."""
    out = fn(y, s)
    expect(isinstance(out, tuple) and len(out) == len(names), f"{label} must return ({', '.join(names)})")
    return tuple(_array(v, name) for v, name in zip(out, names, strict=True))


def _same_curves(curve, reference, names, cases):
    """``curve(y, s)`` equals ``reference(y, s)`` array by array on every (seed, n, decimals) case."""
    for seed, n, decimals in cases:
        y, s = _binary_data(seed, n, decimals)
        for g, e, name in zip(curve(y, s), reference(y, s), names, strict=True):
            _close(g, e, f"{name} (n={n}, seed={seed})")


_ROC_NAMES = ("fpr", "tpr", "thresholds")


def _roc(roc_curve, y, s):
    return _curve("roc_curve", roc_curve, y, s, _ROC_NAMES)


@ROC.check("roc_curve matches sklearn's roc_curve(drop_intermediate=False), ties included")
def _roc_curve_sklearn(roc_curve, roc_auc):
    from sklearn.metrics import roc_curve as sk_roc_curve

    _same_curves(
        lambda y, s: _roc(roc_curve, y, s),
        lambda y, s: sk_roc_curve(y, s, drop_intermediate=False),
        _ROC_NAMES,
        ((0, 40, 1), (1, 300, 0), (2, 25, None)),
    )


@ROC.check("roc_auc matches roc_auc_score (1e-12), with and without ties")
def _roc_auc_sklearn(roc_curve, roc_auc):
    from sklearn.metrics import roc_auc_score

    for seed, n, decimals in ((0, 50, None), (1, 200, 1), (2, 500, 0), (3, 3, 0)):
        y, s = _binary_data(seed, n, decimals)
        _close(_num(roc_auc(y, s), "roc_auc"), roc_auc_score(y, s), f"AUC (n={n}, seed={seed})")


@ROC.check("rank-sum AUC = trapezoid area under your curve = pairwise probability, ties ½")
def _roc_three_ways(roc_curve, roc_auc):
    y, s = _binary_data(4, 120, 0)
    pos, neg = s[y == 1], s[y == 0]
    d = pos[:, None] - neg[None, :]
    pairwise = ((d > 0).sum() + 0.5 * (d == 0).sum()) / d.size
    fpr, tpr, _ = _roc(roc_curve, y, s)
    _close(np.trapezoid(tpr, fpr), pairwise, "trapezoid area of roc_curve")
    _close(_num(roc_auc(y, s), "roc_auc"), pairwise, "roc_auc vs the pairwise count")


@ROC.check("invariant to strictly increasing transforms of the scores")
def _roc_monotone(roc_curve, roc_auc):
    y, s = _binary_data(5, 150, 1)
    base = _num(roc_auc(y, s), "roc_auc")
    for name, t in (("exp(s)", np.exp(s)), ("s³ + 5", s**3 + 5), ("arctan(3s)", np.arctan(3 * s))):
        _close(_num(roc_auc(y, t), "roc_auc"), base, f"AUC of {name}")


@ROC.check("constant scores give 0.5; a perfect ranking 1.0, a reversed one 0.0")
def _roc_constant(roc_curve, roc_auc):
    y = np.array([0, 1, 1, 0, 1, 0, 0])
    _close(_num(roc_auc(y, np.full(7, 0.3)), "roc_auc"), 0.5, "AUC of constant scores")
    _close(_num(roc_auc(y, y * 1.0), "roc_auc"), 1.0, "AUC of a perfect ranking")
    _close(_num(roc_auc(y, -y * 1.0), "roc_auc"), 0.0, "AUC of a reversed ranking")


@ROC.check("single-class labels raise ValueError")
def _roc_single_class(roc_curve, roc_auc):
    expect_raises(ValueError, lambda: roc_auc(np.ones(5, dtype=int), np.arange(5.0)), "roc_auc(all positive)")
    expect_raises(
        ValueError, lambda: roc_auc(np.zeros(5, dtype=int), np.arange(5.0)), "roc_auc(all negative)"
    )


@ROC.check("mean AUC unchanged under random negative subsampling (±0.01)")
def _roc_subsample(roc_curve, roc_auc):
    rng = np.random.default_rng(6)
    pos, neg = rng.normal(1.0, 1.0, 1000), rng.normal(0.0, 1.0, 20_000)
    y = np.r_[np.ones(1000, dtype=int), np.zeros(20_000, dtype=int)]
    full = _num(roc_auc(y, np.r_[pos, neg]), "roc_auc")
    sub = []
    for _ in range(20):
        keep = rng.choice(20_000, 1000, replace=False)  # 1:1 instead of 1:20
        sub.append(_num(roc_auc(y[: 1000 + 1000], np.r_[pos, neg[keep]]), "roc_auc"))
    expect(
        abs(np.mean(sub) - full) < 0.01,
        f"AUC with all negatives {full:.4f}, mean over 1:1 subsamples {np.mean(sub):.4f}: "
        "should agree within 0.01",
    )


# --------------------------------------------------------------------------------------------------
# metrics.classification
# --------------------------------------------------------------------------------------------------


def _reference_confusion(y_true, y_pred):
    return cls.confusion_matrix(y_true, y_pred, labels=[0, 1])


CLASSIFICATION = register(
    Exercise(
        id="metrics.classification",
        title="Confusion matrix, precision, recall, F1 and F-beta",
        names=("confusion_matrix", "precision", "recall", "f1", "fbeta"),
        references=(_reference_confusion, cls.precision, cls.recall, cls.f1, cls.fbeta),
        signature='''def confusion_matrix(y_true, y_pred):
    """2×2 integer array [[TN, FP], [FN, TP]] for labels in {0, 1}, shapes (n,):
    rows = true class, columns = predicted class."""

def precision(y_true, y_pred, zero_division=0.0):
    """TP / (TP + FP); zero_division when TP + FP = 0 (nothing predicted positive)."""

def recall(y_true, y_pred, zero_division=0.0):
    """TP / (TP + FN); zero_division when TP + FN = 0 (no positive sample)."""

def f1(y_true, y_pred, zero_division=0.0):
    """2PR / (P + R) = 2TP / (2TP + FN + FP); zero_division when TP = FN = FP = 0."""

def fbeta(y_true, y_pred, beta, zero_division=0.0):
    """(1 + β²)PR / (β²P + R) = (1 + β²)TP / ((1 + β²)TP + β²FN + FP); zero_division when
    TP = FN = FP = 0. zero_division may be 0.0, 1.0 or nan, as in scikit-learn."""''',
        hint="count TP, FP, FN from boolean masks; F_β uses β², and compute it from the counts so that "
        "a 0/0 in precision alone does not make F undefined.",
    )
)

_HAND_T = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
_HAND_P = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])  # TP 2, FN 2, FP 1, TN 5


@CLASSIFICATION.check("hand example: [[TN, FP], [FN, TP]] = [[5, 1], [2, 2]], P = 2/3, R = 1/2, F1 = 4/7")
def _cls_hand(confusion_matrix, precision, recall, f1, fbeta):
    cm = _array(confusion_matrix(_HAND_T, _HAND_P), "confusion_matrix")
    expect(
        cm.shape == (2, 2) and np.array_equal(cm, [[5, 1], [2, 2]]),
        f"expected [[5, 1], [2, 2]], got {cm.tolist()}",
    )
    _close(_num(precision(_HAND_T, _HAND_P), "precision"), 2 / 3, "precision")
    _close(_num(recall(_HAND_T, _HAND_P), "recall"), 1 / 2, "recall")
    _close(_num(f1(_HAND_T, _HAND_P), "f1"), 4 / 7, "f1")


@CLASSIFICATION.check("matches sklearn on random labels (1e-12), β ∈ {0.5, 2, 3}")
def _cls_sklearn(confusion_matrix, precision, recall, f1, fbeta):
    import sklearn.metrics as skm

    for seed in range(3):
        rng = np.random.default_rng(seed)
        t, p = rng.integers(0, 2, 60), (rng.random(60) < 0.3 + 0.1 * seed).astype(int)
        expect(
            np.array_equal(_array(confusion_matrix(t, p), "confusion_matrix"), skm.confusion_matrix(t, p)),
            f"confusion_matrix differs from sklearn's {skm.confusion_matrix(t, p).tolist()}",
        )
        _close(_num(precision(t, p), "precision"), skm.precision_score(t, p), "precision")
        _close(_num(recall(t, p), "recall"), skm.recall_score(t, p), "recall")
        _close(_num(f1(t, p), "f1"), skm.f1_score(t, p), "f1")
        for beta in (0.5, 2.0, 3.0):
            _close(_num(fbeta(t, p, beta), "fbeta"), skm.fbeta_score(t, p, beta=beta), f"fbeta(β={beta})")


@CLASSIFICATION.check("fbeta(β = 1) = f1 = the harmonic mean 2PR/(P + R)")
def _cls_harmonic(confusion_matrix, precision, recall, f1, fbeta):
    rng = np.random.default_rng(7)
    t, p = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
    pr, rc = _num(precision(t, p), "precision"), _num(recall(t, p), "recall")
    _close(_num(f1(t, p), "f1"), 2 * pr * rc / (pr + rc), "f1 vs 2PR/(P + R)")
    _close(_num(fbeta(t, p, 1.0), "fbeta(β=1)"), _num(f1(t, p), "f1"), "fbeta(β=1) vs f1")


@CLASSIFICATION.check("0/0 cases follow zero_division (0, 1, nan) exactly like sklearn")
def _cls_zero_division(confusion_matrix, precision, recall, f1, fbeta):
    import sklearn.metrics as skm

    t = np.array([1, 0, 1, 0])
    cases = {
        "nothing predicted positive": (t, np.zeros(4, dtype=int)),
        "no positive sample": (np.zeros(4, dtype=int), np.array([1, 0, 0, 1])),
        "no positive anywhere": (np.zeros(4, dtype=int), np.zeros(4, dtype=int)),
    }
    for name, (yt, yp) in cases.items():
        for zd in (0.0, 1.0, float("nan")):
            for fn, ref in ((precision, skm.precision_score), (recall, skm.recall_score), (f1, skm.f1_score)):
                _close(
                    _num(fn(yt, yp, zero_division=zd), fn.__name__),
                    ref(yt, yp, zero_division=zd),
                    f"{name}, zero_division={zd}: {ref.__name__}",
                )
            _close(
                _num(fbeta(yt, yp, 2.0, zero_division=zd), "fbeta"),
                skm.fbeta_score(yt, yp, beta=2.0, zero_division=zd),
                f"{name}, zero_division={zd}: fbeta(β=2)",
            )


@CLASSIFICATION.check("β → 0 tends to precision and β → ∞ to recall")
def _cls_limits(confusion_matrix, precision, recall, f1, fbeta):
    t, p = _HAND_T, _HAND_P
    _close(_num(fbeta(t, p, 1e-4), "fbeta(β=1e-4)"), 2 / 3, "fbeta(β → 0) vs precision", tol=1e-6)
    _close(_num(fbeta(t, p, 1e4), "fbeta(β=1e4)"), 1 / 2, "fbeta(β → ∞) vs recall", tol=1e-6)


# --------------------------------------------------------------------------------------------------
# metrics.pr-ap
# --------------------------------------------------------------------------------------------------

PR = register(
    Exercise(
        id="metrics.pr-ap",
        title="Precision–recall curve and average precision",
        names=("pr_curve", "average_precision"),
        references=(cls.precision_recall_curve, cls.average_precision_score),
        signature='''def pr_curve(y_true, y_score):
    """Precision–recall curve of labels y_true (n,) in {0, 1} and scores y_score (n,), exactly like
    sklearn.metrics.precision_recall_curve: for each distinct score t in *increasing* order,
    precision and recall of predicting positive when score >= t; then a final point with
    precision 1 and recall 0 and no threshold. Return (precision, recall, thresholds) with shapes
    (m + 1,), (m + 1,), (m,)."""

def average_precision(y_true, y_score):
    """AP = Σ_k (R_k − R_{k−1}) · P_k over the thresholds (step-wise, no interpolation, not the
    trapezoid). Raise ValueError when y_true has no positive sample."""''',
        hint="tied scores enter together: compute cumulative TP and FP at the last index of each run of "
        "equal sorted scores; AP weights each precision by the recall it adds.",
    )
)


_PR_NAMES = ("precision", "recall", "thresholds")


def _pr(pr_curve, y, s):
    return _curve("pr_curve", pr_curve, y, s, _PR_NAMES)


@PR.check("pr_curve matches sklearn's precision_recall_curve, ties included")
def _pr_sklearn(pr_curve, average_precision):
    from sklearn.metrics import precision_recall_curve

    _same_curves(
        lambda y, s: _pr(pr_curve, y, s),
        precision_recall_curve,
        _PR_NAMES,
        ((0, 40, 1), (1, 300, 0), (2, 30, None)),
    )


@PR.check("average_precision matches average_precision_score (1e-12), ties included")
def _ap_sklearn(pr_curve, average_precision):
    from sklearn.metrics import average_precision_score

    for seed, n, decimals in ((0, 50, None), (1, 200, 1), (2, 500, 0)):
        y, s = _binary_data(seed, n, decimals)
        _close(_num(average_precision(y, s), "AP"), average_precision_score(y, s), f"AP (n={n}, seed={seed})")


@PR.check("hand example: ranking + − + − gives AP = (1 + 2/3)/2, not the trapezoid")
def _ap_hand(pr_curve, average_precision):
    y, s = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6])
    _close(_num(average_precision(y, s), "AP"), (1 + 2 / 3) / 2, "AP")


@PR.check("AP = 1 for a perfect ranking; AP ≈ prevalence (±0.02) for random scores")
def _ap_extremes(pr_curve, average_precision):
    rng = np.random.default_rng(3)
    y = (rng.random(20_000) < 0.1).astype(int)
    _close(_num(average_precision(y, y + rng.random(20_000) * 0.5), "AP"), 1.0, "AP of a perfect ranking")
    ap = _num(average_precision(y, rng.random(20_000)), "AP")
    expect(
        abs(ap - y.mean()) < 0.02,
        f"AP of random scores should be near the prevalence {y.mean():.3f}, got {ap:.4f}",
    )


@PR.check("adding negatives lowers AP but leaves AUC unchanged")
def _ap_more_negatives(pr_curve, average_precision):
    y, s = _binary_data(8, 200, None)
    neg = s[y == 0]
    y2, s2 = np.r_[y, np.zeros(neg.size, dtype=int)], np.r_[s, neg]  # every negative twice
    _close(cls.roc_auc_score(y2, s2), cls.roc_auc_score(y, s), "AUC (reference) with doubled negatives")
    ap, ap2 = _num(average_precision(y, s), "AP"), _num(average_precision(y2, s2), "AP")
    expect(ap2 < ap - 0.01, f"AP should fall when every negative is duplicated: {ap:.4f} -> {ap2:.4f}")


@PR.check("no positive sample raises ValueError")
def _ap_no_positive(pr_curve, average_precision):
    expect_raises(
        ValueError, lambda: average_precision(np.zeros(4, dtype=int), np.arange(4.0)), "average_precision"
    )


# --------------------------------------------------------------------------------------------------
# metrics.regression
# --------------------------------------------------------------------------------------------------

REGRESSION = register(
    Exercise(
        id="metrics.regression",
        title="MAE, MSE and RMSE",
        names=("mae", "mse", "rmse"),
        references=(reg.mae, reg.mse, reg.rmse),
        signature='''def mae(y_true, y_pred):
    """Mean absolute error (1/n) Σ |y − ŷ| of two arrays of shape (n,), as a float."""

def mse(y_true, y_pred):
    """Mean squared error (1/n) Σ (y − ŷ)², as a float."""

def rmse(y_true, y_pred):
    """Root mean squared error √MSE, as a float."""''',
        hint="a mean, not a sum; RMSE is the square root of the *mean* of the squares.",
    )
)


@REGRESSION.check("match sklearn (1e-12) on random data")
def _reg_sklearn(mae, mse, rmse):
    import sklearn.metrics as skm

    for seed, n in ((0, 1), (1, 10), (2, 1000)):
        rng = np.random.default_rng(seed)
        t, p = rng.normal(size=n) * 3, rng.normal(size=n)
        _close(_num(mae(t, p), "mae"), skm.mean_absolute_error(t, p), f"MAE (n={n})")
        _close(_num(mse(t, p), "mse"), skm.mean_squared_error(t, p), f"MSE (n={n})")
        _close(_num(rmse(t, p), "rmse"), skm.root_mean_squared_error(t, p), f"RMSE (n={n})")


@REGRESSION.check("rmse = √mse, and RMSE ≥ MAE on every input")
def _reg_order(mae, mse, rmse):
    rng = np.random.default_rng(4)
    for _ in range(20):
        t, p = rng.standard_cauchy(50), rng.normal(size=50)
        r, m, a = _num(rmse(t, p), "rmse"), _num(mse(t, p), "mse"), _num(mae(t, p), "mae")
        _close(r, math.sqrt(m), "rmse vs √mse")
        expect(
            r >= a * (1 - 1e-12), f"RMSE {r:.6g} < MAE {a:.6g}, impossible (the quadratic mean ≥ the mean)"
        )


@REGRESSION.check("one outlier of 10 among 100 zeros: MAE = 0.1, RMSE = 1.0")
def _reg_outlier(mae, mse, rmse):
    t, p = np.zeros(100), np.zeros(100)
    p[0] = 10.0
    _close(_num(mae(t, p), "mae"), 0.1, "MAE with one outlier")
    _close(_num(rmse(t, p), "rmse"), 1.0, "RMSE with one outlier")
    _close(_num(mse(t, p), "mse"), 1.0, "MSE with one outlier")


@REGRESSION.check("a perfect prediction scores 0, and errors of either sign count")
def _reg_signs(mae, mse, rmse):
    t = np.array([1.0, -2.0, 3.0])
    _close(_num(mae(t, t), "mae"), 0.0, "MAE of a perfect prediction")
    _close(_num(mae(t, t + np.array([1.0, -1.0, 0.0])), "mae"), 2 / 3, "MAE of errors +1, −1, 0")


# --------------------------------------------------------------------------------------------------
# metrics.map-at-k
# --------------------------------------------------------------------------------------------------

MAP = register(
    Exercise(
        id="metrics.map-at-k",
        title="Average precision at k and MAP for ranked lists",
        names=("ap_at_k", "map_at_k"),
        references=(rnk.ap_at_k, rnk.map_at_k),
        signature='''def ap_at_k(ranked, relevant, k):
    """AP@k = (1/|Rel|) Σ_{i=1}^{min(k, n)} P@i · rel_i for one query.

    ranked: item ids in rank order (a list); relevant: the set of relevant ids; k: cutoff
    (None = whole list; k > len(ranked) is allowed). P@i = (relevant items among the first i) / i.
    rel_i = 1 if the item at rank i is relevant and did not appear earlier in the list (a
    duplicate keeps its rank but counts once). No relevant item: return 0.0."""

def map_at_k(ranked_lists, relevant_sets, k):
    """Mean of ap_at_k over the queries."""''',
        hint="walk down the list with a running hit count; add hits/i at every rank holding a new "
        "relevant item; divide by the number of relevant items, not by the number found.",
    )
)

_RANKED = ["a", "x", "b", "y", "c"]
_RELEVANT = {"a", "b", "c", "d"}


@MAP.check("hand example: [a, x, b, y, c] with relevant {a, b, c, d} gives (1 + 2/3 + 3/5)/4")
def _map_hand(ap_at_k, map_at_k):
    _close(_num(ap_at_k(_RANKED, _RELEVANT, 5), "ap_at_k"), (1 + 2 / 3 + 3 / 5) / 4, "AP@5")
    _close(_num(ap_at_k(_RANKED, _RELEVANT, 3), "ap_at_k"), (1 + 2 / 3) / 4, "AP@3")


@MAP.check("no relevant item gives 0; k beyond the list length is handled")
def _map_edges(ap_at_k, map_at_k):
    _close(_num(ap_at_k(_RANKED, set(), 5), "ap_at_k"), 0.0, "AP with no relevant item")
    _close(
        _num(ap_at_k(_RANKED, _RELEVANT, 50), "ap_at_k"), (1 + 2 / 3 + 3 / 5) / 4, "AP@50 of a 5-item list"
    )
    _close(_num(ap_at_k(_RANKED, _RELEVANT, None), "ap_at_k"), (1 + 2 / 3 + 3 / 5) / 4, "AP with k=None")


@MAP.check("a duplicate id counts once")
def _map_duplicates(ap_at_k, map_at_k):
    _close(_num(ap_at_k(["a", "a", "b"], {"a", "b"}, 3), "ap_at_k"), (1 + 2 / 3) / 2, "AP of [a, a, b]")


@MAP.check("full rankings: AP = sklearn average_precision_score, MAP = label_ranking_average_precision_score")
def _map_sklearn(ap_at_k, map_at_k):
    import sklearn.metrics as skm

    rng = np.random.default_rng(5)
    lists, sets, rows = [], [], []
    for _ in range(8):
        items = rng.permutation(50)[:12].tolist()
        rel = {i for i in items if rng.random() < 0.35} or {items[-1]}
        lists.append(items)
        sets.append(rel)
        rows.append([1.0 if i in rel else 0.0 for i in items])
        _close(
            _num(ap_at_k(items, rel, 12), "ap_at_k"),
            skm.average_precision_score(rows[-1], -np.arange(12.0)),
            "AP@12 vs average_precision_score",
        )
    scores = np.tile(-np.arange(12.0), (8, 1))
    _close(
        _num(map_at_k(lists, sets, 12), "map_at_k"),
        skm.label_ranking_average_precision_score(rows, scores),
        "MAP",
    )


@MAP.check("map_at_k is the mean over queries")
def _map_mean(ap_at_k, map_at_k):
    lists, sets = [["a", "b"], ["c", "d"], ["e"]], [{"a"}, {"d"}, {"z"}]
    _close(_num(map_at_k(lists, sets, 2), "map_at_k"), (1 + 0.5 + 0) / 3, "MAP of AP 1, 1/2, 0")


# --------------------------------------------------------------------------------------------------
# metrics.ndcg
# --------------------------------------------------------------------------------------------------

NDCG = register(
    Exercise(
        id="metrics.ndcg",
        title="DCG and NDCG: gains, discounts, the ideal ranking, per-query normalization",
        names=("dcg_at_k", "ndcg_at_k", "mean_ndcg_at_k"),
        references=(rnk.dcg_at_k, rnk.ndcg_at_k, rnk.mean_ndcg_at_k),
        signature='''def dcg_at_k(rels, k, gain="linear"):
    """DCG@k = Σ_{i=1}^{min(k, n)} g(rel_i) / log2(i + 1) for the grades rels (n,) of a ranked list.
    gain="linear": g(r) = r; gain="exp": g(r) = 2^r − 1. k=None means the whole list."""

def ndcg_at_k(rels, k, ideal="all", all_rels=None, gain="linear"):
    """DCG@k / IDCG@k, and 0.0 when IDCG@k = 0. IDCG@k is dcg_at_k of the grades sorted in
    decreasing order: of all_rels (every judged item of the query) when ideal="all" — with
    all_rels=None meaning that rels already lists every judged item — or of rels when
    ideal="returned"."""

def mean_ndcg_at_k(rels_per_query, k, gain="linear"):
    """The mean over queries of ndcg_at_k(rels, k, gain=gain) (each list is all of its query's items)."""''',
        hint="ranks start at 1 and the discount is log base 2 of (rank + 1); normalize each query by its "
        "own IDCG before averaging.",
    )
)

_WIKI = [3, 2, 3, 0, 1, 2]  # a ranked list of grades
_WIKI_ALL = [3, 2, 3, 0, 1, 2, 3, 2]  # two more judged items the system did not return


def _dcg_by_formula(rels, k=None, exp=False):
    r = np.asarray(rels, dtype=float)[:k]
    g = 2.0**r - 1 if exp else r
    return float(np.sum(g / np.log2(np.arange(2, r.size + 2))))


@NDCG.check("DCG by hand: [3, 2, 3, 0, 1, 2], linear and exponential gain, cutoffs")
def _ndcg_dcg(dcg_at_k, ndcg_at_k, mean_ndcg_at_k):
    for k in (None, 1, 3, 6, 10):
        _close(_num(dcg_at_k(_WIKI, k), "dcg_at_k"), _dcg_by_formula(_WIKI, k), f"DCG@{k} (linear)")
        _close(
            _num(dcg_at_k(_WIKI, k, gain="exp"), "dcg_at_k"),
            _dcg_by_formula(_WIKI, k, True),
            f"DCG@{k} (exp)",
        )


@NDCG.check("the ideal order gives 1.0; demoting a relevant item lowers NDCG; IDCG = 0 gives 0")
def _ndcg_order(dcg_at_k, ndcg_at_k, mean_ndcg_at_k):
    _close(_num(ndcg_at_k([3, 3, 2, 1, 0], None), "ndcg_at_k"), 1.0, "NDCG of the ideal order")
    high = _num(ndcg_at_k([3, 0, 2, 0, 1], 5), "ndcg_at_k")
    low = _num(ndcg_at_k([0, 3, 2, 0, 1], 5), "ndcg_at_k")
    expect(low < high, f"demoting the top item should lower NDCG: {high:.4f} -> {low:.4f}")
    _close(_num(ndcg_at_k([0, 0, 0], 3), "ndcg_at_k"), 0.0, "NDCG with nothing relevant")


@NDCG.check("the two IDCG conventions differ on [3, 2, 3, 0, 1, 2] with two unreturned relevant items")
def _ndcg_ideal(dcg_at_k, ndcg_at_k, mean_ndcg_at_k):
    dcg = _dcg_by_formula(_WIKI)
    want_all = dcg / _dcg_by_formula(sorted(_WIKI_ALL, reverse=True)[:6])
    want_returned = dcg / _dcg_by_formula(sorted(_WIKI, reverse=True))
    _close(
        _num(ndcg_at_k(_WIKI, 6, ideal="all", all_rels=_WIKI_ALL), "ndcg_at_k"), want_all, "NDCG, ideal='all'"
    )
    _close(_num(ndcg_at_k(_WIKI, 6, ideal="returned"), "ndcg_at_k"), want_returned, "NDCG, ideal='returned'")
    for gain in ("linear", "exp"):
        a = _num(ndcg_at_k(_WIKI, 6, ideal="all", all_rels=_WIKI_ALL, gain=gain), "ndcg_at_k")
        r = _num(ndcg_at_k(_WIKI, 6, ideal="returned", gain=gain), "ndcg_at_k")
        expect(a < r, f"gain={gain}: IDCG over all judged items must give a lower NDCG ({a:.4f} vs {r:.4f})")


@NDCG.check("linear gain with ideal='all' matches sklearn's ndcg_score, query by query")
def _ndcg_sklearn(dcg_at_k, ndcg_at_k, mean_ndcg_at_k):
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(9)
    for _ in range(10):
        t = rng.integers(0, 4, 15).astype(float)
        s = rng.normal(size=15)
        ranked = t[np.argsort(-s)]
        for k in (None, 3, 10):
            _close(_num(ndcg_at_k(ranked, k), "ndcg_at_k"), ndcg_score(t[None], s[None], k=k), f"NDCG@{k}")


@NDCG.check("mean_ndcg_at_k normalizes each query, then averages (= ndcg_score over queries)")
def _ndcg_mean(dcg_at_k, ndcg_at_k, mean_ndcg_at_k):
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(10)
    t = rng.integers(0, 4, (6, 8)).astype(float)
    t[0] = [4, 4, 4, 4, 3, 3, 3, 3]  # one query with a much larger IDCG than the others
    s = rng.normal(size=(6, 8))
    lists = [row_t[np.argsort(-row_s)] for row_t, row_s in zip(t, s, strict=True)]
    for k in (None, 4):
        _close(_num(mean_ndcg_at_k(lists, k), "mean_ndcg_at_k"), ndcg_score(t, s, k=k), f"mean NDCG@{k}")


# --------------------------------------------------------------------------------------------------
# metrics.mrr
# --------------------------------------------------------------------------------------------------

MRR = register(
    Exercise(
        id="metrics.mrr",
        title="Mean reciprocal rank",
        names=("mrr",),
        references=(rnk.mrr,),
        signature='''def mrr(ranked_lists, relevant_sets):
    """MRR = (1/|Q|) Σ_q 1/rank_q, rank_q = the 1-based rank of the first relevant item of query q,
    with 1/rank_q = 0 when no relevant item was returned (that query still counts in |Q|).
    ranked_lists: one list of item ids per query; relevant_sets: one set of relevant ids per query.
    Raise ValueError for an empty list of queries."""''',
        hint="a mean over *all* queries of the reciprocal rank of the *first* hit; ranks start at 1.",
    )
)


@MRR.check("ranks [1, 2, none] give (1 + 1/2 + 0)/3 = 0.5, a mean, not a sum")
def _mrr_hand(mrr):
    _close(_num(mrr([["a", "x"], ["x", "b"], ["x", "y"]], [{"a"}, {"b"}, {"c"}]), "mrr"), 0.5, "MRR")


@MRR.check("the first relevant item counts, not the last or the best")
def _mrr_first(mrr):
    _close(_num(mrr([["x", "a", "y", "b"]], [{"a", "b"}]), "mrr"), 0.5, "MRR with hits at ranks 2 and 4")
    _close(
        _num(mrr([["x", "y", "z", "a"], ["b"]], [{"a"}, {"b"}]), "mrr"),
        (0.25 + 1) / 2,
        "MRR of ranks 4 and 1",
    )


@MRR.check("matches sklearn's LRAP when each query has one relevant item")
def _mrr_sklearn(mrr):
    from sklearn.metrics import label_ranking_average_precision_score

    rng = np.random.default_rng(11)
    lists, sets, rows = [], [], []
    for _ in range(20):
        items = rng.permutation(30)[:10].tolist()
        target = items[int(rng.integers(0, 10))]
        lists.append(items)
        sets.append({target})
        rows.append([1.0 if i == target else 0.0 for i in items])
    ref = label_ranking_average_precision_score(rows, np.tile(-np.arange(10.0), (20, 1)))
    _close(_num(mrr(lists, sets), "mrr"), ref, "MRR vs LRAP")


@MRR.check("an empty list of queries raises ValueError")
def _mrr_empty(mrr):
    expect_raises(ValueError, lambda: mrr([], []), "mrr([], [])")


# --------------------------------------------------------------------------------------------------
# metrics.silhouette
# --------------------------------------------------------------------------------------------------

SILHOUETTE = register(
    Exercise(
        id="metrics.silhouette",
        title="Compactness, separation and the silhouette coefficient",
        names=("silhouette", "compactness", "separation"),
        references=(clu.silhouette_score, clu.compactness, clu.separation),
        signature='''def compactness(X, labels):
    """a_i for every sample, shape (n,): mean Euclidean distance from X[i] to the *other* members of
    its cluster; 0.0 for a singleton cluster. X: (n, d); labels: (n,)."""

def separation(X, labels):
    """b_i for every sample, shape (n,): the smallest, over the other clusters, mean distance from
    X[i] to that cluster's members."""

def silhouette(X, labels):
    """Mean over samples of s_i = (b_i − a_i) / max(a_i, b_i), with s_i = 0 in a singleton cluster,
    as a float. Raise ValueError unless 2 <= number of clusters <= n − 1."""''',
        hint="a_i divides by |C_i| − 1 (the point itself is excluded); b_i is a mean distance to the "
        "nearest other cluster, not a distance between centroids.",
    )
)

_LINE = np.array([[0.0], [1.0], [10.0], [12.0]])


@SILHOUETTE.check("hand example: points 0, 1 | 10, 12 on a line")
def _sil_hand(silhouette, compactness, separation):
    labels = np.array([0, 0, 1, 1])
    _close(compactness(_LINE, labels), [1.0, 1.0, 2.0, 2.0], "compactness a_i")
    _close(separation(_LINE, labels), [11.0, 10.0, 9.5, 11.5], "separation b_i")
    s = [10 / 11, 9 / 10, 7.5 / 9.5, 9.5 / 11.5]
    _close(_num(silhouette(_LINE, labels), "silhouette"), np.mean(s), "silhouette")


@SILHOUETTE.check("matches sklearn's silhouette_score (1e-10), singleton clusters included")
def _sil_sklearn(silhouette, compactness, separation):
    from sklearn.metrics import silhouette_score

    for seed, n in ((0, 30), (1, 120)):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 3))
        labels = rng.integers(0, 4, n)
        labels[0] = 9  # a singleton: s = 0
        _close(
            _num(silhouette(x, labels), "silhouette"),
            silhouette_score(x, labels),
            f"silhouette (n={n})",
            tol=1e-10,
        )


@SILHOUETTE.check("in [−1, 1] for random labels; well-separated blobs score > 0.7")
def _sil_range(silhouette, compactness, separation):
    rng = np.random.default_rng(12)
    for _ in range(5):
        x = rng.normal(size=(40, 2))
        v = _num(silhouette(x, rng.integers(0, 3, 40)), "silhouette")
        expect(-1 <= v <= 1, f"silhouette {v} outside [−1, 1]")
    blobs = np.r_[rng.normal(0, 0.5, (30, 2)), rng.normal(8, 0.5, (30, 2)), rng.normal((0, 8), 0.5, (30, 2))]
    v = _num(silhouette(blobs, np.repeat([0, 1, 2], 30)), "silhouette")
    expect(v > 0.7, f"three well-separated blobs should score > 0.7, got {v:.4f}")


@SILHOUETTE.check("a single cluster raises ValueError")
def _sil_single(silhouette, compactness, separation):
    expect_raises(ValueError, lambda: silhouette(_LINE, np.zeros(4, dtype=int)), "silhouette(one cluster)")


# --------------------------------------------------------------------------------------------------
# metrics.cluster-agreement
# --------------------------------------------------------------------------------------------------

AGREEMENT = register(
    Exercise(
        id="metrics.cluster-agreement",
        title="Rand index, adjusted Rand index, mutual information and NMI",
        names=("rand_index", "adjusted_rand_index", "mutual_info", "nmi"),
        references=(
            clu.rand_score,
            clu.adjusted_rand_score,
            clu.mutual_info_score,
            clu.normalized_mutual_info_score,
        ),
        signature='''def rand_index(labels_true, labels_pred):
    """(pairs grouped alike by both labelings) / C(n, 2); shapes (n,)."""

def adjusted_rand_index(labels_true, labels_pred):
    """(Σ_ij C(n_ij, 2) − E) / (½[Σ_i C(a_i, 2) + Σ_j C(b_j, 2)] − E),
    E = Σ_i C(a_i, 2) · Σ_j C(b_j, 2) / C(n, 2); n_ij from the contingency table, a_i, b_j its sums."""

def mutual_info(labels_true, labels_pred):
    """MI = Σ_ij p_ij log(p_ij / (p_i p_j)) in nats (natural log), p_ij = n_ij / n."""

def nmi(labels_true, labels_pred):
    """MI / ((H(U) + H(V)) / 2), the arithmetic-mean normalization (scikit-learn's default)."""''',
        hint="build the contingency table n_ij first; every index is a function of it and of its row and "
        "column sums, which is why label names cannot matter.",
    )
)


@AGREEMENT.check("identical partitions give 1, and MI equals the entropy (nats)")
def _agree_identical(rand_index, adjusted_rand_index, mutual_info, nmi):
    a = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    for fn in (rand_index, adjusted_rand_index, nmi):
        _close(_num(fn(a, a), fn.__name__), 1.0, f"{fn.__name__}(a, a)")
    p = np.array([2, 3, 4]) / 9
    _close(_num(mutual_info(a, a), "mutual_info"), -np.sum(p * np.log(p)), "mutual_info(a, a) vs H(a)")


@AGREEMENT.check("invariant to permuting the label names")
def _agree_names(rand_index, adjusted_rand_index, mutual_info, nmi):
    rng = np.random.default_rng(13)
    a, b = rng.integers(0, 4, 60), rng.integers(0, 3, 60)
    renamed = np.array([7, 2, 9, 0])[a]
    for fn in (rand_index, adjusted_rand_index, mutual_info, nmi):
        _close(
            _num(fn(renamed, b), fn.__name__), _num(fn(a, b), fn.__name__), f"{fn.__name__} after renaming"
        )


@AGREEMENT.check("independent random labelings: |ARI| < 0.01 while RI > 0.7")
def _agree_random(rand_index, adjusted_rand_index, mutual_info, nmi):
    rng = np.random.default_rng(14)
    a, b = rng.integers(0, 10, 5000), rng.integers(0, 10, 5000)
    ari, ri = _num(adjusted_rand_index(a, b), "ARI"), _num(rand_index(a, b), "RI")
    expect(abs(ari) < 0.01, f"ARI of independent labelings should be ≈ 0, got {ari:.4f}")
    expect(ri > 0.7, f"RI of independent labelings with 10 clusters is ≈ 0.82 by chance, got {ri:.4f}")


@AGREEMENT.check("match rand_score, adjusted_rand_score, mutual_info_score, normalized_mutual_info_score")
def _agree_sklearn(rand_index, adjusted_rand_index, mutual_info, nmi):
    import sklearn.metrics as skm

    pairs = (
        (rand_index, skm.rand_score),
        (adjusted_rand_index, skm.adjusted_rand_score),
        (mutual_info, skm.mutual_info_score),
        (nmi, skm.normalized_mutual_info_score),
    )
    for seed, n, ka, kb in ((0, 10, 2, 3), (1, 200, 5, 4), (2, 500, 12, 7)):
        rng = np.random.default_rng(seed)
        a, b = rng.integers(0, ka, n), rng.integers(0, kb, n)
        b[: n // 2] = a[: n // 2] % kb  # partly agreeing
        for fn, ref in pairs:
            _close(_num(fn(a, b), fn.__name__), ref(a, b), f"{fn.__name__} (n={n})")
