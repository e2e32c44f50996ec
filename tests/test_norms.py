"""Tests of companion.nn.norms and companion.nn.activations against references we did not write.

References: ``torch.nn.LayerNorm``, ``torch.nn.RMSNorm`` (eps passed explicitly: its default depends
on the dtype), ``torch.nn.functional.gelu`` (both approximations), ``silu``, ``relu``, ``leaky_relu``,
the DeepNet paper's constant formulas, and ``torch.autograd.gradcheck``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from companion.nn import activations as act
from companion.nn.norms import (
    DeepNormResidual,
    LayerNorm,
    RMSNorm,
    deepnorm_alpha_beta,
    deepnorm_constants,
    layer_norm,
    make_norm,
    rms_norm,
)

TOL = {torch.float64: 1e-12, torch.float32: 1e-6}
HYPO = settings(max_examples=30, deadline=None)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def _randomize(module: nn.Module, seed: int = 1) -> None:
    g = _gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))


# --------------------------------------------------------------------------------------------------
# LayerNorm / RMSNorm against torch
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("eps", [1e-5, 1e-12, 0.1])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_layernorm_matches_torch(dtype, eps, affine, bias):
    x = 3 * _randn(4, 7, 48, dtype=dtype) + 2.0
    ref = nn.LayerNorm(48, eps=eps, elementwise_affine=affine, bias=bias, dtype=dtype)
    _randomize(ref)
    ours = LayerNorm(48, eps=eps, elementwise_affine=affine, bias=bias, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("eps", [1e-6, 1e-5, 0.1])
@pytest.mark.parametrize("affine", [True, False])
def test_rmsnorm_matches_torch(dtype, eps, affine):
    x = 2 * _randn(3, 5, 64, dtype=dtype) - 1.0
    ref = nn.RMSNorm(64, eps=eps, elementwise_affine=affine, dtype=dtype)
    _randomize(ref)
    ours = RMSNorm(64, eps=eps, elementwise_affine=affine, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=TOL[dtype], rtol=0)


def test_functional_forms_match_torch_functional():
    x, g, b = _randn(6, 20), _randn(20, seed=1), _randn(20, seed=2)
    torch.testing.assert_close(
        layer_norm(x, g, b, 1e-5), F.layer_norm(x, (20,), g, b, 1e-5), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(rms_norm(x, g, 1e-6), F.rms_norm(x, (20,), g, 1e-6), atol=1e-12, rtol=0)


def test_statistics_are_per_token_not_per_batch():
    """Changing one token never changes another token's output (unlike BatchNorm)."""
    x = _randn(2, 5, 16)
    y = x.clone()
    y[1, 3] = 100 * _randn(16, seed=3)
    for norm in (LayerNorm(16).double(), RMSNorm(16).double()):
        a, b = norm(x), norm(y)
        changed = (a - b).abs().amax(-1) > 0
        assert changed.sum() == 1 and changed[1, 3]


def test_zero_input_gives_bias_not_nan():
    ln = LayerNorm(8)
    _randomize(ln)
    out = ln(torch.zeros(3, 8))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ln.bias.detach().expand(3, 8))
    assert (RMSNorm(8)(torch.zeros(3, 8)) == 0).all()


def test_low_precision_matches_float32_run():
    x = _randn(4, 9, 32, dtype=torch.float32)
    for norm in (LayerNorm(32), RMSNorm(32)):
        _randomize(norm)
        ref = norm(x)
        low = norm.to(torch.bfloat16)(x.to(torch.bfloat16))
        assert low.dtype == torch.bfloat16
        torch.testing.assert_close(low.float(), ref, atol=2e-2, rtol=2e-2)


# --------------------------------------------------------------------------------------------------
# properties (hypothesis)
# --------------------------------------------------------------------------------------------------


@HYPO
@given(seed=st.integers(0, 2**31 - 1), c=st.floats(1e-3, 1e3), width=st.integers(2, 64))
def test_rmsnorm_scale_invariance(seed, c, width):
    x = _randn(3, width, seed=seed)
    torch.testing.assert_close(rms_norm(c * x, eps=0.0), rms_norm(x, eps=0.0), atol=1e-10, rtol=1e-10)


@HYPO
@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(-100, 100), c=st.floats(1e-2, 1e2))
def test_layernorm_shift_and_scale_invariance(seed, shift, c):
    x = _randn(4, 24, seed=seed)
    base = layer_norm(x, eps=0.0)
    torch.testing.assert_close(layer_norm(c * x + shift, eps=0.0), base, atol=1e-8, rtol=1e-8)


@HYPO
@given(seed=st.integers(0, 2**31 - 1))
def test_layernorm_is_rmsnorm_of_centred_input(seed):
    x = _randn(5, 16, seed=seed) + 3.0
    g = _randn(16, seed=seed + 1)
    centred = x - x.mean(-1, keepdim=True)
    torch.testing.assert_close(layer_norm(x, g, None, 1e-6), rms_norm(centred, g, 1e-6), atol=1e-12, rtol=0)


@HYPO
@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(0.5, 50))
def test_rmsnorm_is_not_shift_invariant(seed, shift):
    x = _randn(4, 16, seed=seed)
    assert (rms_norm(x + shift) - rms_norm(x)).abs().max() > 1e-3


@HYPO
@given(seed=st.integers(0, 2**31 - 1))
def test_normalized_statistics(seed):
    """LN output (no affine) has mean 0 and biased variance 1 per row; RMSNorm output has mean square 1."""
    x = 5 * _randn(6, 32, seed=seed) + 1.0
    y = layer_norm(x, eps=0.0)
    torch.testing.assert_close(y.mean(-1), torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        y.var(-1, unbiased=False), torch.ones(6, dtype=torch.float64), atol=1e-12, rtol=0
    )
    z = rms_norm(x, eps=0.0)
    torch.testing.assert_close((z * z).mean(-1), torch.ones(6, dtype=torch.float64), atol=1e-12, rtol=0)


# --------------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------------


def test_norms_gradcheck():
    x = _randn(3, 10).requires_grad_()
    g = _randn(10, seed=1).requires_grad_()
    b = _randn(10, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, g, b: layer_norm(x, g, b, 1e-5), (x, g, b), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda x, g: rms_norm(x, g, 1e-6), (x, g), eps=1e-6, atol=1e-8)


def test_norm_gradients_match_torch():
    x = _randn(4, 12).requires_grad_()
    ours, ref = LayerNorm(12).double(), nn.LayerNorm(12).double()
    _randomize(ref)
    ours.load_state_dict(ref.state_dict())
    (gx_ours, gw_ours) = torch.autograd.grad(ours(x).pow(3).sum(), (x, ours.weight))
    (gx_ref, gw_ref) = torch.autograd.grad(ref(x).pow(3).sum(), (x, ref.weight))
    torch.testing.assert_close(gx_ours, gx_ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(gw_ours, gw_ref, atol=1e-10, rtol=0)


# --------------------------------------------------------------------------------------------------
# errors and factories
# --------------------------------------------------------------------------------------------------


def test_clear_errors():
    with pytest.raises(ValueError, match="eps"):
        LayerNorm(8, eps=-1.0)
    with pytest.raises(ValueError, match="d"):
        RMSNorm(0)
    with pytest.raises(ValueError, match="last dimension d=8"):
        LayerNorm(8)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="weight"):
        layer_norm(torch.randn(2, 8), torch.ones(7))
    with pytest.raises(TypeError, match="floating"):
        rms_norm(torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="kind"):
        make_norm("batchnorm", 8)


def test_make_norm():
    assert isinstance(make_norm("layernorm", 8), LayerNorm) and make_norm("layernorm", 8).eps == 1e-5
    rms = make_norm("rmsnorm", 8, eps=1e-5)
    assert isinstance(rms, RMSNorm) and rms.eps == 1e-5
    assert make_norm("layernorm", 8, bias=False).bias is None


@pytest.mark.parametrize("kind", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_fused_flag_computes_the_same_formula(kind, dtype):
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(4, 7, 16, generator=g, dtype=torch.float64) + 1).to(dtype)
    plain, fused = (
        make_norm(kind, 16, eps=1e-5, dtype=dtype),
        make_norm(kind, 16, eps=1e-5, fused=True, dtype=dtype),
    )
    with torch.no_grad():
        for p in plain.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    fused.load_state_dict(plain.state_dict())
    tol = {torch.float64: 1e-12, torch.float32: 4e-6, torch.bfloat16: 0.1}[dtype]
    torch.testing.assert_close(fused(x), plain(x), atol=tol, rtol=0 if dtype != torch.bfloat16 else 2e-2)
    assert fused.fused and not plain.fused and "fused=True" in repr(fused)
    with pytest.raises(RuntimeError):  # PyTorch's kernel checks the shape itself
        fused(torch.zeros(2, 15, dtype=dtype))


# --------------------------------------------------------------------------------------------------
# DeepNorm
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 6, 18, 200, 1000])
def test_deepnorm_single_stack(n):
    for arch in ("encoder-only", "decoder-only"):
        alpha, beta = deepnorm_constants(arch, n)
        assert math.isclose(alpha, (2 * n) ** 0.25, rel_tol=1e-12)
        assert math.isclose(beta, (8 * n) ** -0.25, rel_tol=1e-12)
    assert deepnorm_alpha_beta(n) == deepnorm_constants("decoder-only", n)
    assert deepnorm_alpha_beta(n, "encoder") == deepnorm_constants("encoder-only", n)


def test_deepnorm_encoder_decoder():
    a, b = deepnorm_constants("encoder", 6, 6)
    assert math.isclose(a, 0.81 * (6**4 * 6) ** (1 / 16), rel_tol=1e-12)
    assert math.isclose(b, 0.87 * (6**4 * 6) ** (-1 / 16), rel_tol=1e-12)
    a, b = deepnorm_constants("decoder", 6, 6)
    assert math.isclose(a, 18**0.25, rel_tol=1e-12) and math.isclose(b, 72**-0.25, rel_tol=1e-12)
    # Spot values: a 1000-layer decoder-only model (DeepNet's 1 000-layer setting) uses α ≈ 6.69, β ≈ 0.106.
    alpha, beta = deepnorm_constants("decoder-only", 1000)
    assert round(alpha, 2) == 6.69 and round(beta, 3) == 0.106
    with pytest.raises(ValueError, match="M"):
        deepnorm_constants("decoder", 6)
    with pytest.raises(ValueError, match="M"):
        deepnorm_constants("decoder-only", 6, 6)
    with pytest.raises(ValueError, match="arch"):
        deepnorm_constants("seq2seq", 6, 6)


def test_deepnorm_residual_formula():
    sub = nn.Linear(8, 8).double()
    layer = DeepNormResidual(sub, 2.5, 8).double()
    x = _randn(3, 8)
    torch.testing.assert_close(layer(x), F.layer_norm(2.5 * x + sub(x), (8,), eps=1e-5), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="alpha"):
        DeepNormResidual(sub, 0.0, 8)


# --------------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------------

X64 = torch.cat([torch.linspace(-10, 10, 2001, dtype=torch.float64), _randn(500, seed=5) * 4])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_activations_match_torch(dtype):
    x = X64.to(dtype)
    tol = TOL[dtype]
    pairs = [
        (act.gelu(x), F.gelu(x)),
        (act.gelu(x, approximate="tanh"), F.gelu(x, approximate="tanh")),
        (act.gelu_exact(x), F.gelu(x)),
        (act.gelu_tanh(x), F.gelu(x, approximate="tanh")),
        (act.silu(x), F.silu(x)),
        (act.swish(x, 1.0), F.silu(x)),
        (act.relu(x), F.relu(x)),
        (act.leaky_relu(x), F.leaky_relu(x)),
        (act.leaky_relu(x, 0.2), F.leaky_relu(x, 0.2)),
        (act.sigmoid(x), torch.sigmoid(x)),
    ]
    for ours, ref in pairs:
        torch.testing.assert_close(ours, ref, atol=tol, rtol=0)


def test_gelu_tanh_max_error():
    """The tanh form is an approximation: max |error| ≈ 4.73e-4, at |x| ≈ 2.70."""
    x = torch.linspace(-8, 8, 160001, dtype=torch.float64)
    diff = (act.gelu_exact(x) - act.gelu_tanh(x)).abs()
    assert 4.7e-4 < diff.max().item() < 4.8e-4
    assert abs(abs(x[diff.argmax()].item()) - 2.70) < 0.01


def test_gelu_tanh_fast_equals_torch_on_cpu():
    """The CPU fast path x·σ(2u) is F.gelu(approximate="tanh") up to rounding, values and gradients."""
    for dtype, fwd_tol, grad_tol in ((torch.float64, 1e-14, 1e-13), (torch.float32, 5e-7, 5e-6)):
        x = torch.cat([torch.linspace(-30, 30, 60001, dtype=torch.float64), _randn(2000, seed=7) * 4])
        x = x.to(dtype).requires_grad_()
        ours, ref = act.gelu_tanh_fast(x), F.gelu(x, approximate="tanh")
        assert ours.grad_fn is not None and "Sigmoid" in type(ours.grad_fn).__name__  # the fast path ran
        (g_ours,) = torch.autograd.grad(ours.sum(), x)
        (g_ref,) = torch.autograd.grad(ref.sum(), x)
        torch.testing.assert_close(ours, ref, atol=fwd_tol, rtol=fwd_tol)
        torch.testing.assert_close(g_ours, g_ref, atol=grad_tol, rtol=0)
    # float32 against a float64 truth: no less accurate than PyTorch's own kernel in the forward pass
    x32 = torch.linspace(-30, 30, 600001)
    truth = F.gelu(x32.double(), approximate="tanh")
    err = lambda y: ((y.double() - truth).abs() / (1 + truth.abs())).max().item()  # noqa: E731
    assert err(act.gelu_tanh_fast(x32)) <= err(F.gelu(x32, approximate="tanh")) + 1e-8


def test_gelu_tanh_fast_gradcheck_extremes_and_fallback():
    x = (3 * _randn(20)).requires_grad_()
    assert torch.autograd.gradcheck(act.gelu_tanh_fast, (x,), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(act.gelu_tanh_fast, (x,), eps=1e-6, atol=1e-8)
    # saturation: the limits x and 0, gradients 1 and 0, where float32 x³ overflows to inf
    big = torch.tensor([-1e38, -1e20, -1e4, -30.0, 30.0, 1e4, 1e20, 1e38], requires_grad=True)
    out = act.gelu_tanh_fast(big)
    (grad,) = torch.autograd.grad(out.sum(), big)
    torch.testing.assert_close(out, torch.where(big > 0, big, 0.0).detach(), atol=0, rtol=0)
    torch.testing.assert_close(grad, (big > 0).float(), atol=0, rtol=0)
    special = torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0])
    torch.testing.assert_close(
        act.gelu_tanh_fast(special), F.gelu(special, approximate="tanh"), equal_nan=True, atol=0, rtol=0
    )
    # half precision (and any non-CPU device) uses PyTorch's fused kernel unchanged
    h = _randn(64).to(torch.bfloat16)
    assert torch.equal(act.gelu_tanh_fast(h), F.gelu(h, approximate="tanh"))
    assert act.get_activation("gelu_new") is act.gelu_tanh_fast
    # it saves for the backward pass exactly what F.gelu saves (its input), no more
    from companion.train import saved_activation_bytes

    w = _randn(256, 512).requires_grad_()
    _, ours = saved_activation_bytes(lambda: act.gelu_tanh_fast(w * 1.0).sum())
    _, ref = saved_activation_bytes(lambda: F.gelu(w * 1.0, approximate="tanh").sum())
    assert ours == ref > 0


def test_swish_limits():
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    torch.testing.assert_close(act.swish(x, 0.0), x / 2, atol=0, rtol=0)
    outside = x.abs() > 0.1
    assert (act.swish(x, 100.0) - F.relu(x))[outside].abs().max() < 1e-2


def test_get_activation():
    x = X64
    for name in (
        "relu",
        "gelu",
        "gelu_tanh",
        "gelu_new",
        "silu",
        "swish",
        "sigmoid",
        "leaky_relu",
        "identity",
    ):
        fused, formula = act.get_activation(name), act.get_activation(name, fused=False)
        torch.testing.assert_close(fused(x), formula(x), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="unknown activation"):
        act.get_activation("swishy")
    with pytest.raises(TypeError, match="name"):
        act.get_activation(3)
    with pytest.raises(ValueError, match="approximate"):
        act.gelu(x, approximate="erf")


def test_activation_gradcheck_and_large_inputs():
    x = (3 * _randn(20)).requires_grad_()
    for fn in (act.gelu_exact, act.gelu_tanh, act.silu, lambda t: act.swish(t, 0.7)):
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-8)
    big = torch.tensor([-1e6, -1e4, 1e4, 1e6], requires_grad=True)
    for fn in (act.gelu_exact, act.gelu_tanh, act.silu):
        out = fn(big)
        (grad,) = torch.autograd.grad(out.sum(), big)
        assert torch.isfinite(out).all() and torch.isfinite(grad).all()


# --------------------------------------------------------------------------------------------------
# GPU
# --------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_norms_and_activations_bf16_on_gpu():
    x = _randn(8, 128, 256, dtype=torch.float32).cuda()
    for norm in (LayerNorm(256), RMSNorm(256)):
        _randomize(norm)
        norm = norm.cuda()
        ref = norm(x)
        low = norm.to(torch.bfloat16)(x.to(torch.bfloat16)).float()
        torch.testing.assert_close(low, ref, atol=2e-2, rtol=2e-2)
    for fn in (act.gelu_exact, act.gelu_tanh, act.silu):
        torch.testing.assert_close(fn(x.to(torch.bfloat16)).float(), fn(x), atol=2e-2, rtol=2e-2)
