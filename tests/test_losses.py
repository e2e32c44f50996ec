"""Tests of companion.losses against references we did not write.

References: ``torch.nn.functional`` (cross_entropy with label_smoothing / ignore_index / weight /
probability targets, binary_cross_entropy_with_logits, huber_loss, smooth_l1_loss, mse_loss, l1_loss,
gaussian_nll_loss), ``torch.distributions`` (Bernoulli, Categorical, Normal log-probabilities),
``sklearn.metrics`` (log_loss, mean_squared_error, mean_absolute_error, root_mean_squared_error) and
``torch.autograd.gradcheck``. Everything is compared in float64 to 1e-12 unless stated otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics

from companion import losses as L
from companion.train.data import shift_targets

TOL = 1e-12  # float64: these are a handful of operations, so agreement is to rounding error
HYPO = settings(max_examples=40, deadline=None)
REDUCTIONS = ["mean", "sum", "none"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


def _logits_and_target(shape, seed=0, ignore_every=0, scale=3.0):
    g = _gen(seed)
    logits = scale * torch.randn(*shape, generator=g, dtype=torch.float64)
    target = torch.randint(0, shape[-1], shape[:-1], generator=g)
    if ignore_every:
        target.view(-1)[::ignore_every] = -100
    return logits, target


def _torch_ce(logits, target, **kw):
    """F.cross_entropy on the class-last layout: flatten (B, T, C) to (B·T, C) and back."""
    c = logits.shape[-1]
    flat_target = target.reshape(-1, c) if target.is_floating_point() else target.reshape(-1)
    out = F.cross_entropy(logits.reshape(-1, c), flat_target, **kw)
    return out.reshape(logits.shape[:-1]) if kw.get("reduction") == "none" else out


# --- cross_entropy against F.cross_entropy ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(9, 5), (3, 4, 7)], ids=["N,C", "B,T,C"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.35, 1.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["no-weight", "weight"])
@pytest.mark.parametrize("ignore_every", [0, 3], ids=["no-ignore", "ignore"])
def test_cross_entropy_matches_torch(shape, reduction, label_smoothing, weighted, ignore_every):
    logits, target = _logits_and_target(shape, ignore_every=ignore_every)
    weight = torch.rand(shape[-1], generator=_gen(1), dtype=torch.float64) + 0.1 if weighted else None
    kw = {"reduction": reduction, "label_smoothing": label_smoothing, "weight": weight}
    _close(L.cross_entropy(logits, target, **kw), _torch_ce(logits, target, **kw))


@pytest.mark.parametrize("ignore_index", [0, 2, 99])
def test_cross_entropy_custom_ignore_index_matches_torch(ignore_index):
    logits, target = _logits_and_target((12, 5), seed=3)
    target[::4] = ignore_index  # 0 and 2 are real classes; 99 is an out-of-range pad id
    for eps in (0.0, 0.2):
        got = L.cross_entropy(logits, target, ignore_index=ignore_index, label_smoothing=eps)
        _close(got, F.cross_entropy(logits, target, ignore_index=ignore_index, label_smoothing=eps))


@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 5)], ids=["N,C", "B,T,C"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True], ids=["no-weight", "weight"])
def test_cross_entropy_probability_targets_match_torch(shape, reduction, label_smoothing, weighted):
    g = _gen(5)
    logits = 2 * torch.randn(*shape, generator=g, dtype=torch.float64)
    probs = torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)
    weight = torch.rand(shape[-1], generator=g, dtype=torch.float64) + 0.1 if weighted else None
    kw = {"reduction": reduction, "label_smoothing": label_smoothing, "weight": weight}
    _close(L.cross_entropy(logits, probs, **kw), _torch_ce(logits, probs, **kw))


def test_cross_entropy_is_the_categorical_nll():
    logits, target = _logits_and_target((10, 6), seed=7)
    nll = -torch.distributions.Categorical(logits=logits).log_prob(target)
    _close(L.cross_entropy(logits, target, reduction="none"), nll)


def test_cross_entropy_all_ignored_is_zero_not_nan():
    logits, _ = _logits_and_target((4, 3))
    target = torch.full((4,), -100)
    assert torch.isnan(F.cross_entropy(logits, target))  # torch: 0/0
    for eps in (0.0, 0.1):
        loss = L.cross_entropy(logits.requires_grad_(), target, label_smoothing=eps)
        assert loss.item() == 0.0
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.equal(grad, torch.zeros_like(grad))
    assert L.cross_entropy(logits, target, reduction="sum").item() == 0.0


def test_cross_entropy_empty_batch_is_zero():
    assert L.cross_entropy(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)).item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_entropy_stable_at_huge_logits(dtype):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    target = torch.tensor([1, 2, 0])
    got = L.cross_entropy(logits, target, reduction="none")
    assert torch.isfinite(got).all()
    # exact values: logsumexp(z) - z_y = 2e4, 0 and log 2
    expected = torch.tensor([2e4, 0.0, math.log(2.0)], dtype=dtype)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got, F.cross_entropy(logits, target, reduction="none"), rtol=1e-6, atol=1e-6)
    smoothed = L.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.isfinite(smoothed)
    torch.testing.assert_close(
        smoothed, F.cross_entropy(logits, target, label_smoothing=0.1), rtol=1e-6, atol=0
    )


def test_log_softmax_matches_torch_and_is_stable():
    logits, _ = _logits_and_target((5, 8), scale=50.0)
    _close(L.log_softmax(logits), torch.log_softmax(logits, dim=-1))
    _close(L.log_softmax(logits, dim=0), torch.log_softmax(logits, dim=0))
    big = torch.tensor([[1e4, -1e4, 0.0]])
    assert torch.isfinite(L.log_softmax(big)).all()
    _close(L.log_softmax(big), torch.log_softmax(big, dim=-1))
    naive = torch.log(torch.exp(big) / torch.exp(big).sum(-1, keepdim=True))
    assert not torch.isfinite(naive).all()  # the formula without the max shift overflows


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    logits, target = _logits_and_target((6, 5), seed=2)
    logits.requires_grad_()
    (grad,) = torch.autograd.grad(L.cross_entropy(logits, target, reduction="sum"), logits)
    expected = torch.softmax(logits, -1) - F.one_hot(target, 5).double()
    _close(grad, expected.detach())


def test_cross_entropy_gradient_with_smoothing_is_softmax_minus_q():
    logits, target = _logits_and_target((6, 5), seed=4)
    logits.requires_grad_()
    (grad,) = torch.autograd.grad(
        L.cross_entropy(logits, target, label_smoothing=0.2, reduction="sum"), logits
    )
    q = L.smooth_targets(target, 5, 0.2, dtype=torch.float64)
    _close(grad, (torch.softmax(logits, -1) - q).detach())


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True], ids=["no-weight", "weight"])
def test_cross_entropy_gradcheck(label_smoothing, weighted):
    logits, target = _logits_and_target((4, 3, 5), seed=6, ignore_every=4, scale=1.0)
    logits.requires_grad_()
    weight = torch.rand(5, generator=_gen(8), dtype=torch.float64) + 0.5 if weighted else None
    assert torch.autograd.gradcheck(
        lambda z: L.cross_entropy(z, target, label_smoothing=label_smoothing, weight=weight), (logits,)
    )
    assert torch.autograd.gradgradcheck(lambda z: L.cross_entropy(z, target), (logits,))


def test_other_losses_gradcheck():
    g = _gen(9)
    z = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(7, generator=g, dtype=torch.float64)
    t = torch.randn(7, generator=g, dtype=torch.float64)
    var = (torch.rand(7, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: L.binary_cross_entropy_with_logits(a, y), (z,))
    assert torch.autograd.gradcheck(lambda a: L.huber(a, t, delta=0.7), (z,))
    assert torch.autograd.gradcheck(lambda a, v: L.gaussian_nll(a, t, v), (z, var))
    assert torch.autograd.gradcheck(lambda a: L.log_softmax(a.reshape(1, 7)), (z,))


# --- hypothesis properties --------------------------------------------------------------------------

_logit_rows = st.integers(1, 6).flatmap(
    lambda c: st.lists(
        st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=c, max_size=c), min_size=1, max_size=5
    )
)


@HYPO
@given(rows=_logit_rows, seed=st.integers(0, 2**16), eps=st.floats(0.0, 1.0))
def test_cross_entropy_is_nonnegative_and_finite(rows, seed, eps):
    logits = torch.tensor(rows, dtype=torch.float64)
    target = torch.randint(0, logits.shape[1], (logits.shape[0],), generator=_gen(seed))
    loss = L.cross_entropy(logits, target, label_smoothing=eps, reduction="none")
    assert torch.isfinite(loss).all()
    assert (loss >= -1e-9).all()


@HYPO
@given(rows=_logit_rows, seed=st.integers(0, 2**16), shift=st.floats(-1e3, 1e3, allow_nan=False))
def test_cross_entropy_is_invariant_to_a_logit_shift(rows, seed, shift):
    logits = torch.tensor(rows, dtype=torch.float64)
    target = torch.randint(0, logits.shape[1], (logits.shape[0],), generator=_gen(seed))
    a = L.cross_entropy(logits, target, reduction="none")
    b = L.cross_entropy(logits + shift, target, reduction="none")
    # softmax(z + c) = softmax(z); the tolerance covers rounding of z + c at |z| up to 1e4
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@HYPO
@given(rows=_logit_rows, seed=st.integers(0, 2**16))
def test_zero_smoothing_is_plain_cross_entropy(rows, seed):
    logits = torch.tensor(rows, dtype=torch.float64)
    target = torch.randint(0, logits.shape[1], (logits.shape[0],), generator=_gen(seed))
    plain = -torch.distributions.Categorical(logits=logits).log_prob(target)
    _close(L.cross_entropy(logits, target, label_smoothing=0.0, reduction="none"), plain, tol=1e-9)


@HYPO
@given(y=st.integers(0, 9), k=st.integers(2, 10), eps=st.floats(0.0, 0.99), seed=st.integers(0, 2**16))
def test_smooth_targets_are_a_distribution_and_match_torch(y, k, eps, seed):
    y = y % k
    q = L.smooth_targets(torch.tensor([y]), k, eps, dtype=torch.float64)
    _close(q.sum(-1), torch.ones(1, dtype=torch.float64))
    assert math.isclose(q[0, y].item(), 1 - eps + eps / k, rel_tol=1e-12)
    logits = torch.randn(1, k, generator=_gen(seed), dtype=torch.float64)
    # CE against the smoothed distribution = torch's label smoothing
    _close(L.cross_entropy(logits, q), F.cross_entropy(logits, torch.tensor([y]), label_smoothing=eps))


@HYPO
@given(e=st.floats(-1e3, 1e3, allow_nan=False), delta=st.floats(1e-3, 1e2))
def test_huber_lies_between_the_l1_and_l2_shapes(e, delta):
    t = torch.tensor([e], dtype=torch.float64)
    h = L.huber(t, torch.zeros_like(t), delta=delta, reduction="none").item()
    assert h <= 0.5 * e * e + 1e-9  # never above the quadratic
    assert h >= delta * abs(e) - 0.5 * delta * delta - 1e-9  # never below the linear asymptote


# --- binary cross-entropy and log loss ---------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", ["plain", "weight", "pos_weight", "both"])
def test_bce_with_logits_matches_torch(reduction, options):
    g = _gen(11)
    z = 4 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.rand(5, 3, generator=g, dtype=torch.float64)
    kw = {"reduction": reduction}
    if options in ("weight", "both"):
        kw["weight"] = torch.rand(5, 3, generator=g, dtype=torch.float64)
    if options in ("pos_weight", "both"):
        kw["pos_weight"] = torch.rand(3, generator=g, dtype=torch.float64) * 3
    _close(L.binary_cross_entropy_with_logits(z, y, **kw), F.binary_cross_entropy_with_logits(z, y, **kw))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bce_with_logits_stable_and_gradient(dtype):
    z = torch.tensor([1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=dtype)
    loss = L.binary_cross_entropy_with_logits(z, y, reduction="none")
    expected = torch.tensor([1e4, 1e4, 0.0, 0.0, math.log(2.0)], dtype=dtype)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    (grad,) = torch.autograd.grad(loss.sum(), z)
    torch.testing.assert_close(grad, (torch.sigmoid(z) - y).detach(), rtol=1e-6, atol=1e-6)  # σ(z) - y


def test_bce_is_the_bernoulli_nll_and_log_loss():
    g = _gen(12)
    z = 3 * torch.randn(50, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (50,), generator=g).double()
    nll = -torch.distributions.Bernoulli(logits=z).log_prob(y)
    _close(L.binary_cross_entropy_with_logits(z, y, reduction="none"), nll)
    _close(L.log_loss(y.long(), torch.sigmoid(z)), nll.mean(), tol=1e-10)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("weighted", [False, True], ids=["no-weight", "sample-weight"])
def test_log_loss_matches_sklearn_binary_and_multiclass(normalize, weighted):
    rng = np.random.default_rng(0)
    y_bin = rng.integers(0, 2, 40)
    p_bin = rng.uniform(0, 1, 40)
    p_bin[:4] = [0.0, 1.0, 1e-20, 1 - 1e-17]  # exercises the clipping to [eps, 1 - eps]
    y_bin[:4] = [1, 0, 1, 0]
    y_mc = rng.integers(0, 4, 40)
    y_mc[:4] = [0, 1, 2, 3]  # every class present, as sklearn infers the classes from y_true
    p_mc = rng.dirichlet(np.ones(4), 40)
    p_mc[4] = [1.0, 0.0, 0.0, 0.0]
    y_mc[4] = 2
    sw = rng.uniform(0.1, 2.0, 40) if weighted else None
    for y_true, p in ((y_bin, p_bin), (y_mc, p_mc)):
        expected = metrics.log_loss(y_true, p, normalize=normalize, sample_weight=sw)
        got = L.log_loss(
            torch.from_numpy(y_true),
            torch.from_numpy(p),
            normalize=normalize,
            sample_weight=None if sw is None else torch.from_numpy(sw),
        )
        assert math.isclose(got.item(), expected, rel_tol=TOL), (got.item(), expected)


def test_log_loss_equals_cross_entropy_of_log_probabilities():
    logits, target = _logits_and_target((20, 6), seed=13)
    p = torch.softmax(logits, -1)
    _close(L.log_loss(target, p), L.cross_entropy(torch.log(p), target), tol=1e-10)


# --- regression losses ------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [0.1, 1.0, 2.5])
def test_huber_matches_torch_and_smooth_l1(reduction, delta):
    g = _gen(14)
    a = 3 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    b = torch.randn(4, 6, generator=g, dtype=torch.float64)
    got = L.huber(a, b, delta=delta, reduction=reduction)
    _close(got, F.huber_loss(a, b, delta=delta, reduction=reduction))
    _close(got / delta, F.smooth_l1_loss(a, b, beta=delta, reduction=reduction))


def test_huber_gradient_is_clipped_error():
    e = torch.linspace(-5, 5, 41, dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(L.huber(e, torch.zeros_like(e), delta=1.5, reduction="sum"), e)
    _close(grad, e.detach().clamp(-1.5, 1.5))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_mae_match_torch_and_sklearn(reduction):
    g = _gen(15)
    a = torch.randn(30, generator=g, dtype=torch.float64)
    b = torch.randn(30, generator=g, dtype=torch.float64)
    _close(L.mse(a, b, reduction=reduction), F.mse_loss(a, b, reduction=reduction))
    _close(L.mae(a, b, reduction=reduction), F.l1_loss(a, b, reduction=reduction))
    if reduction == "mean":
        assert math.isclose(L.mse(a, b).item(), metrics.mean_squared_error(b, a), rel_tol=TOL)
        assert math.isclose(L.mae(a, b).item(), metrics.mean_absolute_error(b, a), rel_tol=TOL)
        assert math.isclose(L.rmse(a, b).item(), metrics.root_mean_squared_error(b, a), rel_tol=TOL)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", ["same", "no-last-axis", "last-axis-1", "scalar"])
def test_gaussian_nll_matches_torch(full, reduction, var_shape):
    g = _gen(16)
    a = torch.randn(5, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, 3, generator=g, dtype=torch.float64)
    var = {
        "same": torch.rand(5, 3, generator=g, dtype=torch.float64) + 0.2,
        "no-last-axis": torch.rand(5, generator=g, dtype=torch.float64) + 0.2,
        "last-axis-1": torch.rand(5, 1, generator=g, dtype=torch.float64) + 0.2,
        "scalar": 0.7,
    }[var_shape]
    torch_var = torch.full_like(a, var) if var_shape == "scalar" else var
    expected = F.gaussian_nll_loss(a, b, torch_var, full=full, reduction=reduction)
    _close(L.gaussian_nll(a, b, var, full=full, reduction=reduction), expected)


def test_gaussian_nll_is_scaled_mse_plus_constant_and_normal_log_prob():
    g = _gen(17)
    pred = torch.randn(40, generator=g, dtype=torch.float64)
    y = pred + 0.5 * torch.randn(40, generator=g, dtype=torch.float64)
    sigma = 0.8
    nll = L.gaussian_nll(pred, y, sigma**2, full=True)
    _close(nll, -torch.distributions.Normal(pred, sigma).log_prob(y).mean())
    _close(nll, 0.5 * L.mse(pred, y) / sigma**2 + 0.5 * math.log(2 * math.pi * sigma**2))


# --- perplexity -------------------------------------------------------------------------------------


def test_perplexity_of_uniform_logits_is_the_vocabulary_size():
    v = 50
    logits = torch.zeros(3, 7, v, dtype=torch.float64)
    target = torch.randint(0, v, (3, 7), generator=_gen(18))
    assert math.isclose(L.cross_entropy(logits, target).item(), math.log(v), rel_tol=TOL)
    assert math.isclose(L.perplexity(logits, target).item(), v, rel_tol=TOL)


def test_perplexity_skips_masked_positions():
    logits, target = _logits_and_target((2, 6, 9), seed=19)
    masked = target.clone()
    masked[:, :3] = -100  # a "prompt" whose tokens are not scored
    expected = torch.exp(F.cross_entropy(logits[:, 3:].reshape(-1, 9), target[:, 3:].reshape(-1)))
    _close(L.perplexity(logits, masked), expected)


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: L.cross_entropy(torch.zeros(4), torch.zeros(4, dtype=torch.long)), ValueError, "logits"),
        (lambda: L.cross_entropy(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long)), ValueError, "target"),
        (
            lambda: L.cross_entropy(torch.zeros(2, 4, 3), torch.zeros(2, 3, dtype=torch.long)),
            ValueError,
            "shape",
        ),
        (lambda: L.cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1, 3, 0])), ValueError, r"\[0, C=3\)"),
        (lambda: L.cross_entropy(torch.zeros(4, 3), torch.tensor([0, -1, 2, 0])), ValueError, "got -1"),
        (lambda: L.cross_entropy(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4)), TypeError, "logits"),
        (lambda: L.cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, "probability targets"),
        (lambda: L.cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.bool)), TypeError, "bool"),
        (lambda: L.cross_entropy(torch.zeros(2, 3), [0, 1]), TypeError, "target"),
        (
            lambda: L.cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), label_smoothing=1.5),
            ValueError,
            "label_smoothing",
        ),
        (
            lambda: L.cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), reduction="avg"),
            ValueError,
            "reduction",
        ),
        (
            lambda: L.cross_entropy(
                torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), weight=torch.ones(4)
            ),
            ValueError,
            "weight",
        ),
        (lambda: L.binary_cross_entropy_with_logits(torch.zeros(3), torch.zeros(3, 1)), ValueError, "target"),
        (lambda: L.log_loss(torch.tensor([0, 1]), torch.tensor([0.5, 1.5])), ValueError, "y_proba"),
        (lambda: L.log_loss(torch.tensor([0, 2]), torch.tensor([0.5, 0.5])), ValueError, "y_true"),
        (lambda: L.log_loss(torch.tensor([0, 1, 1]), torch.tensor([0.5, 0.5])), ValueError, "y_true"),
        (lambda: L.huber(torch.zeros(3), torch.zeros(3), delta=0.0), ValueError, "delta"),
        (lambda: L.mse(torch.zeros(3), torch.zeros(3, 1)), ValueError, "target"),
        (lambda: L.mae(torch.zeros(3), torch.zeros(3), reduction="mean "), ValueError, "reduction"),
        (lambda: L.gaussian_nll(torch.zeros(4, 3), torch.zeros(4, 3), torch.ones(3)), ValueError, "var"),
        (lambda: L.gaussian_nll(torch.zeros(3), torch.zeros(3), -torch.ones(3)), ValueError, "var"),
        (lambda: L.smooth_targets(torch.tensor([0, 4]), 4, 0.1), ValueError, "num_classes=4"),
        (lambda: L.smooth_targets(torch.tensor([0, 1]), 4, 1.0), ValueError, "eps"),
        (lambda: L.smooth_targets(torch.tensor([0.0, 1.0]), 4, 0.1), TypeError, "target"),
    ],
)
def test_bad_input_gives_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_lm_loss_matches_cross_entropy_and_ignores_masked_positions():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 11, (2, 7), generator=gen)
    targets = shift_targets(ids)
    loss = L.lm_loss(logits, targets)
    want = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1))
    assert abs(loss.item() - want.item()) < 1e-12
    (grad,) = torch.autograd.grad(loss, logits)
    assert float(grad[:, -1].abs().max()) == 0.0  # the ignored last position gets no gradient
    assert (
        abs(L.lm_loss(torch.zeros(1, 3, 11), torch.zeros(1, 3, dtype=torch.long)).item() - math.log(11))
        < 1e-6
    )
    uniform = torch.zeros(1, 3, 11, dtype=torch.float64)
    assert L.perplexity(uniform, torch.zeros(1, 3, dtype=torch.long)).item() == pytest.approx(11.0, rel=1e-12)
    all_ignored = torch.full((2, 7), -100)
    loss = L.lm_loss(logits, all_ignored)  # the book's one convention, as cross_entropy: 0.0
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.item() == 0.0 and float(grad.abs().max()) == 0.0
    with pytest.raises(ValueError, match=r"targets: expected shape \(B, T\)=\(2, 7\)"):
        L.lm_loss(logits, targets[:, :-1])


def test_one_convention_for_an_all_ignored_batch():
    """Before: NaN in GPT.forward, 0.0 in losses.cross_entropy, a ValueError in lm_loss."""
    from companion.models.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    ignored = torch.full((2, 4), -100)
    _, loss = model(torch.zeros(2, 4, dtype=torch.long), ignored)
    loss.backward()
    assert loss.item() == 0.0
    assert all(float(p.grad.abs().max()) == 0.0 for p in model.parameters() if p.grad is not None)
    logits = torch.randn(8, 10)
    assert L.cross_entropy(logits, ignored.reshape(-1)).item() == 0.0
    assert L.lm_loss(logits.reshape(2, 4, 10), ignored).item() == 0.0


def test_losses_refuse_targets_and_weights_outside_their_meaning():
    """Before: BCE accepted target=2.0 (loss log 2 at z = 0), cross-entropy negative soft targets,
    and negative class weights gave a loss of 0."""
    z = torch.zeros(3)
    for bad in (torch.full((3,), 2.0), torch.full((3,), -0.5), torch.tensor([0.0, float("nan"), 1.0])):
        with pytest.raises(ValueError, match=r"target: expected probabilities in \[0, 1\]"):
            L.binary_cross_entropy_with_logits(z, bad)
    with pytest.raises(ValueError, match="0/1 labels"):
        L.binary_cross_entropy_with_logits(z, torch.tensor([0, 2, 1]))
    assert L.binary_cross_entropy_with_logits(z, torch.tensor([0, 1, 1])).item() == pytest.approx(math.log(2))
    logits = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="probability targets must be finite and >= 0"):
        L.cross_entropy(logits, torch.tensor([[1.5, -0.5, 0.0]] * 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="weight: class weights must be >= 0"):
        L.cross_entropy(logits, torch.tensor([0, 1, 2, 0]), weight=torch.tensor([-1.0, 1.0, 1.0]))


def test_length_extrapolation_reports_only_unsupported_lengths_as_none():
    """Before: any ValueError inside the model (a bug) was reported as "length unsupported"; and a
    huge loss raised OverflowError instead of giving an infinite perplexity."""
    from companion.models.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    ids = torch.randint(0, 10, (65,), generator=torch.Generator().manual_seed(0))
    out = L.length_extrapolation(model, ids, [8, 16])
    assert out[16] is None and math.isfinite(out[8])

    def buggy(x):
        raise ValueError("a bug in the model")

    with pytest.raises(ValueError, match="a bug in the model"):
        L.length_extrapolation(buggy, ids, [8])

    def confident_and_wrong(x):
        logits = torch.full((*x.shape, 10), -1e4)
        logits[..., 0] = 1e4
        return logits

    assert L.length_extrapolation(confident_and_wrong, torch.ones(65, dtype=torch.long), [8])[8] == math.inf
