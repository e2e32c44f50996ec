"""Tests of companion.nn.positional, companion.nn.rope and companion.nn.relative_bias against
references we did not write.

References: the formula of "Attention Is All You Need" §3.5 (explicit loops with ``math``), Hugging
Face ``transformers`` (Llama's ``apply_rotary_pos_emb`` and ``LlamaRotaryEmbedding`` for the
half-split RoPE layout, its linear and dynamic-NTK frequency functions, T5's
``_relative_position_bucket``, BLOOM's ``build_alibi_tensor``), a complex-number RoPE written with
``torch.polar``, the ALiBi paper's reference ``get_slopes`` (Press et al., github.com/ofirpress/
attention_with_linear_biases, ``fairseq/models/transformer.py``), and ``torch.autograd.gradcheck``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig
from transformers import modeling_rope_utils as hf_rope
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
from transformers.models.t5.modeling_t5 import T5Attention

from companion.nn.attention import MultiHeadAttention
from companion.nn.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    offset_matrix,
    sinusoidal,
)
from companion.nn.relative_bias import ALiBi, T5RelativeBias, alibi_bias, alibi_slopes, t5_relative_bucket
from companion.nn.rope import RotaryEmbedding, apply_rotary, rope, rope_frequencies

HYPO = settings(max_examples=30, deadline=None)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


# --------------------------------------------------------------------------------------------------
# Permutation equivariance: why positions are needed
# --------------------------------------------------------------------------------------------------


def test_attention_without_positions_is_permutation_equivariant_and_positions_break_it():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).double().eval()
    x = _randn(2, 9, 16)
    perm = torch.randperm(9, generator=_gen(1))
    with torch.no_grad():
        torch.testing.assert_close(mha(x[:, perm])[0], mha(x)[0][:, perm], rtol=1e-12, atol=1e-12)
        pe = sinusoidal(9, 16, dtype=torch.float64)
        moved = mha(x[:, perm] + pe)[0] - mha(x + pe)[0][:, perm]
    assert moved.abs().max() > 1e-3


# --------------------------------------------------------------------------------------------------
# Sinusoidal
# --------------------------------------------------------------------------------------------------


def _vaswani(n_pos: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """§3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    pe = torch.empty(n_pos, d, dtype=torch.float64)
    for pos in range(n_pos):
        for i in range(d // 2):
            pe[pos, 2 * i] = math.sin(pos / base ** (2 * i / d))
            pe[pos, 2 * i + 1] = math.cos(pos / base ** (2 * i / d))
    return pe


@pytest.mark.parametrize(("n_pos", "d", "base"), [(50, 16, 10000.0), (20, 2, 10000.0), (33, 10, 500.0)])
def test_sinusoidal_matches_the_paper(n_pos, d, base):
    torch.testing.assert_close(
        sinusoidal(n_pos, d, base, dtype=torch.float64), _vaswani(n_pos, d, base), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        sinusoidal(n_pos, d, base), _vaswani(n_pos, d, base).float(), rtol=0, atol=1e-6
    )


def test_sinusoidal_wavelengths_span_2pi_to_just_under_2pi_base():
    d = 512
    omega = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    wavelengths = 2 * math.pi / omega
    assert wavelengths[0] == pytest.approx(2 * math.pi, rel=1e-15)
    assert 0.95 * 2 * math.pi * 1e4 < wavelengths[-1] < 2 * math.pi * 1e4
    # Column 2 of the table repeats with the first wavelength, 2π: sin(p + 2π) = sin(p).
    pe = sinusoidal(8, d, dtype=torch.float64)
    assert torch.allclose(pe[:, 0], torch.sin(torch.arange(8, dtype=torch.float64)), atol=1e-15)


@pytest.mark.parametrize("bad", [0, 7, -2, 2.0, True])
def test_sinusoidal_rejects_bad_width(bad):
    with pytest.raises(ValueError, match="d"):
        sinusoidal(10, bad)


@HYPO
@given(k=st.integers(-500, 500), half=st.integers(1, 16), base=st.sampled_from([100.0, 10000.0]))
def test_offset_matrix_shifts_every_position_and_is_orthogonal(k, half, base):
    d = 2 * half
    pe = sinusoidal(1200, d, base, dtype=torch.float64)
    m = offset_matrix(k, d, base)
    p = torch.arange(500, 700)  # p and p + k both inside the table
    torch.testing.assert_close(pe[p] @ m.T, pe[p + k], rtol=0, atol=1e-9)
    torch.testing.assert_close(m.T @ m, torch.eye(d, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(offset_matrix(-k, d, base), m.T, rtol=0, atol=1e-12)


def test_sinusoidal_rows_never_collide_up_to_1e5():
    # ||PE[p] − PE[q]||² = 2 Σ_i (1 − cos((p − q) ω_i)) depends only on k = p − q (offset property),
    # so the nearest pair among 10⁵ rows is the minimum over k of this function.
    d = 64
    omega = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    k = torch.arange(1, 100_000, dtype=torch.float64)
    dist = (2 * (1 - torch.cos(k[:, None] * omega)).sum(-1)).sqrt()
    pe = sinusoidal(3000, d, dtype=torch.float64)
    brute = torch.cdist(pe, pe) + torch.eye(3000, dtype=torch.float64) * 1e9
    assert brute.min().item() == pytest.approx(dist[:2999].min().item(), rel=1e-9)
    assert dist.min().item() > 0.5  # no two of the 10⁵ positions get (nearly) the same vector


def test_sinusoidal_module_adds_the_table_with_offset_and_grows():
    module = SinusoidalPositionalEncoding(8, max_len=16)
    assert not list(module.parameters()) and not module.state_dict()  # nothing learned, nothing saved
    x = torch.randn(2, 5, 8, generator=_gen())
    torch.testing.assert_close(module(x), x + _vaswani(5, 8).float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(module(x, offset=14), x + _vaswani(19, 8)[14:].float(), rtol=0, atol=1e-5)
    assert module.pe.shape[0] >= 19  # grew past max_len instead of failing
    assert module.encoding(3, offset=2).shape == (3, 8)
    with pytest.raises(ValueError, match="d_model"):
        module(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="offset"):
        module(x, offset=-1)


# --------------------------------------------------------------------------------------------------
# Learned
# --------------------------------------------------------------------------------------------------


def test_learned_embedding_adds_rows_and_refuses_to_extrapolate():
    torch.manual_seed(0)
    module = LearnedPositionalEmbedding(10, 4)
    assert [p.shape for p in module.parameters()] == [torch.Size([10, 4])]
    x = torch.randn(3, 6, 4)
    torch.testing.assert_close(module(x), x + module.weight[:6], rtol=0, atol=0)
    torch.testing.assert_close(module(x[:, :2], offset=8), x[:, :2] + module.weight[8:], rtol=0, atol=0)
    with pytest.raises(ValueError, match="max_len=10"):
        module(torch.randn(1, 11, 4))
    with pytest.raises(ValueError, match="max_len=10"):
        module(x, offset=5)


def test_learned_embedding_gradient_reaches_only_used_rows():
    module = LearnedPositionalEmbedding(12, 4)
    module(torch.randn(2, 5, 4, generator=_gen()), offset=3).square().sum().backward()
    grad = module.weight.grad
    assert (grad[3:8].abs().sum(-1) > 0).all()
    assert grad[:3].abs().max() == 0 and grad[8:].abs().max() == 0


# --------------------------------------------------------------------------------------------------
# RoPE
# --------------------------------------------------------------------------------------------------


def _llama_config(head_dim: int, base: float, rope_parameters: dict | None = None, max_pos: int = 128):
    params = {"rope_type": "default", "rope_theta": base} if rope_parameters is None else rope_parameters
    return LlamaConfig(
        hidden_size=2 * head_dim,
        num_attention_heads=2,
        head_dim=head_dim,
        max_position_embeddings=max_pos,
        rope_parameters=params,
    )


@pytest.mark.parametrize("base", [10000.0, 100000.0])
def test_rope_half_layout_matches_hf_llama(base):
    b, h, t, d = 2, 3, 11, 64
    q, k = _randn(b, h, t, d, seed=1, dtype=torch.float32), _randn(b, h, t, d, seed=2, dtype=torch.float32)
    position_ids = torch.tensor([list(range(t)), list(range(5, 5 + t))])  # per-sequence positions
    hf_rotary = LlamaRotaryEmbedding(_llama_config(d, base))
    cos, sin = hf_rotary(q, position_ids)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos, sin)
    ours = RotaryEmbedding(d, base=base)
    torch.testing.assert_close(ours(q, position_ids), q_hf, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours(k, position_ids), k_hf, rtol=0, atol=1e-5)
    # Small positions: HF's float32 angles are exact enough for the curriculum's 1e-6.
    cos0, sin0 = hf_rotary(q, torch.arange(t)[None])
    q0, _ = apply_rotary_pos_emb(q, k, cos0, sin0)
    torch.testing.assert_close(rope(q, torch.arange(t), base, layout="half"), q0, rtol=0, atol=1e-6)


def test_rope_linear_and_ntk_scaling_match_hf_frequencies():
    d, base = 32, 10000.0
    cfg = _llama_config(d, base, {"rope_type": "linear", "rope_theta": base, "factor": 4.0})
    hf_linear, _ = hf_rope._compute_linear_scaling_rope_parameters(cfg)
    ours = rope_frequencies(d, base, scaling="linear", scaling_factor=4.0)
    torch.testing.assert_close(ours.float(), hf_linear, rtol=1e-6, atol=0)
    # HF's dynamic NTK at length seq_len uses base·(f·seq_len/max_pos − (f − 1))^(d/(d−2)); with f = 2
    # and seq_len = (s + 1)·max_pos/2 that is the static NTK-aware base·s^(d/(d−2)) for s = 4.
    cfg = _llama_config(d, base, {"rope_type": "dynamic", "rope_theta": base, "factor": 2.0}, max_pos=128)
    hf_ntk, _ = hf_rope._compute_dynamic_ntk_parameters(cfg, seq_len=5 * 128 // 2)
    ours = rope_frequencies(d, base, scaling="ntk", scaling_factor=4.0)
    torch.testing.assert_close(ours.float(), hf_ntk, rtol=1e-5, atol=0)
    # Linear scaling = position interpolation: rotating at m with factor s equals rotating at m/s.
    x = _randn(5, d)
    pi = RotaryEmbedding(d, scaling="linear", scaling_factor=4.0)
    angles = (torch.arange(5, dtype=torch.float64) * 4 / 4.0)[:, None] * rope_frequencies(d)
    torch.testing.assert_close(pi(x, torch.arange(5) * 4), apply_rotary(x, angles.cos(), angles.sin()))


def _complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(theta), positions[:, None] * theta)).reshape(
        x.shape
    )


@pytest.mark.parametrize("base", [10000.0, 100000.0, 50.0])
def test_rope_interleaved_equals_complex_multiplication(base):
    x = _randn(2, 3, 10, 16)
    pos = torch.tensor([0, 1, 2, 3, 10, 63, 64, 1000, 4095, 65535])
    want = _complex_rope(x, pos.double(), base)
    torch.testing.assert_close(rope(x, pos, base), want, rtol=0, atol=1e-10)
    module = RotaryEmbedding(16, base=base, interleaved=True)
    torch.testing.assert_close(module(x, pos), want, rtol=0, atol=1e-10)
    torch.testing.assert_close(module(x.float(), pos), want.float(), rtol=0, atol=1e-5)


def _interleaved_to_half(d: int) -> torch.Tensor:
    return torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])


@HYPO
@given(half=st.integers(1, 16), t=st.integers(1, 12), start=st.integers(0, 5000), seed=st.integers(0, 99))
def test_layouts_are_equivalent_up_to_a_permutation(half, t, start, seed):
    d = 2 * half
    x = _randn(2, t, d, seed=seed)
    pos = torch.arange(start, start + t)
    perm = _interleaved_to_half(d)
    torch.testing.assert_close(
        rope(x[..., perm], pos, layout="half"),
        rope(x, pos, layout="interleaved")[..., perm],
        rtol=0,
        atol=1e-10,
    )
    # The same statement about weights: permuting W_Q's output columns turns one checkpoint layout into
    # the other (GGUF/Meta interleaved ↔ Hugging Face half-split).
    inv = torch.argsort(perm)
    torch.testing.assert_close(
        rope(x, pos, layout="half")[..., inv],
        rope(x[..., inv], pos, layout="interleaved"),
        rtol=0,
        atol=1e-10,
    )


@HYPO
@given(
    m=st.integers(0, 3000),
    n=st.integers(0, 3000),
    shift=st.integers(0, 10_000),
    seed=st.integers(0, 99),
    interleaved=st.booleans(),
)
def test_rope_score_depends_only_on_the_offset(m, n, shift, seed, interleaved):
    d = 32
    q, k = _randn(1, d, seed=seed), _randn(1, d, seed=seed + 100)
    module = RotaryEmbedding(d, interleaved=interleaved)
    score = (module(q, torch.tensor([m])) * module(k, torch.tensor([n]))).sum()
    shifted = (module(q, torch.tensor([m + shift])) * module(k, torch.tensor([n + shift]))).sum()
    assert abs(score.item() - shifted.item()) <= 1e-9 * (1 + abs(score.item()))
    # and it equals Re Σ_i q̃_i conj(k̃_i) e^{i(m−n)θ_i} (interleaved pairs as complex numbers)
    if interleaved:
        theta = rope_frequencies(d)
        qc, kc = (torch.view_as_complex(v.reshape(d // 2, 2).contiguous()) for v in (q, k))
        f = (qc * kc.conj() * torch.polar(torch.ones_like(theta), (m - n) * theta)).sum().real
        assert abs(score.item() - f.item()) <= 1e-9 * (1 + abs(f.item()))


@HYPO
@given(
    t=st.integers(1, 20), start=st.integers(0, 100_000), seed=st.integers(0, 99), interleaved=st.booleans()
)
def test_rope_preserves_norms_and_position_zero_is_identity(t, start, seed, interleaved):
    x = _randn(3, t, 8, seed=seed)
    module = RotaryEmbedding(8, interleaved=interleaved)
    out = module(x, start)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(module(x, torch.zeros(t, dtype=torch.long)), x, rtol=0, atol=0)


def test_rope_positions_forms_agree_and_cache_grows():
    module = RotaryEmbedding(16, max_positions=8)
    x = torch.randn(2, 4, 6, 16, generator=_gen())
    by_offset = module(x, 2)  # positions 2 … 7: inside the initial cache of 8
    torch.testing.assert_close(module(x, torch.arange(2, 8)), by_offset, rtol=0, atol=0)
    torch.testing.assert_close(module(x, torch.arange(2, 8).expand(2, 6)), by_offset, rtol=0, atol=0)
    torch.testing.assert_close(
        module(x[:, 0], torch.arange(2, 8).expand(2, 6)), by_offset[:, 0], rtol=0, atol=0
    )
    assert module.cos_cached.shape[0] == 8
    far = module(x, 100)  # beyond max_positions: the cache grows instead of failing
    assert module.cos_cached.shape[0] >= 106
    torch.testing.assert_close(
        far.double(), rope(x.double(), torch.arange(100, 106), layout="half"), atol=1e-5, rtol=0
    )
    assert not module.state_dict()  # caches are not part of a checkpoint
    cos, sin = module.cos_sin(torch.tensor([[0, 1], [2, 3]]))
    assert cos.shape == sin.shape == (2, 2, 8) and cos.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rope_low_precision_keeps_dtype_and_matches_float32(dtype):
    x = torch.randn(2, 4, 32, 64, generator=_gen())
    module = RotaryEmbedding(64)
    out = module(x.to(dtype), 1000)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), module(x, 1000), rtol=2e-2, atol=2e-2)


def test_rope_rejects_bad_input():
    module = RotaryEmbedding(8)
    with pytest.raises(ValueError, match="head_dim"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match="head_dim=8"):
        module(torch.randn(2, 3, 6))
    with pytest.raises(TypeError, match="integer"):
        module(torch.randn(3, 8), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="non-negative"):
        module(torch.randn(3, 8), torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match="3 positions"):
        module(torch.randn(3, 8), torch.arange(4))
    with pytest.raises(ValueError, match="offset"):
        module(torch.randn(3, 8), -2)
    with pytest.raises(ValueError, match="scaling"):
        RotaryEmbedding(8, scaling="yarn")
    with pytest.raises(ValueError, match="scaling_factor"):
        RotaryEmbedding(8, scaling="linear", scaling_factor=0.5)
    with pytest.raises(ValueError, match="layout"):
        rope(torch.randn(3, 8), torch.arange(3), layout="pairs")
    with pytest.raises(ValueError, match="D/2"):
        apply_rotary(torch.randn(3, 8), torch.zeros(3, 8), torch.zeros(3, 8))


def test_rope_gradcheck():
    x = _randn(2, 5, 8).requires_grad_()
    module = RotaryEmbedding(8)
    assert torch.autograd.gradcheck(lambda t: module(t, 7), (x,))
    angles = _randn(5, 4, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t, a: apply_rotary(t, a.cos(), a.sin(), interleaved=True), (x, angles)
    )
    pe = SinusoidalPositionalEncoding(8)
    assert torch.autograd.gradcheck(lambda t: pe(t.float()).double(), (x,), atol=1e-4, eps=1e-3)


def test_rope_cpu_float32_matches_complex_at_long_positions():
    # Cached cos/sin come from float64 angles, so float32 RoPE stays accurate at position 10⁵.
    x = _randn(1, 4, 64)
    pos = torch.arange(100_000, 100_004)
    want = _complex_rope(x, pos.double())
    got = RotaryEmbedding(64, interleaved=True)(x.float(), pos)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-6)


# --------------------------------------------------------------------------------------------------
# ALiBi
# --------------------------------------------------------------------------------------------------


def get_slopes(n):
    """ALiBi's reference slopes, as in Press et al.'s code (attention_with_linear_biases,
    fairseq/models/transformer.py)."""

    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (
        get_slopes_power_of_2(closest_power_of_2)
        + get_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2]
    )


@pytest.mark.parametrize("n_heads", [*range(1, 65), 96, 112, 128])
def test_alibi_slopes_match_the_reference_code(n_heads):
    want = torch.tensor(get_slopes(n_heads), dtype=torch.float64)
    torch.testing.assert_close(alibi_slopes(n_heads, dtype=torch.float64), want, rtol=1e-12, atol=0)


def test_alibi_slopes_known_values():
    assert alibi_slopes(8, dtype=torch.float64).tolist() == [2.0**-h for h in range(1, 9)]
    exponents = torch.log2(alibi_slopes(12, dtype=torch.float64))
    want = [-1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5]
    torch.testing.assert_close(exponents, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-12)


def test_alibi_bias_matches_an_explicit_loop_with_offset():
    n_heads, t_q, t_k, offset = 6, 4, 9, 5
    slopes = get_slopes(n_heads)
    want = torch.empty(n_heads, t_q, t_k, dtype=torch.float64)
    for h in range(n_heads):
        for i in range(t_q):
            for j in range(t_k):
                want[h, i, j] = -slopes[h] * ((offset + i) - j)
    module = ALiBi(n_heads)
    torch.testing.assert_close(
        module.bias(t_q, t_k, offset=offset, dtype=torch.float64), want, rtol=1e-6, atol=1e-6
    )
    assert not list(module.parameters()) and not module.state_dict()  # nothing learned
    full = alibi_bias(n_heads, t_k)
    torch.testing.assert_close(module(t_q, t_k, offset), full[:, offset : offset + t_q])
    assert module.bias(2, 3, dtype=torch.float16).dtype == torch.float16


@pytest.mark.parametrize("n_heads", [4, 12])
def test_alibi_softmax_equals_bloom_per_key_bias(n_heads):
    # BLOOM adds m_h·j per key: it differs from −m_h·(i − j) by m_h·i, a constant per row, which the
    # softmax ignores. Compare attention weights, not raw biases.
    t = 10
    scores = _randn(n_heads, t, t)
    bloom = build_alibi_tensor(torch.ones(1, t, dtype=torch.long), n_heads, torch.float64)  # (H, 1, T)
    future = torch.ones(t, t, dtype=torch.bool).triu(1)
    want = torch.softmax((scores + bloom).masked_fill(future, float("-inf")), dim=-1)
    got = torch.softmax(
        (scores + alibi_bias(n_heads, t, dtype=torch.float64)).masked_fill(future, float("-inf")), -1
    )
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert (
        bloom[:, 0, :] - alibi_bias(n_heads, t, dtype=torch.float64)[:, -1, :]
    ).abs().max() > 1e-3  # raw differ


def test_alibi_added_to_logits_equals_reweighting_exp_scores():
    scores = _randn(8, 6, 6)
    bias = alibi_bias(8, 6, dtype=torch.float64)
    added = torch.softmax(scores + bias, dim=-1)
    reweighted = scores.exp() * bias.exp()
    torch.testing.assert_close(added, reweighted / reweighted.sum(-1, keepdim=True), rtol=1e-12, atol=1e-12)
    multiplied = torch.softmax(scores * bias, dim=-1)  # the misconception: multiply instead of add
    assert (multiplied - added).abs().max() > 0.1


def test_alibi_rejects_bad_input():
    with pytest.raises(ValueError, match="n_heads"):
        ALiBi(0)
    with pytest.raises(ValueError, match="offset"):
        ALiBi(4).bias(2, 2, offset=-1)


# --------------------------------------------------------------------------------------------------
# T5 relative bias
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (16, 64), (8, 20), (64, 256)])
def test_t5_buckets_equal_transformers(bidirectional, num_buckets, max_distance):
    rel = torch.arange(-300, 301)
    want = T5Attention._relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
    got = t5_relative_bucket(rel, bidirectional, num_buckets, max_distance)
    assert torch.equal(got, want)


def test_t5_bias_shape_and_bucket_lookup():
    torch.manual_seed(0)
    module = T5RelativeBias(4)
    assert module.bias(3, 3).abs().max() == 0  # starts with no preference for any distance
    with torch.no_grad():
        module.embedding.weight.normal_()
    bias = module.bias(5, 7, offset=2)
    assert bias.shape == (4, 5, 7)
    rel = torch.arange(7)[None, :] - torch.arange(2, 7)[:, None]
    want = module.embedding.weight[t5_relative_bucket(rel, False)].permute(2, 0, 1)
    torch.testing.assert_close(bias, want, rtol=0, atol=0)
    with pytest.raises(TypeError, match="integer"):
        t5_relative_bucket(torch.zeros(3))


# --------------------------------------------------------------------------------------------------
# GPU
# --------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_rope_and_alibi_on_cuda_bf16_match_float32():
    device = torch.device("cuda")
    x = torch.randn(2, 8, 128, 64, generator=_gen()).to(device)
    for interleaved in (False, True):
        module = RotaryEmbedding(64, interleaved=interleaved).to(device)
        ref = module(x, 500)
        out = module(x.bfloat16(), 500)
        assert out.dtype == torch.bfloat16 and out.device.type == "cuda"
        torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(
            ref.cpu(), RotaryEmbedding(64, interleaved=interleaved)(x.cpu(), 500), rtol=1e-5, atol=1e-5
        )
    alibi = ALiBi(8).to(device)
    bias = alibi.bias(16, 16, dtype=torch.bfloat16)
    assert bias.device.type == "cuda" and bias.dtype == torch.bfloat16
    torch.testing.assert_close(bias.float().cpu(), alibi_bias(8, 16), rtol=2e-2, atol=2e-2)
