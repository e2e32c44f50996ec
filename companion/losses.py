"""Loss functions (损失函数): cross-entropy (交叉熵), log loss (对数损失), regression losses, perplexity.

Every loss here is a negative log-likelihood or a robust relative of one, derived in the Loss
functions chapter:

* categorical NLL of a softmax → :func:`cross_entropy` (with ``ignore_index``, ``label_smoothing``,
  class ``weight`` and soft targets, following ``torch.nn.functional.cross_entropy`` exactly);
* Bernoulli NLL of a sigmoid → :func:`binary_cross_entropy_with_logits` (from logits) and
  :func:`log_loss` (from probabilities, like ``sklearn.metrics.log_loss``);
* Gaussian NLL → :func:`gaussian_nll` (like ``torch.nn.functional.gaussian_nll_loss``), which is
  :func:`mse` up to a scale and a constant;
* :func:`mae`, :func:`rmse` and :func:`huber` for regression;
* for language models, :func:`lm_loss` — the one LM loss of the package (the GPT, the trainer and the
  later chapters use it), the mean next-token cross-entropy over the counted targets — and
  :func:`perplexity` = ``exp(CE)``, and :func:`length_extrapolation`, the perplexity of a model at
  each of several evaluation lengths.

Shapes: ``N`` examples, ``C`` classes, ``B`` batch, ``T`` sequence length. Class scores are
*logits* with the class axis **last**, ``(N, C)`` or ``(B, T, C)`` — the layout of a language model's
output. (PyTorch puts the class axis second for ``(N, C, d1, …)``; for 2-D input the two agree.)

One deliberate difference from PyTorch: with ``reduction="mean"``, a batch in which every target is
ignored (or every kept target has weight 0) gives a loss of ``0.0`` instead of ``0/0 = NaN``, so a
fully padded batch cannot poison training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from companion._validate import check_positive_int, check_probability, check_tensor
from companion.nn.positional import PositionOutOfRangeError

__all__ = [
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "gaussian_nll",
    "huber",
    "length_extrapolation",
    "lm_loss",
    "log_loss",
    "log_softmax",
    "mae",
    "mse",
    "perplexity",
    "rmse",
    "smooth_targets",
]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: object) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    return reduction  # type: ignore[return-value]


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, and 0 where ``den == 0`` — with finite gradients (no NaN from the unused branch)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return _safe_divide(loss.sum(), torch.tensor(float(loss.numel()), dtype=loss.dtype))
    return loss


def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable ``log softmax``: ``z - m - log Σ exp(z - m)`` with ``m = max(z)``.

    Subtracting the maximum cancels mathematically but keeps ``exp`` from overflowing: every exponent
    is ``≤ 0``, and the largest is exactly 0, so the sum is at least 1 and its log is finite. Logits
    of ±1e4 (float32 or float64) give exact, finite results. ``m`` is treated as a constant for
    autograd (the result does not depend on it).

    Args:
        logits: any shape ``(..., C, ...)``, floating point.
        dim: the class axis.

    Returns:
        log-probabilities, same shape as ``logits``; ``exp`` of each slice along ``dim`` sums to 1.
    """
    check_tensor("logits", logits, floating=True)
    m = logits.detach().amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # an all -inf slice stays -inf, not NaN
    shifted = logits - m
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def smooth_targets(
    target: torch.Tensor, num_classes: int, eps: float, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Label-smoothed target distribution ``q = (1 - ε)·onehot(y) + ε/K``.

    Args:
        target: integer class indices, any shape ``(...)``, values in ``[0, num_classes)``.
        num_classes: ``K``.
        eps: smoothing ``ε`` in ``[0, 1)``.
        dtype: floating dtype of the result (default: torch's default dtype).

    Returns:
        ``(..., K)``: each row sums to 1, with ``1 - ε + ε/K`` at the target and ``ε/K`` elsewhere.
    """
    check_tensor("target", target)
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target: expected integer class indices, got dtype {target.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    eps = check_probability("eps", eps)
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(
            f"target: class indices must lie in [0, num_classes={num_classes}), got values in "
            f"[{int(target.min())}, {int(target.max())}]"
        )
    dtype = dtype or torch.get_default_dtype()
    onehot = torch.nn.functional.one_hot(target.long(), num_classes).to(dtype)
    return (1.0 - eps) * onehot + eps / num_classes


def _check_class_target(target: torch.Tensor, shape: tuple[int, ...], n_classes: int, ignore_index: int):
    if target.dtype == torch.bool:
        raise TypeError("target: expected integer class indices (or probabilities), got dtype torch.bool")
    if tuple(target.shape) != shape:
        raise ValueError(
            f"target: expected class indices of shape {shape} (the logits' shape without the class "
            f"axis), got shape {tuple(target.shape)}"
        )
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if bool(bad.any()):
        value = int(target[bad][0])
        raise ValueError(
            f"target: class indices must lie in [0, C={n_classes}) or equal ignore_index={ignore_index}, "
            f"got {value}"
        )


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of softmax(logits) against class indices or class probabilities.

    With class indices ``y`` and ``log p = log_softmax(z)``, the loss of one example is the
    categorical negative log-likelihood ``-log p_y = logsumexp(z) - z_y``. With label smoothing ``ε``
    the target becomes ``q = (1 - ε)·onehot(y) + ε/C``:

    ``ℓ = (1 - ε)·w_y·(-log p_y) + (ε/C)·Σ_c w_c·(-log p_c)``  (``w = 1`` without ``weight``).

    This follows ``torch.nn.functional.cross_entropy`` exactly, including its conventions:

    * positions whose target equals ``ignore_index`` contribute 0 and are left out of the mean;
    * ``reduction="mean"`` divides by ``Σ w_{y_i}`` over the kept positions — for *both* terms of
      ``ℓ`` — so without weights it is the mean over the kept positions;
    * probability targets (a floating ``target`` shaped like ``logits``) are smoothed as
      ``(1 - ε)·q + ε/C``; their mean divides by the number of positions, ignoring ``weight``,
      and ``ignore_index`` does not apply.

    Unlike PyTorch, a mean over zero kept positions (every target ignored) is ``0.0``, not NaN.

    Args:
        logits: ``(N, C)`` or ``(B, T, C)`` unnormalized scores, class axis last, floating point.
        target: ``(N,)`` or ``(B, T)`` integer class indices in ``[0, C)`` or equal to
            ``ignore_index``; or probabilities with the shape of ``logits``.
        ignore_index: target value whose positions are skipped (padding, prompt tokens).
        label_smoothing: ``ε`` in ``[0, 1]``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per position, shape ``logits.shape[:-1]``).
        weight: optional ``(C,)`` per-class weights.

    Returns:
        A scalar, or ``(N,)`` / ``(B, T)`` for ``reduction="none"``.

    Raises:
        ValueError: bad shapes, class indices out of range, ``label_smoothing`` outside ``[0, 1]``,
            an unknown ``reduction``.
        TypeError: non-floating logits or weights, boolean targets.
    """
    check_tensor("logits", logits, ndim=(2, 3), floating=True)
    check_tensor("target", target)
    eps = check_probability("label_smoothing", label_smoothing, allow_one=True)
    reduction = _check_reduction(reduction)
    n_classes = logits.shape[-1]
    if n_classes < 1:
        raise ValueError(f"logits: the class axis (last) must not be empty, got shape {tuple(logits.shape)}")
    if weight is not None:
        check_tensor("weight", weight, ndim=1, floating=True)
        if weight.shape[0] != n_classes:
            raise ValueError(
                f"weight: expected shape ({n_classes},) (one per class), got {tuple(weight.shape)}"
            )
        if bool((weight < 0).any()):  # a negative weight turns the loss into a reward
            raise ValueError(f"weight: class weights must be >= 0, got {weight.tolist()}")
        weight = weight.to(logits.dtype)
    logp = log_softmax(logits, dim=-1)

    if target.is_floating_point():  # probability ("soft") targets
        if target.shape != logits.shape:
            raise ValueError(
                f"target: probability targets must have the logits' shape {tuple(logits.shape)}, "
                f"got {tuple(target.shape)}"
            )
        if bool((target < 0).any()) or not bool(torch.isfinite(target).all()):
            raise ValueError("target: probability targets must be finite and >= 0")
        q = target.to(logits.dtype)
        if eps > 0:
            q = (1.0 - eps) * q + eps / n_classes
        terms = -logp * q if weight is None else -logp * q * weight
        return _reduce(terms.sum(-1), reduction)

    _check_class_target(target, tuple(logits.shape[:-1]), n_classes, ignore_index)
    keep = target != ignore_index
    safe_target = torch.where(keep, target, torch.zeros_like(target)).long()  # any valid index will do
    nll = -logp.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)  # -log p_y, shape logits.shape[:-1]
    w_y = torch.ones_like(nll) if weight is None else weight[safe_target]
    w_y = w_y * keep
    loss = (1.0 - eps) * w_y * nll
    if eps > 0:
        uniform = -logp.sum(-1) if weight is None else -(logp * weight).sum(-1)  # Σ_c w_c (-log p_c)
        loss = loss + (eps / n_classes) * uniform * keep
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return _safe_divide(loss.sum(), w_y.sum())


def binary_cross_entropy_with_logits(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Bernoulli negative log-likelihood of ``σ(z)``, computed from the logit ``z`` without overflow.

    ``-[y log σ(z) + (1 - y) log(1 - σ(z))] = softplus(z) - y·z``, with
    ``-log σ(z) = log1p(exp(-|z|)) + max(-z, 0)`` evaluated branch by branch (``z ≥ 0`` and ``z < 0``),
    so that ``|z| = 1e4`` is exact. With ``pos_weight`` the positive term is multiplied by it, as in
    ``torch.nn.functional.binary_cross_entropy_with_logits``. Its derivative with respect to ``z`` is
    ``σ(z) - y`` (without weights), also at ``z = 0``.

    Args:
        logits: any shape ``(...)``, floating point.
        target: same shape, values in ``[0, 1]`` (soft labels allowed).
        weight: optional, broadcastable to ``logits``; multiplies each element's loss.
        pos_weight: optional, broadcastable to ``logits`` (typically ``(C,)`` for multi-label).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the element-wise losses for ``reduction="none"``.
    """
    check_tensor("logits", logits, floating=True)
    check_tensor("target", target)
    reduction = _check_reduction(reduction)
    if target.shape != logits.shape:
        raise ValueError(
            f"target: expected the shape of logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    if target.is_floating_point() and not bool(((target >= 0) & (target <= 1)).all()):
        raise ValueError("target: expected probabilities in [0, 1] (soft labels allowed), got values outside")
    if not target.is_floating_point() and not bool(((target == 0) | (target == 1)).all()):
        raise ValueError("target: expected 0/1 labels or probabilities in [0, 1], got other values")
    y = target.to(logits.dtype)
    # -log σ(z) = softplus(-z) = log1p(exp(-z)) for z ≥ 0 and -z + log1p(exp(z)) for z < 0: neither
    # exponent is positive, so nothing overflows. Each branch sees only its own sign of z (the other
    # entries are replaced by 0), so the branch not taken has a finite gradient and autograd gives
    # exactly σ(z) - y, also at z = 0, where max(-z, 0) + log1p(exp(-|z|)) would have kinks.
    pos = logits >= 0
    z_pos = torch.where(pos, logits, torch.zeros_like(logits))
    z_neg = torch.where(pos, torch.zeros_like(logits), logits)
    neg_log_sigmoid = torch.where(pos, torch.log1p(torch.exp(-z_pos)), -z_neg + torch.log1p(torch.exp(z_neg)))
    if pos_weight is None:
        loss = (1 - y) * logits + neg_log_sigmoid  # = softplus(z) - y z
    else:
        loss = (1 - y) * logits + (1 + (pos_weight.to(logits.dtype) - 1) * y) * neg_log_sigmoid
    if weight is not None:
        loss = loss * weight.to(logits.dtype)
    return _reduce(loss, reduction)


def log_loss(
    y_true: torch.Tensor,
    y_proba: torch.Tensor,
    *,
    normalize: bool = True,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log loss from predicted probabilities, like ``sklearn.metrics.log_loss``.

    ``-(1/N) Σ_i log p_{i, y_i}`` — the cross-entropy of the predicted distribution against the
    one-hot label, i.e. the Bernoulli/categorical negative log-likelihood. As in scikit-learn the
    probabilities are first clipped to ``[eps, 1 - eps]`` with ``eps = torch.finfo(dtype).eps``, so a
    confident mistake costs ``-log(eps)`` (36.04 in float64) rather than infinity.

    Args:
        y_true: ``(N,)`` integer labels: ``0``/``1`` for binary ``y_proba``, or ``[0, C)`` for ``(N, C)``.
        y_proba: ``(N,)`` probabilities of the positive class, or ``(N, C)`` class probabilities.
        normalize: mean (True) or sum (False) over examples.
        sample_weight: optional ``(N,)`` weights (a weighted mean when ``normalize``).

    Returns:
        A scalar tensor (``float(...)`` gives what scikit-learn returns).
    """
    check_tensor("y_proba", y_proba, ndim=(1, 2), floating=True)
    check_tensor("y_true", y_true, ndim=1)
    if y_true.is_floating_point() and not bool((y_true == y_true.round()).all()):
        raise ValueError("y_true: expected integer class labels")
    if y_true.shape[0] != y_proba.shape[0]:
        raise ValueError(
            f"y_true: expected {y_proba.shape[0]} labels (one per row of y_proba), got {y_true.shape[0]}"
        )
    if y_proba.numel() and (float(y_proba.min()) < 0 or float(y_proba.max()) > 1):
        raise ValueError(
            f"y_proba: probabilities must lie in [0, 1], got range [{float(y_proba.min()):.4g}, "
            f"{float(y_proba.max()):.4g}]"
        )
    p = y_proba if y_proba.ndim == 2 else torch.stack([1 - y_proba, y_proba], dim=1)
    labels = y_true.long()
    n_classes = p.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"y_true: labels must lie in [0, {n_classes}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    eps = torch.finfo(p.dtype).eps
    per_example = -torch.log(p.clamp(eps, 1 - eps).gather(1, labels[:, None])[:, 0])
    if sample_weight is not None:
        sw = check_tensor("sample_weight", sample_weight, ndim=1).to(p.dtype)
        if sw.shape[0] != p.shape[0]:
            raise ValueError(f"sample_weight: expected {p.shape[0]} weights, got {sw.shape[0]}")
        total = (per_example * sw).sum()
        return _safe_divide(total, sw.sum()) if normalize else total
    return _reduce(per_example, "mean" if normalize else "sum")


def _check_pair(input: torch.Tensor, target: torch.Tensor) -> None:
    check_tensor("input", input, floating=True)
    check_tensor("target", target)
    if input.shape != target.shape:
        # torch only warns and then broadcasts, which silently computes the wrong loss for (N,) vs (N, 1)
        raise ValueError(
            f"target: expected the shape of input {tuple(input.shape)}, got {tuple(target.shape)}"
        )


def mse(input: torch.Tensor, target: torch.Tensor, *, reduction: Reduction = "mean") -> torch.Tensor:
    """Mean squared error (均方误差) ``mean (ŷ - y)²``, the Gaussian NLL up to scale and constant.

    Args:
        input: predictions ``ŷ``, any shape.
        target: ``y``, the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    _check_pair(input, target)
    return _reduce((input - target.to(input.dtype)) ** 2, _check_reduction(reduction))


def rmse(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Root mean squared error (均方根误差) ``sqrt(mse)``, in the units of the target.

    Args:
        input: predictions, any shape.
        target: the same shape.
    """
    return torch.sqrt(mse(input, target))


def mae(input: torch.Tensor, target: torch.Tensor, *, reduction: Reduction = "mean") -> torch.Tensor:
    """Mean absolute error (平均绝对误差) ``mean |ŷ - y|``; its gradient ``sign(e)`` has constant size.

    Args:
        input: predictions, any shape.
        target: the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    _check_pair(input, target)
    return _reduce((input - target.to(input.dtype)).abs(), _check_reduction(reduction))


def huber(
    input: torch.Tensor, target: torch.Tensor, *, delta: float = 1.0, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Huber loss (Huber 损失): quadratic for small errors, linear for large ones.

    With ``e = ŷ - y``: ``L_δ(e) = ½e²`` if ``|e| ≤ δ``, else ``δ(|e| - ½δ)``. Value and slope are
    continuous at ``|e| = δ``; the derivative is ``clip(e, -δ, δ)``, so an outlier pulls with force at
    most ``δ``. Matches ``torch.nn.functional.huber_loss``; ``smooth_l1_loss(beta=δ)`` is ``L_δ / δ``.

    Args:
        input: predictions, any shape.
        target: the same shape.
        delta: ``δ > 0``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    _check_pair(input, target)
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta > 0:
        raise ValueError(f"delta: expected a positive number, got {delta!r}")
    e = input - target.to(input.dtype)
    a = e.abs()
    loss = torch.where(a <= delta, 0.5 * e * e, delta * (a - 0.5 * delta))
    return _reduce(loss, _check_reduction(reduction))


def gaussian_nll(
    input: torch.Tensor,
    target: torch.Tensor,
    var: torch.Tensor | float,
    *,
    full: bool = False,
    eps: float = 1e-6,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Gaussian negative log-likelihood ``-log N(y; ŷ, σ²)``, like ``torch.nn.functional.gaussian_nll_loss``.

    ``½ (log σ² + (y - ŷ)²/σ²)``, plus ``½ log 2π`` when ``full``. For a fixed ``σ²`` this is
    ``mse/(2σ²)`` plus a constant: maximizing a Gaussian likelihood is minimizing the squared error.
    As in PyTorch, ``var`` is clamped to at least ``eps`` (without blocking its gradient).

    Args:
        input: predicted means ``ŷ``, shape ``(N, *)``.
        target: ``y``, the same shape.
        var: a positive float, or a tensor with the shape of ``input``, or of ``input`` without its
            last axis, or with last axis 1 (one variance shared by the last axis).
        full: include the constant ``½ log 2π``.
        eps: lower bound on the variance.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    _check_pair(input, target)
    reduction = _check_reduction(reduction)
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        var = torch.full_like(input, float(var))
    check_tensor("var", var, floating=True)
    if var.shape != input.shape:
        if input.ndim >= 1 and var.shape == input.shape[:-1]:
            var = var.unsqueeze(-1)
        elif not (var.ndim == input.ndim and var.shape[:-1] == input.shape[:-1] and var.shape[-1] == 1):
            raise ValueError(
                f"var: expected the shape of input {tuple(input.shape)}, that shape without its last axis, "
                f"or with last axis 1; got {tuple(var.shape)}"
            )
    if bool((var < 0).any()):
        raise ValueError("var: variances must be non-negative")
    var = var.to(input.dtype)
    # Clamp the value but let the gradient through, as torch does (clamp_ under no_grad on a clone).
    var = var + (var.detach().clamp_min(eps) - var.detach())
    loss = 0.5 * (torch.log(var) + (input - target.to(input.dtype)) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def perplexity(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = -100) -> torch.Tensor:
    """Perplexity ``exp(CE)``: the exponential of the mean next-token loss over unmasked positions.

    Uniform logits over ``V`` classes give ``CE = log V`` and perplexity ``V``: a perplexity of ``k``
    means the model is as uncertain as a uniform choice among ``k`` tokens.

    Args:
        logits: ``(N, V)`` or ``(B, T, V)``; log-probabilities work too (``log_softmax`` leaves them
            unchanged).
        target: ``(N,)`` or ``(B, T)`` token ids, ``ignore_index`` at masked positions.
        ignore_index: target value to skip.

    Returns:
        A scalar tensor ``≥ 1`` (1.0 when every position is masked, since the mean loss is then 0).
    """
    return torch.exp(cross_entropy(logits, target, ignore_index=ignore_index))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """The language-model loss: mean next-token cross-entropy over the targets that are not ignored.

    For a sequence ``x_1 … x_T`` the model factorizes ``p(x_{1:T}) = Π_t p(x_t | x_{<t})`` and is trained
    to minimize ``−(1/|S|) Σ_{(b,t) ∈ S} log softmax(logits[b, t])[targets[b, t]]`` over the set ``S``
    of positions whose target is not ``ignore_index`` (padding, the prompt of an SFT example, the last
    position of a sequence). It is :func:`cross_entropy` on ``(B·T, V)``, computed by PyTorch's fused
    kernel, which is what training needs.

    Args:
        logits: ``(B, T, V)`` unnormalized scores.
        targets: ``(B, T)`` int64 ids in ``[0, V)``, or ``ignore_index``.
        ignore_index: target value that contributes neither to the loss nor to the gradient.

    Returns:
        A scalar tensor (computed in float32 for float16/bfloat16 logits, whose log-softmax over ``V``
        classes would lose digits).

    Raises:
        ValueError: on mismatched shapes.

    When every target is ignored the loss is ``0.0`` with a zero gradient — the convention of
    :func:`cross_entropy` and of the whole book (PyTorch gives NaN, 0/0): such a batch teaches nothing
    and must not poison the run with NaN. (Inside ``torch.compile`` the check is skipped.)
    """
    check_tensor("logits", logits, ndim=3, floating=True)
    check_tensor("targets", targets, ndim=2)
    if tuple(targets.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"targets: expected shape (B, T)={tuple(logits.shape[:2])} to match the logits, "
            f"got {tuple(targets.shape)}"
        )
    flat = logits.reshape(-1, logits.shape[-1])
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    if not torch.compiler.is_compiling() and not bool((targets != ignore_index).any()):
        return (flat * 0.0).sum()  # the book's convention (see cross_entropy): 0.0, and a zero gradient
    return F.cross_entropy(flat, targets.reshape(-1), ignore_index=ignore_index)


@torch.no_grad()
def length_extrapolation(
    model: Callable[[torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    eval_lens: Sequence[int],
    *,
    batch_size: int = 8,
) -> dict[int, float | None]:
    """Perplexity of a causal LM at each evaluation length (长度外推), on the same held-out tokens.

    The evaluation of length extrapolation: a model trained at one context length, measured at longer
    ones (the Positional-encoding chapter's experiment, ``experiments/length_extrapolation.py``).

    For each ``L``, the stream is cut into ``n = (N − 1) // L`` consecutive windows: window ``w``
    feeds ``ids[wL : wL + L]`` and predicts ``ids[wL + 1 : wL + L + 1]``. The perplexity is
    ``exp`` of the mean next-token cross-entropy over *all* ``n·L`` predictions (every position of
    every window, as in the ALiBi paper's non-overlapping evaluation). When ``L`` divides ``N − 1``,
    every length predicts exactly the same tokens; only the context available to each differs.

    Args:
        model: maps ``(B, L)`` ids to ``(B, L, V)`` logits, or to a tuple whose first item they are
            (a :class:`~companion.models.gpt.GPT` returns ``(logits, loss)``); it is put in
            ``eval()`` mode (no dropout). A model that raises
            :class:`~companion.nn.positional.PositionOutOfRangeError` for a length it does not support
            (a learned position table shorter than ``L``) gets ``None`` for that length; any other
            error is the model's and propagates.
        ids: ``(N,)`` held-out token ids.
        eval_lens: the lengths ``L`` to evaluate.
        batch_size: windows per forward pass (memory only; results do not depend on it).

    Returns:
        ``{L: perplexity or None}`` in the order of ``eval_lens``.
    """
    check_tensor("ids", ids, ndim=1)
    lens = [check_positive_int("eval_lens", int(L)) for L in eval_lens]
    if isinstance(model, torch.nn.Module):
        model.eval()
    results: dict[int, float | None] = {}
    for L in lens:
        n = (ids.numel() - 1) // L
        if n < 1:
            raise ValueError(f"ids: {ids.numel()} tokens are too few for one window of length {L} + 1")
        windows = ids[: n * L + 1]
        inputs = windows[:-1].reshape(n, L)
        targets = windows[1:].reshape(n, L)
        total, count = 0.0, 0
        try:
            for s in range(0, n, batch_size):
                logits = model(inputs[s : s + batch_size])
                if isinstance(logits, tuple):
                    logits = logits[0]
                nll = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).double(),
                    targets[s : s + batch_size].reshape(-1).to(logits.device),
                    reduction="sum",
                )
                total += nll.item()
                count += targets[s : s + batch_size].numel()
        except PositionOutOfRangeError:  # the model has no positions this far: unsupported, not a crash
            results[L] = None
            continue
        mean = total / count
        results[L] = math.exp(mean) if mean < 709.0 else math.inf  # exp overflows a float past ~709.78
    return results
