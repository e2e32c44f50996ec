"""Tests of companion.nn.attention against references we did not write.

References: ``torch.nn.functional.scaled_dot_product_attention``, ``torch.nn.MultiheadAttention``
(weights copied both with ``from_torch`` and by hand), ``torch.softmax``, explicit float64
computations, and ``torch.autograd.gradcheck``. Mask convention: bool, True = may attend.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from companion.nn.attention import CrossAttention, MultiHeadAttention, merge_heads, split_heads
from companion.nn.sdpa import scaled_dot_product_attention, softmax

# (rtol, atol) per dtype: float64 should agree to rounding error, float32 to one block's tolerance.
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-6)}
MHA_TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5)}
DTYPES = [torch.float64, torch.float32]
HYPO = settings(max_examples=25, deadline=None)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, gen, dtype=torch.float64):
    return torch.randn(*shape, generator=gen, dtype=dtype)


def _qkv(b=2, h=3, t_q=5, t_k=7, d_k=8, d_v=6, dtype=torch.float64, seed=0):
    g = _gen(seed)
    return (
        _randn(b, h, t_q, d_k, gen=g, dtype=dtype),
        _randn(b, h, t_k, d_k, gen=g, dtype=dtype),
        _randn(b, h, t_k, d_v, gen=g, dtype=dtype),
    )


def _random_bool_mask(shape, gen, p_attend=0.6):
    """Random bool mask of ``shape`` (..., T_q, T_k) with at least one True per row (no fully masked row)."""
    mask = torch.rand(shape, generator=gen) < p_attend
    t_k = shape[-1]
    keep = torch.randint(0, t_k, shape[:-1], generator=gen)
    mask.scatter_(-1, keep.unsqueeze(-1), True)
    return mask


def _assert_close(actual, expected, dtype, tol=TOL):
    rtol, atol = tol[dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def _reference_weights(q, k, mask=None, is_causal=False, scale=None):
    """softmax(QK^T * scale + M) in float64 with -inf at blocked entries (rows with a free key only)."""
    q64, k64 = q.double(), k.double()
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q64 @ k64.transpose(-2, -1)) * scale
    if mask is not None:
        if mask.dtype == torch.bool:
            s = s.masked_fill(~mask, float("-inf"))
        else:
            s = s + mask.double()
    if is_causal:
        t_q, t_k = s.shape[-2:]
        s = s.masked_fill(torch.ones(t_q, t_k, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1)


# --------------------------------------------------------------------------------------------------
# scaled_dot_product_attention vs torch SDPA
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_shape", [None, "qk", "b1qk", "bhqk"])
def test_sdpa_matches_torch_bool_masks(dtype, mask_shape):
    b, h, t_q, t_k = 2, 3, 5, 7
    q, k, v = _qkv(b, h, t_q, t_k, dtype=dtype)
    g = _gen(1)
    shapes = {"qk": (t_q, t_k), "b1qk": (b, 1, t_q, t_k), "bhqk": (b, h, t_q, t_k)}
    mask = None if mask_shape is None else _random_bool_mask(shapes[mask_shape], g)
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (b, h, t_q, v.shape[-1]) and w.shape == (b, h, t_q, t_k)
    _assert_close(out, ref, dtype)
    _assert_close(w, _reference_weights(q, k, mask).to(dtype), dtype)
    if mask is not None:
        assert mask.logical_not().any()  # the mask really blocks something
        assert torch.all(w.masked_select(~mask.expand_as(w)) == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("t_q", "t_k"), [(6, 6), (4, 9), (9, 4), (1, 5)])
def test_sdpa_is_causal_matches_torch(dtype, t_q, t_k):
    q, k, v = _qkv(2, 2, t_q, t_k, dtype=dtype, seed=3)
    out, w = scaled_dot_product_attention(q, k, v, is_causal=True)
    _assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), dtype)
    # top-left aligned: query i sees keys 0..i (torch semantics), so everything above the diagonal is 0
    upper = torch.ones(t_q, t_k, dtype=torch.bool).triu(1)
    assert torch.all(w[..., upper] == 0)
    _assert_close(w.sum(-1), torch.ones(w.shape[:-1], dtype=dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_causal_and_bool_mask_combined(dtype):
    t_q, t_k = 5, 8
    q, k, v = _qkv(2, 2, t_q, t_k, dtype=dtype, seed=4)
    mask = _random_bool_mask((2, 1, t_q, t_k), _gen(5))
    mask[..., 0] = True  # key 0 is visible to every query even after the causal cut
    tril = torch.ones(t_q, t_k, dtype=torch.bool).tril()
    out, w = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    _assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask & tril), dtype)
    _assert_close(w, _reference_weights(q, k, mask & tril).to(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_float_additive_mask_matches_torch(dtype):
    b, h, t_q, t_k = 2, 3, 4, 6
    q, k, v = _qkv(b, h, t_q, t_k, dtype=dtype, seed=6)
    g = _gen(7)
    bias = _randn(1, h, t_q, t_k, gen=g, dtype=dtype) * 3  # e.g. an ALiBi-like bias
    out, w = scaled_dot_product_attention(q, k, v, mask=bias)
    _assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=bias), dtype)
    _assert_close(w, _reference_weights(q, k, bias).to(dtype), dtype)

    # -inf entries in a float mask block exactly like False in a bool mask
    allowed = _random_bool_mask((t_q, t_k), g)
    neg = torch.zeros(t_q, t_k, dtype=dtype).masked_fill(~allowed, float("-inf"))
    out2, w2 = scaled_dot_product_attention(q, k, v, mask=neg)
    out_bool, _ = scaled_dot_product_attention(q, k, v, mask=allowed)
    _assert_close(out2, F.scaled_dot_product_attention(q, k, v, attn_mask=neg), dtype)
    _assert_close(out2, out_bool, dtype)
    assert torch.all(w2[..., ~allowed] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [0.05, 1.0, 2.5])
def test_sdpa_custom_scale(dtype, scale):
    q, k, v = _qkv(dtype=dtype, seed=8)
    mask = _random_bool_mask((5, 7), _gen(9))
    out, w = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
    _assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale), dtype)
    _assert_close(w, _reference_weights(q, k, mask, scale=scale).to(dtype), dtype)
    # and the default really is 1/sqrt(d_k)
    out_default, _ = scaled_dot_product_attention(q, k, v)
    out_explicit, _ = scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(q.shape[-1]))
    torch.testing.assert_close(out_default, out_explicit, rtol=0, atol=0)


def test_sdpa_3d_inputs_without_heads():
    q, k, v = (x[:, 0] for x in _qkv(seed=10))  # (B, T, d)
    out, w = scaled_dot_product_attention(q, k, v, is_causal=True)
    _assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), torch.float64)
    assert w.shape == (2, 5, 7)


# --------------------------------------------------------------------------------------------------
# fully masked rows, weights, numerical stability
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["bool", "float-inf"])
def test_fully_masked_rows_are_zero_and_finite(dtype, kind):
    t_q, t_k = 4, 5
    q, k, v = _qkv(2, 2, t_q, t_k, dtype=dtype, seed=11)
    allowed = _random_bool_mask((2, 1, t_q, t_k), _gen(12))
    allowed[0, 0, 1] = False  # batch 0, query 1: every key blocked
    allowed[1, 0, 3] = False
    if kind == "bool":
        mask = allowed
    else:
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, float("-inf"))
    q, k, v = (x.clone().requires_grad_(True) for x in (q, k, v))
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    for bi, qi in [(0, 1), (1, 3)]:
        assert torch.all(out[bi, :, qi] == 0)
        assert torch.all(w[bi, :, qi] == 0)
    # the other rows still match torch (fully masked rows are not compared: backends differ)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ok = allowed.any(-1).expand(2, 2, t_q)
    _assert_close(out[ok], ref[ok], dtype)
    _assert_close(w.sum(-1)[ok], torch.ones(int(ok.sum()), dtype=dtype), dtype)
    (out.square().sum() + w.square().sum()).backward()
    for x in (q, k, v):
        assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.all(q.grad[0, :, 1] == 0)  # a fully masked query has no influence on anything


def test_weights_rows_sum_to_one_and_masked_are_exactly_zero():
    q, k, v = _qkv(3, 2, 6, 9, dtype=torch.float32, seed=13)
    mask = _random_bool_mask((3, 2, 6, 9), _gen(14), p_attend=0.4)
    _, w = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 6), rtol=0, atol=1e-6)
    assert torch.all(w[~mask] == 0)
    assert torch.all(w[mask] > 0)
    assert torch.all(w >= 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_stable_at_large_logits(dtype):
    # Integer-valued q, k with scale=1 make every score exact in float32 too; logits reach ±1e4.
    g = _gen(15)
    q = torch.randint(-50, 51, (2, 2, 5, 4), generator=g).to(dtype)
    k = torch.randint(-50, 51, (2, 2, 7, 4), generator=g).to(dtype)
    q[0, 0, 0] = torch.tensor([100.0, 0, 0, 0], dtype=dtype)
    k[0, 0, :, 0] = torch.tensor([100.0, -100.0, 99.0, 0, 1, 2, 3], dtype=dtype)  # logits 1e4, -1e4, 9900
    v = _randn(2, 2, 7, 3, gen=g, dtype=dtype)
    mask = _random_bool_mask((5, 7), g)
    mask[0, :3] = True
    out, w = scaled_dot_product_attention(q, k, v, mask=mask, scale=1.0)
    s = q.double() @ k.double().transpose(-2, -1)
    assert s.abs().max() >= 1e4  # the test really reaches the large-logit regime
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    w_ref = _reference_weights(q, k, mask, scale=1.0)
    torch.testing.assert_close(w.double(), w_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.double(), w_ref @ v.double(), rtol=0, atol=1e-5)
    # the ±1e4 row: weight 1 on key 0 (logit 1e4 vs 9900 and -1e4)
    torch.testing.assert_close(w[0, 0, 0, 0].double(), torch.tensor(1.0, dtype=torch.float64))


def test_sdpa_stable_with_large_float_mask_values():
    q, k, v = _qkv(1, 1, 3, 4, dtype=torch.float32, seed=16)
    bias = torch.tensor([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4, -1e4, -1e4], [0.0, 0.0, 0.0, -1e4]])
    out, w = scaled_dot_product_attention(q, k, v, mask=bias)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    # float32 cannot represent s + 1e4 to better than ~1e-3, so the float64 reference starts from the
    # same float32 logits; what is tested is that the softmax itself neither overflows nor loses accuracy.
    s32 = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1]) + bias
    w_ref = torch.softmax(s32.double(), dim=-1)
    torch.testing.assert_close(w.double(), w_ref, rtol=0, atol=1e-6)
    # and against exact float64 logits, within float32's resolution at 1e4
    torch.testing.assert_close(w.double(), _reference_weights(q, k, bias.double()), rtol=0, atol=1e-3)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v, attn_mask=bias), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(("t_q", "t_k", "d_v"), [(1, 1, 2), (3, 11, 5), (11, 3, 1)])
def test_sdpa_different_query_and_key_lengths(t_q, t_k, d_v):
    q, k, v = _qkv(2, 1, t_q, t_k, d_k=4, d_v=d_v, seed=17)
    out, w = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 1, t_q, d_v) and w.shape == (2, 1, t_q, t_k)
    _assert_close(out, F.scaled_dot_product_attention(q, k, v), torch.float64)


# --------------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "causal", "fully-masked-row"])
def test_sdpa_gradcheck(mask_kind):
    q, k, v = _qkv(1, 2, 3, 4, d_k=3, d_v=2, seed=18)
    q, k, v = (x.requires_grad_(True) for x in (q, k, v))
    mask, is_causal = None, False
    if mask_kind == "bool":
        mask = _random_bool_mask((3, 4), _gen(19))
    elif mask_kind == "float":
        mask = _randn(1, 2, 3, 4, gen=_gen(20))
    elif mask_kind == "causal":
        is_causal = True
    elif mask_kind == "fully-masked-row":
        mask = _random_bool_mask((3, 4), _gen(21))
        mask[1] = False

    def f(q, k, v):
        return scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)

    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-8)


def test_mha_gradcheck():
    torch.manual_seed(22)
    mha = MultiHeadAttention(6, 2, dtype=torch.float64)
    g = _gen(23)
    x = _randn(2, 3, 6, gen=g).requires_grad_(True)
    key_mask = torch.tensor([[True, True, True], [True, True, False]])

    def f(x):
        return mha(x, key_mask=key_mask, is_causal=True)[0]

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-8)

    cross = MultiHeadAttention(6, 3, kv_dim=4, dtype=torch.float64)
    ctx = _randn(2, 5, 4, gen=g).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, c: cross(x, c)[0], (x, ctx), eps=1e-6, atol=1e-8)


# --------------------------------------------------------------------------------------------------
# MultiHeadAttention vs torch.nn.MultiheadAttention
# --------------------------------------------------------------------------------------------------


def _torch_mha(d, h, *, bias=True, dtype=torch.float64, seed=0, kdim=None):
    torch.manual_seed(seed)
    m = nn.MultiheadAttention(d, h, bias=bias, batch_first=True, kdim=kdim, vdim=kdim, dtype=dtype)
    if bias:  # torch initialises in_proj_bias and out_proj.bias to zero: randomise so biases are tested
        with torch.no_grad():
            m.in_proj_bias.normal_()
            m.out_proj.bias.normal_()
    return m.eval()


def _copy_by_hand(tm: nn.MultiheadAttention, bias=True) -> MultiHeadAttention:
    """Copy torch's stacked [W_Q; W_K; W_V] (3d, d) slices into our separate projections."""
    d, h = tm.embed_dim, tm.num_heads
    w = tm.in_proj_weight
    ours = MultiHeadAttention(d, h, bias=bias, dtype=w.dtype)
    with torch.no_grad():
        ours.q_proj.weight.copy_(w[:d])
        ours.k_proj.weight.copy_(w[d : 2 * d])
        ours.v_proj.weight.copy_(w[2 * d :])
        ours.out_proj.weight.copy_(tm.out_proj.weight)
        if bias:
            ours.q_proj.bias.copy_(tm.in_proj_bias[:d])
            ours.k_proj.bias.copy_(tm.in_proj_bias[d : 2 * d])
            ours.v_proj.bias.copy_(tm.in_proj_bias[2 * d :])
            ours.out_proj.bias.copy_(tm.out_proj.bias)
    return ours.eval()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("copy", ["from_torch", "by_hand"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masks", ["none", "key_padding", "causal", "both"])
def test_mha_matches_torch_multihead_attention(dtype, copy, bias, masks):
    d, h, b, t = 16, 4, 3, 7
    tm = _torch_mha(d, h, bias=bias, dtype=dtype, seed=24)
    ours = MultiHeadAttention.from_torch(tm).eval() if copy == "from_torch" else _copy_by_hand(tm, bias)
    x = _randn(b, t, d, gen=_gen(25), dtype=dtype)
    key_mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] * 1 + [False] * 6])
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    km = key_mask if masks in ("key_padding", "both") else None
    am = causal if masks in ("causal", "both") else None

    out, w = ours(x, key_mask=km, attn_mask=am, need_weights=True)
    ref, ref_w = tm(
        x,
        x,
        x,
        key_padding_mask=None if km is None else ~km,
        attn_mask=None if am is None else ~am,
        need_weights=True,
        average_attn_weights=False,
    )
    assert out.shape == (b, t, d) and w.shape == (b, h, t, t)
    _assert_close(out, ref, dtype, MHA_TOL)
    _assert_close(w, ref_w, dtype, MHA_TOL)
    # torch's default averages over heads
    _, ref_avg = tm(
        x, x, x, key_padding_mask=None if km is None else ~km, attn_mask=None if am is None else ~am
    )
    _assert_close(w.mean(1), ref_avg, dtype, MHA_TOL)
    # is_causal=True is the same as passing the causal attn_mask
    if am is not None:
        out_c, _ = ours(x, key_mask=km, is_causal=True)
        _assert_close(out_c, out, dtype, MHA_TOL)
    # need_weights=False returns None and the same output
    out_nw, w_nw = ours(x, key_mask=km, attn_mask=am)
    assert w_nw is None
    _assert_close(out_nw, out, dtype, MHA_TOL)


def test_from_torch_copies_every_parameter_exactly():
    tm = _torch_mha(12, 3, dtype=torch.float32, seed=26)
    ours = MultiHeadAttention.from_torch(tm)
    hand = _copy_by_hand(tm)
    for name, p in hand.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], p, rtol=0, atol=0)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tm.parameters())
    with pytest.raises(TypeError, match="module"):
        MultiHeadAttention.from_torch(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="module"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))


def _copy_cross_by_hand(tm: nn.MultiheadAttention, kv_dim: int, cls=MultiHeadAttention):
    d, h = tm.embed_dim, tm.num_heads
    ours = cls(d, h, kv_dim=kv_dim, dtype=tm.q_proj_weight.dtype)
    with torch.no_grad():
        ours.q_proj.weight.copy_(tm.q_proj_weight)
        ours.k_proj.weight.copy_(tm.k_proj_weight)
        ours.v_proj.weight.copy_(tm.v_proj_weight)
        ours.q_proj.bias.copy_(tm.in_proj_bias[:d])
        ours.k_proj.bias.copy_(tm.in_proj_bias[d : 2 * d])
        ours.v_proj.bias.copy_(tm.in_proj_bias[2 * d :])
        ours.out_proj.weight.copy_(tm.out_proj.weight)
        ours.out_proj.bias.copy_(tm.out_proj.bias)
    return ours.eval()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t_src", [1, 4, 11])
def test_cross_attention_matches_torch_with_kdim(dtype, t_src):
    d, h, kv, b, t_dec = 12, 3, 5, 2, 6
    tm = _torch_mha(d, h, dtype=dtype, seed=27, kdim=kv)
    assert not tm._qkv_same_embed_dim  # torch uses the separate q/k/v weight path
    ours = _copy_cross_by_hand(tm, kv)
    cross = _copy_cross_by_hand(tm, kv, cls=CrossAttention)
    g = _gen(28)
    x = _randn(b, t_dec, d, gen=g, dtype=dtype)
    enc = _randn(b, t_src, kv, gen=g, dtype=dtype)
    src_mask = torch.ones(b, t_src, dtype=torch.bool)
    src_mask[1, max(1, t_src - 2) :] = False

    out, w = ours(x, enc, key_mask=src_mask, need_weights=True)
    ref, ref_w = tm(x, enc, enc, key_padding_mask=~src_mask, average_attn_weights=False)
    assert out.shape == (b, t_dec, d) and w.shape == (b, h, t_dec, t_src)
    _assert_close(out, ref, dtype, MHA_TOL)
    _assert_close(w, ref_w, dtype, MHA_TOL)
    out_c, w_c = cross(x, enc, src_mask, need_weights=True)
    _assert_close(out_c, ref, dtype, MHA_TOL)
    _assert_close(w_c, ref_w, dtype, MHA_TOL)


def test_cross_attention_ignores_values_at_source_padding_and_is_not_causal():
    torch.manual_seed(29)
    cross = CrossAttention(8, 2, kv_dim=6, dtype=torch.float64).eval()
    g = _gen(30)
    x = _randn(2, 5, 8, gen=g)
    enc = _randn(2, 9, 6, gen=g)
    lengths = torch.tensor([9, 4])
    src_mask = torch.arange(9)[None, :] < lengths[:, None]
    out, w = cross(x, enc, src_mask, need_weights=True)
    enc2 = enc.clone()
    enc2[1, 4:] = 1e3 * _randn(5, 6, gen=g)  # garbage at padded source positions
    out2, _ = cross(x, enc2, src_mask)
    torch.testing.assert_close(out2, out, rtol=0, atol=1e-12)
    # no causal mask: the first decoder position attends to the last source position
    assert torch.all(w[0, :, 0, -1] > 0)
    with pytest.raises(ValueError, match="context"):
        cross(x, None)


# --------------------------------------------------------------------------------------------------
# fused path (torch SDPA kernels) equals the unfused path
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["plain", "key_mask", "attn_mask", "causal", "key_mask+causal", "attn_mask+causal", "cross"]
)
def test_fused_equals_unfused(case):
    d, h, b, t = 16, 4, 2, 6
    torch.manual_seed(31)
    unfused = MultiHeadAttention(d, h, kv_dim=10 if case == "cross" else None).eval()
    fused = MultiHeadAttention(d, h, kv_dim=10 if case == "cross" else None, kernel="sdpa").eval()
    fused.load_state_dict(unfused.state_dict())
    g = _gen(32)
    x = torch.randn(b, t, d, generator=g)
    ctx = torch.randn(b, 9, 10, generator=g) if case == "cross" else None
    t_k = 9 if case == "cross" else t
    kwargs = {}
    if "key_mask" in case or case == "cross":
        km = torch.ones(b, t_k, dtype=torch.bool)
        km[1, t_k - 2 :] = False
        kwargs["key_mask"] = km
    if "attn_mask" in case:
        kwargs["attn_mask"] = _random_bool_mask((b, 1, t, t_k), g)
    if "causal" in case:
        kwargs["is_causal"] = True
    out_u, _ = unfused(x, ctx, **kwargs)
    out_f, w_f = fused(x, ctx, **kwargs)
    assert w_f is None
    torch.testing.assert_close(out_f, out_u, rtol=1e-5, atol=1e-5)
    # torch's math backend (the fallback on every device) rejects attn_mask together with is_causal,
    # so the fused path must fold the causal mask into the boolean mask itself
    with sdpa_kernel(SDPBackend.MATH):
        out_math, _ = fused(x, ctx, **kwargs)
    torch.testing.assert_close(out_math, out_u, rtol=1e-5, atol=1e-5)
    # asking for the weights falls back to the explicit path and still returns them
    out_fw, w_fw = fused(x, ctx, need_weights=True, **kwargs)
    torch.testing.assert_close(out_fw, out_u, rtol=1e-5, atol=1e-5)
    assert w_fw is not None and w_fw.shape == (b, h, t, t_k)


# --------------------------------------------------------------------------------------------------
# single head, parameter count, MACs
# --------------------------------------------------------------------------------------------------


def test_single_head_equals_hand_computed_attention():
    d = 10
    torch.manual_seed(33)
    mha = MultiHeadAttention(d, 1, dtype=torch.float64).eval()
    x = _randn(2, 5, d, gen=_gen(34))
    key_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out, w = mha(x, key_mask=key_mask, need_weights=True)

    def lin(z, layer):
        return z @ layer.weight.T + layer.bias

    q, k, v = lin(x, mha.q_proj), lin(x, mha.k_proj), lin(x, mha.v_proj)
    s = q @ k.transpose(1, 2) / math.sqrt(d)
    s = s.masked_fill(~key_mask[:, None, :], float("-inf"))
    a = torch.softmax(s, dim=-1)
    expected = lin(a @ v, mha.out_proj)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(w[:, 0], a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("d", "h"), [(8, 1), (8, 2), (64, 8), (96, 12)])
def test_parameter_count(d, h):
    n = sum(p.numel() for p in MultiHeadAttention(d, h).parameters())
    assert n == 4 * d * d + 4 * d
    assert sum(p.numel() for p in MultiHeadAttention(d, h, bias=False).parameters()) == 4 * d * d


def test_macs_independent_of_heads():
    d, n = 64, 50
    counts = [MultiHeadAttention(d, h).macs(n) for h in (1, 2, 4, 8, 16, 32, 64)]
    assert all(c == counts[0] for c in counts)
    assert counts[0] == {
        "projections": 4 * n * d * d,
        "attention": 2 * n * n * d,
        "total": 4 * n * d * d + 2 * n * n * d,
    }
    c = MultiHeadAttention(d, 4, kv_dim=32).macs(10, 30)
    assert c["projections"] == 2 * 10 * d * d + 2 * 30 * 32 * d and c["attention"] == 2 * 10 * 30 * d


def test_macs_match_counted_matmuls():
    # Count multiply-accumulates of the actual matmuls by flop counting (2 flops per MAC).
    from torch.utils.flop_counter import FlopCounterMode

    d, t = 32, 12
    for h in (1, 4, 8):
        mha = MultiHeadAttention(d, h).eval()
        x = torch.randn(1, t, d, generator=_gen(35))
        with FlopCounterMode(display=False) as fc:
            mha(x)
        assert fc.get_total_flops() == 2 * mha.macs(t)["total"]


def test_split_and_merge_heads_roundtrip():
    x = torch.randn(2, 5, 12, generator=_gen(36))
    s = split_heads(x, 3)
    assert s.shape == (2, 3, 5, 4)
    torch.testing.assert_close(s[:, 1], x[..., 4:8], rtol=0, atol=0)
    torch.testing.assert_close(merge_heads(s), x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="n_heads"):
        split_heads(x, 5)
    with pytest.raises(ValueError, match="x"):
        merge_heads(x)


# --------------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------------


def test_sdpa_dropout_with_generator_is_reproducible_and_correctly_scaled():
    p = 0.3
    q, k, _ = _qkv(2, 2, 6, 8, dtype=torch.float64, seed=37)
    v = torch.eye(8, dtype=torch.float64)  # out = dropped-and-rescaled weights themselves
    out1, w1 = scaled_dot_product_attention(q, k, v, dropout_p=p, generator=_gen(38))
    out2, w2 = scaled_dot_product_attention(q, k, v, dropout_p=p, generator=_gen(38))
    out3, _ = scaled_dot_product_attention(q, k, v, dropout_p=p, generator=_gen(39))
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)
    assert not torch.equal(out1, out3)
    torch.testing.assert_close(w1, w2, rtol=0, atol=0)
    torch.testing.assert_close(w1.sum(-1), torch.ones(2, 2, 6, dtype=torch.float64))  # weights: pre-dropout
    dropped = out1 == 0
    kept = ~dropped
    assert dropped.any() and kept.any()
    torch.testing.assert_close(out1[kept], w1[kept] / (1 - p), rtol=1e-12, atol=0)
    no_drop, _ = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(no_drop, w1, rtol=0, atol=0)


def test_sdpa_dropout_rate_is_p():
    p, n = 0.25, 200
    q, k, v = _qkv(4, 4, n // 4, n, d_k=4, d_v=n, seed=40)
    v = torch.eye(n, dtype=torch.float64)
    out, _ = scaled_dot_product_attention(q, k, v, dropout_p=p, generator=_gen(41))
    frac = (out == 0).double().mean().item()
    se = math.sqrt(p * (1 - p) / out.numel())  # ~0.0011 here
    assert abs(frac - p) < 4 * se + 1e-3


def test_mha_dropout_train_vs_eval():
    torch.manual_seed(42)
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    ref = MultiHeadAttention(16, 4)
    ref.load_state_dict(mha.state_dict())
    x = torch.randn(2, 5, 16, generator=_gen(43))
    mha.eval()
    torch.testing.assert_close(mha(x)[0], ref(x)[0], rtol=0, atol=0)  # eval(): dropout off
    mha.train()
    torch.manual_seed(44)
    a = mha(x)[0]
    torch.manual_seed(44)
    b = mha(x)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # reproducible with the global seed
    assert (a - ref(x)[0]).abs().max() > 1e-3  # and dropout really is active in train()


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_out_of_range_raises(p):
    q, k, v = _qkv(seed=45)
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, k, v, dropout_p=p)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(8, 2, dropout=p)


# --------------------------------------------------------------------------------------------------
# clear errors
# --------------------------------------------------------------------------------------------------


def test_sdpa_refuses_masks_and_scales_it_would_misread():
    """Before: an integer 0/1 causal mask was added to the scores, leaking ~9% of the weight to future
    tokens; NaN or +inf in an additive mask and a NaN scale went through."""
    q, k, v = _qkv(seed=47)
    t_q, t_k = q.shape[-2], k.shape[-2]
    causal_01 = torch.ones(t_q, t_k, dtype=torch.long).tril()
    for bad in (causal_01, causal_01.int(), causal_01.to(torch.uint8)):
        with pytest.raises(TypeError, match=r"mask: expected a bool mask .* use mask\.bool\(\)"):
            scaled_dot_product_attention(q, k, v, mask=bad)
    out, w = scaled_dot_product_attention(q, k, v, mask=causal_01.bool())  # the fix the message names
    assert float(w.triu(1).abs().max()) == 0.0
    for value in (float("nan"), float("inf")):
        bias = torch.zeros(t_q, t_k)
        bias[0, 0] = value
        with pytest.raises(ValueError, match="not NaN or \\+inf"):
            scaled_dot_product_attention(q, k, v, mask=bias)
    minus_inf = torch.zeros(t_q, t_k).masked_fill(causal_01 == 0, float("-inf"))
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=minus_inf)[0], out)
    for scale in (float("nan"), float("inf"), "0.5", True):
        with pytest.raises(ValueError, match="scale"):
            scaled_dot_product_attention(q, k, v, scale=scale)


def test_sdpa_errors_name_the_argument():
    q, k, v = _qkv(seed=46)
    with pytest.raises(TypeError, match="q"):
        scaled_dot_product_attention(q.tolist(), k, v)
    with pytest.raises(TypeError, match="k"):
        scaled_dot_product_attention(q, k.numpy(), v)
    with pytest.raises(TypeError, match="v"):
        scaled_dot_product_attention(q, k, v.long())
    with pytest.raises(ValueError, match="d_k"):
        scaled_dot_product_attention(q, k[..., :-1], v)
    with pytest.raises(ValueError, match="T_k"):
        scaled_dot_product_attention(q, k, v[..., :-1, :])
    with pytest.raises(ValueError, match="mask"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 1, 5, 7, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask"):
        scaled_dot_product_attention(q, k, v, mask=[[True]])
    with pytest.raises(ValueError, match="q"):
        scaled_dot_product_attention(torch.ones(4, dtype=torch.float64), k, v)


def test_mha_errors_name_the_argument():
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="d_model"):
        MultiHeadAttention(0, 1)
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="kv_dim"):
        MultiHeadAttention(8, 2, kv_dim=-1)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8, generator=_gen(47))
    with pytest.raises(TypeError, match="x"):
        mha(x.numpy())
    with pytest.raises(ValueError, match="d_model"):
        mha(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="x"):
        mha(torch.randn(5, 8))
    with pytest.raises(ValueError, match="kv_dim"):
        mha(x, torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="batch"):
        mha(x, torch.randn(3, 5, 8))
    with pytest.raises(ValueError, match="key_mask"):
        mha(x, key_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_mask"):
        mha(x, key_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="key_mask"):
        mha(x, key_mask=torch.ones(2, 1, 1, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="key_mask"):
        mha(x, key_mask=[[True] * 5] * 2)
    with pytest.raises(TypeError, match="attn_mask"):
        mha(x, attn_mask=torch.zeros(5, 5))
    with pytest.raises(TypeError, match="attn_mask"):
        mha(x, attn_mask=[[True] * 5] * 5)
    for fused in (False, True):
        mha.kernel = "sdpa" if fused else "explicit"
        with pytest.raises(ValueError, match="attn_mask"):
            mha(x, attn_mask=torch.ones(4, 5, dtype=torch.bool))
        with pytest.raises(ValueError, match="attn_mask"):  # together with a key mask, too
            mha(
                x,
                key_mask=torch.ones(2, 5, dtype=torch.bool),
                attn_mask=torch.ones(3, 1, 5, 5, dtype=torch.bool),
            )


# --------------------------------------------------------------------------------------------------
# properties (hypothesis)
# --------------------------------------------------------------------------------------------------


@HYPO
@given(seed=st.integers(0, 2**31 - 1), perm=st.permutations(range(7)))
def test_self_attention_is_permutation_equivariant(seed, perm):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(12, 3, dtype=torch.float64).eval()
    x = torch.randn(2, 7, 12, dtype=torch.float64, generator=_gen(seed))
    idx = torch.tensor(perm)
    out = mha(x)[0]
    out_perm = mha(x[:, idx])[0]
    torch.testing.assert_close(out_perm, out[:, idx], rtol=1e-10, atol=1e-10)
    o, _ = scaled_dot_product_attention(x, x, x)
    o_perm, _ = scaled_dot_product_attention(x[:, idx], x[:, idx], x[:, idx])
    torch.testing.assert_close(o_perm, o[:, idx], rtol=1e-10, atol=1e-10)


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_moderate = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=64)


@HYPO
@given(
    rows=st.lists(st.lists(_finite, min_size=1, max_size=12), min_size=1, max_size=4).map(
        lambda rs: [r + [0.0] * (max(map(len, rs)) - len(r)) for r in rs]
    )
)
def test_softmax_rows_sum_to_one_for_any_finite_logits(rows):
    x = torch.tensor(rows, dtype=torch.float64)
    p = softmax(x, dim=-1)
    assert torch.isfinite(p).all() and torch.all(p >= 0)
    torch.testing.assert_close(p.sum(-1), torch.ones(x.shape[0], dtype=torch.float64), rtol=0, atol=1e-12)
    p32 = softmax(x.clamp(-1e30, 1e30).float(), dim=-1)
    assert torch.isfinite(p32).all()
    torch.testing.assert_close(p32.sum(-1), torch.ones(x.shape[0]), rtol=0, atol=1e-5)


@HYPO
@given(
    row=st.lists(_moderate, min_size=1, max_size=16),
    c=st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
)
def test_softmax_invariant_to_adding_a_constant(row, c):
    x = torch.tensor([row, row[::-1]], dtype=torch.float64)
    shift = torch.tensor([[c], [-c]], dtype=torch.float64)
    torch.testing.assert_close(softmax(x + shift), softmax(x), rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------------------------
# softmax
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_matches_torch(dtype, dim):
    x = torch.randn(4, 5, 6, generator=_gen(48), dtype=dtype) * 20
    _assert_close(softmax(x, dim=dim), torch.softmax(x, dim=dim), dtype)


def test_softmax_all_neg_inf_row_gives_zeros():
    x = torch.tensor([[0.0, 1.0, 2.0], [float("-inf")] * 3, [float("-inf"), 0.0, float("-inf")]])
    p = softmax(x)
    assert torch.all(p[1] == 0)
    torch.testing.assert_close(p[2], torch.tensor([0.0, 1.0, 0.0]), rtol=0, atol=0)
    torch.testing.assert_close(p[0], torch.softmax(x[0], -1), rtol=0, atol=1e-7)
    assert torch.isnan(torch.softmax(x, -1)[1]).all()  # the pitfall our version avoids (M10.7)
    big = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    torch.testing.assert_close(softmax(big), torch.softmax(big.double(), -1).float(), rtol=0, atol=1e-7)
    with pytest.raises(TypeError, match="x"):
        softmax(torch.tensor([1, 2, 3]))
