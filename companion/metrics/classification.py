"""Classification metrics: the confusion matrix, precision, recall, F-scores, and the threshold-free
ROC and precision–recall curves with their areas.

Every function accepts numpy arrays, lists or torch tensors, computes in float64 and follows
scikit-learn's conventions (argument order ``(y_true, y_pred)`` or ``(y_true, y_score)``, label order,
``zero_division``, curve end points), so the chapter can check each one against scikit-learn. The
curves and their areas cost one sort, O(n log n).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from companion.metrics._inputs import (
    _short,
    as_1d,
    as_float,
    binary_target,
    check_labels,
    check_zero_division,
    divide,
    same_length,
)

__all__ = [
    "accuracy",
    "accuracy_score",
    "auc",
    "average_precision",
    "average_precision_score",
    "balanced_accuracy_score",
    "confusion_matrix",
    "f1",
    "f1_score",
    "fbeta",
    "fbeta_score",
    "g_mean",
    "mann_whitney_twice_u",
    "mann_whitney_u",
    "pr_curve",
    "precision",
    "precision_recall_curve",
    "precision_recall_fscore_support",
    "precision_score",
    "recall",
    "recall_score",
    "roc_auc",
    "roc_auc_score",
    "roc_curve",
]

_AVERAGES = (None, "binary", "micro", "macro", "weighted")


# --------------------------------------------------------------------------------------------------
# Label handling
# --------------------------------------------------------------------------------------------------


def _class_labels(name: str, y: Any) -> np.ndarray:
    a = check_labels(name, as_1d(name, y))
    if a.dtype.kind == "f" and not np.all(np.mod(a, 1) == 0):
        raise ValueError(
            f"{name}: contains non-integer floats such as {a[np.mod(a, 1) != 0][0]!r}; classification "
            "metrics need class labels (threshold the scores first)"
        )
    return a


def _encode(y_true: np.ndarray, y_pred: np.ndarray, labels: Any = None):
    """Sorted class list and the integer codes of ``y_true``/``y_pred`` in it (union with ``labels``)."""
    parts = [y_true, y_pred]
    if labels is not None:
        parts.append(np.asarray(labels))
    try:
        classes = np.unique(np.concatenate(parts))
    except TypeError as exc:
        raise TypeError(f"y_true, y_pred and labels mix label types that cannot be compared: {exc}") from None
    return classes, np.searchsorted(classes, y_true), np.searchsorted(classes, y_pred)


def confusion_matrix(
    y_true: Any, y_pred: Any, *, labels: Any = None, normalize: str | None = None
) -> np.ndarray:
    """The confusion matrix C, with ``C[i, j]`` = number of samples of true class i predicted as j.

    Rows are true classes, columns predicted classes, both in the order of ``labels`` (default: the
    sorted union of the classes in ``y_true`` and ``y_pred``), as in scikit-learn. For binary labels
    {0, 1} this is ``[[TN, FP], [FN, TP]]``.

    Args:
        y_true: true classes, shape ``(n,)``.
        y_pred: predicted classes, shape ``(n,)``.
        labels: classes to index the matrix by; samples of other classes are ignored.
        normalize: ``None`` (counts), ``"true"`` (rows sum to 1), ``"pred"`` (columns sum to 1) or
            ``"all"`` (the matrix sums to 1).

    Returns:
        ``(K, K)`` int64 counts, or float64 fractions when ``normalize`` is set.
    """
    t = _class_labels("y_true", y_true)
    p = _class_labels("y_pred", y_pred)
    same_length(("y_true", "y_pred"), t, p)
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize: expected None, 'true', 'pred' or 'all', got {normalize!r}")
    classes, ti, pi = _encode(t, p, labels)
    if labels is None:
        order = np.arange(classes.shape[0])
    else:
        wanted = as_1d("labels", labels)
        if np.unique(wanted).shape[0] != wanted.shape[0]:
            raise ValueError(f"labels: contains duplicates: {_short(wanted)}")
        order = np.searchsorted(classes, wanted)
    k_all = classes.shape[0]
    full = np.bincount(ti * k_all + pi, minlength=k_all * k_all).reshape(k_all, k_all)
    cm = full[np.ix_(order, order)]
    if normalize is None:
        return cm
    with np.errstate(divide="ignore", invalid="ignore"):
        if normalize == "true":
            out = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            out = cm / cm.sum(axis=0, keepdims=True)
        else:
            out = cm / cm.sum()
    return np.nan_to_num(out)  # an empty row or column gives 0, as in scikit-learn


def _counts(y_true: Any, y_pred: Any, labels: Any, average: str | None, pos_label: Any):
    """Per-label true-positive, predicted and true counts for the labels the average uses."""
    if average not in _AVERAGES:
        raise ValueError(f"average: expected one of {_AVERAGES}, got {average!r}")
    t = _class_labels("y_true", y_true)
    p = _class_labels("y_pred", y_pred)
    same_length(("y_true", "y_pred"), t, p)
    present = np.unique(np.concatenate([t, p]))
    if average == "binary":
        if present.shape[0] > 2:
            raise ValueError(
                f"average='binary' needs at most 2 classes, got {present.shape[0]} ({_short(present)}); "
                "choose average='micro', 'macro', 'weighted' or None"
            )
        if pos_label not in present.tolist() and present.shape[0] >= 2:
            raise ValueError(f"pos_label: {pos_label!r} is not one of the classes {_short(present)}")
        labels = [pos_label]
    classes, ti, pi = _encode(t, p, labels)
    k = classes.shape[0]
    tp = np.bincount(ti[ti == pi], minlength=k)
    pred = np.bincount(pi, minlength=k)
    true = np.bincount(ti, minlength=k)
    if labels is not None:
        idx = np.searchsorted(classes, np.asarray(labels))
        tp, pred, true = tp[idx], pred[idx], true[idx]
    return tp, pred, true


def _nanaverage(a: np.ndarray, weights: np.ndarray | None) -> float:
    """Average ignoring NaN (from ``zero_division=nan``); all-zero weights fall back to a plain mean."""
    keep = ~np.isnan(a)
    if a.shape[0] == 0 or not keep.any():
        return float("nan")
    if weights is None or weights[keep].sum() == 0:
        return float(a[keep].mean())
    return float(np.average(a[keep], weights=weights[keep]))


def precision_recall_fscore_support(
    y_true: Any,
    y_pred: Any,
    *,
    beta: float = 1.0,
    labels: Any = None,
    pos_label: Any = 1,
    average: str | None = None,
    zero_division: Any = "warn",
):
    """Precision, recall, F-beta and support, per class or averaged, exactly as scikit-learn defines them.

    For one class with counts TP, FP, FN: precision P = TP/(TP + FP), recall R = TP/(TP + FN) and
    F_β = (1 + β²)·TP / ((1 + β²)·TP + β²·FN + FP), which equals (1 + β²)PR/(β²P + R) when P, R are
    defined. A 0/0 is replaced by ``zero_division``.

    Args:
        y_true: true classes, shape ``(n,)``.
        y_pred: predicted classes, shape ``(n,)``.
        beta: β ≥ 0; β = 0 gives precision, ``inf`` gives recall.
        labels: the classes to report (and to average over), in this order.
        pos_label: the positive class when ``average="binary"``.
        average: ``None`` (per class), ``"binary"`` (the ``pos_label`` class only), ``"micro"`` (pool
            the counts), ``"macro"`` (unweighted mean over classes) or ``"weighted"`` (mean weighted by
            support).
        zero_division: value for 0/0: ``"warn"`` (0 and a
            ``companion.metrics.UndefinedMetricWarning``), 0, 1 or ``nan`` (NaN entries are left out
            of averages).

    Returns:
        ``(precision, recall, fbeta, support)``: arrays of shape ``(K,)`` when ``average is None``,
        otherwise three floats and ``None``.
    """
    check_zero_division(zero_division)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
        raise ValueError(f"beta: expected a number >= 0, got {beta!r}")
    tp, pred, true = _counts(y_true, y_pred, labels, average, pos_label)
    if average == "micro":
        tp, pred, true = tp.sum(keepdims=True), pred.sum(keepdims=True), true.sum(keepdims=True)
    precision_ = divide(tp, pred, zero_division, "precision (no predicted samples)")
    recall_ = divide(tp, true, zero_division, "recall (no true samples)")
    if np.isposinf(beta):
        f = recall_
    elif beta == 0:
        f = precision_
    else:
        b2 = float(beta) ** 2
        f = divide((1 + b2) * tp, b2 * true + pred, zero_division, "F-score (no true nor predicted samples)")
    if average is None:
        return precision_, recall_, f, true
    weights = true.astype(np.float64) if average == "weighted" else None
    return _nanaverage(precision_, weights), _nanaverage(recall_, weights), _nanaverage(f, weights), None


def _support_metric(index: int, name: str, doc: str) -> Callable[..., float | np.ndarray]:
    """One of :func:`precision_recall_fscore_support`'s outputs as a metric of its own (sklearn's API)."""

    def metric(
        y_true: Any,
        y_pred: Any,
        *,
        labels: Any = None,
        pos_label: Any = 1,
        average: str | None = "binary",
        zero_division: Any = "warn",
    ) -> float | np.ndarray:
        return precision_recall_fscore_support(
            y_true, y_pred, labels=labels, pos_label=pos_label, average=average, zero_division=zero_division
        )[index]

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = (
        doc + "\n\n    Arguments as in :func:`precision_recall_fscore_support`; shapes ``(n,)``.\n    "
    )
    return metric


precision_score = _support_metric(
    0,
    "precision_score",
    "Precision TP/(TP + FP): of the samples predicted positive, the fraction that are positive.",
)
recall_score = _support_metric(
    1,
    "recall_score",
    "Recall (true-positive rate) TP/(TP + FN): of the positive samples, the fraction found.",
)


def fbeta_score(
    y_true: Any,
    y_pred: Any,
    *,
    beta: float,
    labels: Any = None,
    pos_label: Any = 1,
    average: str | None = "binary",
    zero_division: Any = "warn",
) -> float | np.ndarray:
    """F_β = (1 + β²)PR/(β²P + R): recall counts β times as much as precision.

    Arguments as in :func:`precision_recall_fscore_support`; shapes ``(n,)``.
    """
    _, _, f, _ = precision_recall_fscore_support(
        y_true,
        y_pred,
        beta=beta,
        labels=labels,
        pos_label=pos_label,
        average=average,
        zero_division=zero_division,
    )
    return f


def f1_score(
    y_true: Any,
    y_pred: Any,
    *,
    labels: Any = None,
    pos_label: Any = 1,
    average: str | None = "binary",
    zero_division: Any = "warn",
) -> float | np.ndarray:
    """F1 = 2PR/(P + R), the equal-weight harmonic mean of precision and recall (F_β with β = 1).

    Arguments as in :func:`precision_recall_fscore_support`; shapes ``(n,)``.
    """
    return fbeta_score(
        y_true,
        y_pred,
        beta=1.0,
        labels=labels,
        pos_label=pos_label,
        average=average,
        zero_division=zero_division,
    )


def precision(y_true: Any, y_pred: Any, *, pos_label: Any = 1, zero_division: Any = 0.0) -> float:
    """Binary precision TP/(TP + FP); ``zero_division`` when nothing is predicted positive.

    Shapes ``(n,)``. The chapter's short form of :func:`precision_score` (quiet default 0.0).
    """
    return precision_score(y_true, y_pred, pos_label=pos_label, zero_division=zero_division)


def recall(y_true: Any, y_pred: Any, *, pos_label: Any = 1, zero_division: Any = 0.0) -> float:
    """Binary recall TP/(TP + FN); ``zero_division`` when there is no positive sample.

    Shapes ``(n,)``. The chapter's short form of :func:`recall_score`.
    """
    return recall_score(y_true, y_pred, pos_label=pos_label, zero_division=zero_division)


def fbeta(y_true: Any, y_pred: Any, beta: float, *, pos_label: Any = 1, zero_division: Any = 0.0) -> float:
    """Binary F_β = (1 + β²)·TP/((1 + β²)·TP + β²·FN + FP); ``zero_division`` when TP = FN = FP = 0.

    Shapes ``(n,)``. The chapter's short form of :func:`fbeta_score`.
    """
    return fbeta_score(y_true, y_pred, beta=beta, pos_label=pos_label, zero_division=zero_division)


def f1(y_true: Any, y_pred: Any, *, pos_label: Any = 1, zero_division: Any = 0.0) -> float:
    """Binary F1 = 2PR/(P + R) = 2TP/(2TP + FN + FP). Shapes ``(n,)``."""
    return fbeta(y_true, y_pred, 1.0, pos_label=pos_label, zero_division=zero_division)


def accuracy_score(y_true: Any, y_pred: Any) -> float:
    """The fraction of samples whose predicted class equals the true class. Shapes ``(n,)``."""
    t = _class_labels("y_true", y_true)
    p = _class_labels("y_pred", y_pred)
    same_length(("y_true", "y_pred"), t, p)
    return float(np.mean(t == p))


accuracy = accuracy_score


def balanced_accuracy_score(y_true: Any, y_pred: Any) -> float:
    """The mean over the classes present in ``y_true`` of their recall; (TPR + TNR)/2 for two classes.

    A constant majority-class prediction scores 1/K, whatever the imbalance. Shapes ``(n,)``.
    """
    cm = confusion_matrix(y_true, y_pred)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def g_mean(y_true: Any, y_pred: Any) -> float:
    """The geometric mean of the per-class recalls; √(TPR·TNR) for two classes.

    It is 0 as soon as one class is never recognized. Shapes ``(n,)``.
    """
    cm = confusion_matrix(y_true, y_pred)
    support = cm.sum(axis=1)
    present = support > 0
    recalls = np.diag(cm)[present] / support[present]
    return float(np.prod(recalls) ** (1.0 / recalls.shape[0]))


# --------------------------------------------------------------------------------------------------
# Threshold-free metrics: ROC, AUC, precision–recall
# --------------------------------------------------------------------------------------------------


def _binary_inputs(y_true: Any, y_score: Any, pos_label: Any) -> tuple[np.ndarray, np.ndarray]:
    y = binary_target(y_true, pos_label)
    s = as_float("y_score", y_score)
    same_length(("y_true", "y_score"), y, s)
    return y, s


def _require_both_classes(y: np.ndarray, metric: str) -> tuple[int, int]:
    n_pos = int(np.count_nonzero(y))
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        which = "positive" if n_pos == 0 else "negative"
        raise ValueError(
            f"y_true: only one class is present (no {which} sample); {metric} needs both classes"
        )
    return n_pos, n_neg


def _threshold_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive counts when predicting positive for ``score >= t``, one entry per
    distinct score ``t``, in decreasing order of ``t``. One sort: O(n log n)."""
    order = np.argsort(s)[::-1]  # any order within ties is fine: ties are grouped below
    s_sorted = s[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.shape[0] - 1]
    tps = np.cumsum(y[order], dtype=np.int64)[last_of_group]
    fps = last_of_group + 1 - tps
    return fps.astype(np.float64), tps.astype(np.float64), s_sorted[last_of_group]


def roc_curve(
    y_true: Any, y_score: Any, *, pos_label: Any = None, drop_intermediate: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve: false-positive rate against true-positive rate at every threshold.

    Predicting positive for ``score >= t`` gives one point ``(FPR, TPR)`` per distinct score ``t``. As
    in scikit-learn, the curve starts at (0, 0) with threshold ``inf``, thresholds decrease, and
    ``drop_intermediate`` removes points collinear with their neighbours (the area is unchanged).

    Args:
        y_true: binary labels, shape ``(n,)``.
        y_score: real scores, higher = more positive, shape ``(n,)``; finite.
        pos_label: the positive class (needed unless the labels are {0, 1} or {-1, 1}).
        drop_intermediate: drop points that lie on a straight segment.

    Returns:
        ``(fpr, tpr, thresholds)``, each of shape ``(m,)`` with ``m <= n_distinct + 1``.

    Raises:
        ValueError: if ``y_true`` has only one class, lengths differ, or a score is NaN/inf.
    """
    y, s = _binary_inputs(y_true, y_score, pos_label)
    n_pos, n_neg = _require_both_classes(y, "a ROC curve")
    fps, tps, thresholds = _threshold_counts(y, s)
    if drop_intermediate and fps.shape[0] > 2:
        corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.flatnonzero(np.r_[True, corner, True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps = np.r_[0.0, fps]
    tps = np.r_[0.0, tps]
    return fps / n_neg, tps / n_pos, np.r_[np.inf, thresholds]


def mann_whitney_u(y_true: Any, y_score: Any, *, pos_label: Any = None) -> float:
    """The Mann–Whitney statistic U = R⁺ − n⁺(n⁺ + 1)/2 of the positives' scores against the negatives'.

    R⁺ is the sum of the positives' ranks among all scores in ascending order, tied scores sharing their
    mid-rank. U counts the (positive, negative) pairs with the positive scored higher, ties counting ½.
    Shapes ``(n,)``; O(n log n).
    """
    y, s = _binary_inputs(y_true, y_score, pos_label)
    n_pos, _ = _require_both_classes(y, "the Mann–Whitney U statistic")
    return mann_whitney_twice_u(y, s, n_pos) / 2.0


def mann_whitney_twice_u(y: np.ndarray, s: np.ndarray, n_pos: int) -> int:
    """2U, exactly, in integer arithmetic (mid-ranks are half-integers, so doubling keeps them whole).

    The core of :func:`mann_whitney_u` and :func:`roc_auc_score`, for validated inputs.

    Args:
        y: ``(n,)`` 0/1 labels (1 = positive).
        s: ``(n,)`` scores; ties get mid-ranks.
        n_pos: the number of positives, ``y.sum()``.

    Returns:
        ``2U`` as an ``int``, where ``U`` = Σ over positives of their rank − n⁺(n⁺ + 1)/2.
    """
    order = np.argsort(s)
    s_sorted = s[order]
    start = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])  # first index of each tie group
    size = np.diff(np.r_[start, s_sorted.shape[0]])
    pos_in_group = np.add.reduceat(y[order].astype(np.int64), start)
    # a group occupying 0-based positions start..start+size-1 has mid-rank (2·start + size + 1)/2
    twice_rank_sum = int(np.dot(pos_in_group, 2 * start + size + 1))
    return twice_rank_sum - n_pos * (n_pos + 1)


def roc_auc_score(y_true: Any, y_score: Any, *, pos_label: Any = None) -> float:
    """Area under the ROC curve, computed as the Mann–Whitney probability.

    AUC = P(s⁺ > s⁻) + ½·P(s⁺ = s⁻) for a random positive and a random negative = U/(n⁺n⁻), with
    U from mid-ranks (:func:`mann_whitney_u`): one sort, O(n log n), exact integer arithmetic up to
    the final division. It equals the trapezoidal area under :func:`roc_curve`.

    Args:
        y_true: binary labels, shape ``(n,)``.
        y_score: real scores, higher = more positive, shape ``(n,)``; finite.
        pos_label: the positive class (needed unless the labels are {0, 1} or {-1, 1}).

    Raises:
        ValueError: if ``y_true`` has only one class (AUC is undefined), lengths differ, or a score is
            NaN/inf.
    """
    y, s = _binary_inputs(y_true, y_score, pos_label)
    n_pos, n_neg = _require_both_classes(y, "ROC AUC")
    return mann_whitney_twice_u(y, s, n_pos) / (2 * n_pos * n_neg)


roc_auc = roc_auc_score


def auc(x: Any, y: Any) -> float:
    """Trapezoidal area under a curve given by points ``(x[i], y[i])`` with monotonic ``x``.

    Args:
        x: shape ``(m,)``, increasing or decreasing, m ≥ 2.
        y: shape ``(m,)``.
    """
    xa = as_float("x", x)
    ya = as_float("y", y)
    same_length(("x", "y"), xa, ya)
    if xa.shape[0] < 2:
        raise ValueError(f"x: at least 2 points are needed to compute an area, got {xa.shape[0]}")
    dx = np.diff(xa)
    if np.all(dx >= 0):
        direction = 1.0
    elif np.all(dx <= 0):
        direction = -1.0
    else:
        raise ValueError("x: must be monotonic (increasing or decreasing)")
    return float(direction * np.trapezoid(ya, xa))


def precision_recall_curve(
    y_true: Any, y_score: Any, *, pos_label: Any = None, drop_intermediate: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The precision–recall curve, in scikit-learn's layout.

    For each distinct score ``t`` (increasing), precision and recall of predicting positive for
    ``score >= t``; then a final point (precision 1, recall 0) with no threshold, so that recall
    decreases along the arrays. ``drop_intermediate`` keeps only the first and last point of each run
    of equal recall (scikit-learn's default is ``False``).

    Args:
        y_true: binary labels, shape ``(n,)``.
        y_score: real scores, shape ``(n,)``; finite.
        pos_label: the positive class (needed unless the labels are {0, 1} or {-1, 1}).
        drop_intermediate: drop points that do not change the recall.

    Returns:
        ``(precision, recall, thresholds)`` of shapes ``(m + 1,)``, ``(m + 1,)``, ``(m,)``.

    Raises:
        ValueError: if ``y_true`` has no positive sample (recall is undefined).
    """
    y, s = _binary_inputs(y_true, y_score, pos_label)
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0:
        raise ValueError("y_true: no positive sample; precision and recall are undefined")
    fps, tps, thresholds = _threshold_counts(y, s)
    if drop_intermediate and fps.shape[0] > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    precision_ = tps / (tps + fps)  # tps + fps >= 1 at every threshold
    recall_ = tps / n_pos
    return np.r_[precision_[::-1], 1.0], np.r_[recall_[::-1], 0.0], thresholds[::-1]


def average_precision_score(y_true: Any, y_score: Any, *, pos_label: Any = None) -> float:
    """Average precision AP = Σ_k (R_k − R_{k−1})·P_k over the thresholds, step-wise, not interpolated.

    Equal to the mean, over the positives, of the precision at the threshold that first includes
    them (all tied samples enter together). Matches scikit-learn's ``average_precision_score``.

    Args:
        y_true: binary labels, shape ``(n,)``.
        y_score: real scores, shape ``(n,)``; finite.
        pos_label: the positive class (needed unless the labels are {0, 1} or {-1, 1}).

    Raises:
        ValueError: if ``y_true`` has no positive sample.
    """
    y, s = _binary_inputs(y_true, y_score, pos_label)
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0:
        raise ValueError("y_true: no positive sample; average precision is undefined")
    fps, tps, _ = _threshold_counts(y, s)
    gained = np.diff(np.r_[0.0, tps])  # positives that enter at each threshold
    return float(max(0.0, np.sum(gained / n_pos * (tps / (tps + fps)))))


pr_curve = precision_recall_curve
average_precision = average_precision_score
