"""companion.nn.score_scaling.score_stats and companion.testing.assert_causal against independent
computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from companion.nn.attention import MultiHeadAttention
from companion.nn.masks import causal
from companion.nn.score_scaling import N_KEYS, score_stats, softmax_jacobian_norm
from companion.testing import assert_causal


def test_jacobian_norm_matches_autograd_jacobian():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 7, generator=g, dtype=torch.float64) * 3
    p = torch.softmax(z, -1)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda x: torch.softmax(x, -1), z[i])
        assert torch.allclose(softmax_jacobian_norm(p[i]), torch.linalg.matrix_norm(jac), rtol=1e-12)


def test_jacobian_norm_is_zero_for_one_hot_and_maximal_for_uniform():
    one_hot = torch.zeros(6, dtype=torch.float64)
    one_hot[2] = 1
    assert softmax_jacobian_norm(one_hot).item() == pytest.approx(0.0, abs=1e-15)
    k = 6
    uniform = torch.full((k,), 1 / k, dtype=torch.float64)
    # diag(1/k) - 11ᵀ/k² has Frobenius norm sqrt((k - 1)/k²)
    assert softmax_jacobian_norm(uniform).item() == pytest.approx(math.sqrt(k - 1) / k, rel=1e-12)


def test_score_stats_follows_its_specification():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(400, 32, generator=g, dtype=torch.float64)
    k = torch.randn(N_KEYS, 32, generator=g, dtype=torch.float64)
    z = q @ k.T / math.sqrt(32)
    p = torch.softmax(z, -1)
    expected_entropy = float(-(p * p.log()).sum(-1).mean())
    var, entropy, _ = score_stats(32, 400, True, torch.Generator().manual_seed(3))
    assert var == pytest.approx(float(z.var()), rel=1e-12)
    assert entropy == pytest.approx(expected_entropy, rel=1e-10)


@pytest.mark.parametrize("d_k", [16, 256])
def test_score_variance_is_d_k_unscaled_and_one_scaled(d_k):
    # Var(q·k) = d_k for unit-variance entries; the estimate's error is well inside 10% at n = 10⁴.
    var_raw, _, _ = score_stats(d_k, 10_000, False, torch.Generator().manual_seed(1))
    var_scaled, _, _ = score_stats(d_k, 10_000, True, torch.Generator().manual_seed(1))
    assert var_raw / d_k == pytest.approx(1.0, abs=0.1)
    assert var_scaled == pytest.approx(1.0, abs=0.1)


def test_score_stats_rejects_bad_sizes():
    with pytest.raises(ValueError, match="d_k"):
        score_stats(0, 10, True)
    with pytest.raises(ValueError, match="n"):
        score_stats(4, -1, True)


class _Model(nn.Module):
    def __init__(self, causal_mask: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(7, 8)
        self.attn = MultiHeadAttention(8, 2)
        self.causal_mask = causal_mask

    def forward(self, ids):
        mask = causal(ids.shape[1]) if self.causal_mask else None
        return self.attn(self.embed(ids), attn_mask=mask)[0]


def test_assert_causal_accepts_causal_and_rejects_leaky_models():
    _ = torch.manual_seed(0)
    ids = torch.randint(0, 7, (2, 6))
    assert_causal(_Model(True).eval(), ids, 7)
    with pytest.raises(AssertionError, match="after position 0"):
        assert_causal(_Model(False).eval(), ids, 7)


def test_assert_causal_validates_arguments():
    model = _Model(True)
    with pytest.raises(TypeError, match="ids"):
        assert_causal(model, torch.zeros(1, 3), 7)
    with pytest.raises(ValueError, match="vocab_size"):
        assert_causal(model, torch.zeros(1, 3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="ids"):
        assert_causal(model, torch.full((1, 3), 9), 7)


def test_is_linear_needs_both_homogeneity_and_additivity():
    from companion.testing import is_linear

    torch.manual_seed(0)
    x, y = torch.randn(2, 4, 8).unbind(0)
    assert is_linear(nn.Linear(8, 8, bias=False), x, y)
    assert not is_linear(nn.Linear(8, 8), x, y)  # affine, not linear
    assert not is_linear(torch.relu, x, y)  # homogeneous for a > 0, not additive
    assert not is_linear(torch.relu, x.abs(), y.abs(), a=-2.0)  # additive there, not homogeneous
    assert is_linear(lambda z: 3 * z, x, y, a=-2.0)
    for bad, match in (({"a": 1.0}, "a:"), ({"a": 0}, "a:")):
        with pytest.raises(ValueError, match=match):
            is_linear(torch.relu, x, y, **bad)
    with pytest.raises(ValueError, match="y:"):
        is_linear(torch.relu, x, y[:2])
