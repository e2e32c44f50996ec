"""Tests of companion.nn.masks: causal, padding and combined masks (bool, True = may attend)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from companion.nn import masks
from companion.nn.attention import MultiHeadAttention
from companion.nn.sdpa import scaled_dot_product_attention


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# causal
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [1, 2, 6, 17])
def test_causal_is_lower_triangle_including_diagonal(t):
    m = masks.causal(t)
    assert m.dtype == torch.bool and m.shape == (t, t)
    torch.testing.assert_close(m, torch.tril(torch.ones(t, t)).bool(), rtol=0, atol=0)
    assert bool(m.diagonal().all())  # a position attends to itself (M10.2)
    # row i sees exactly i + 1 keys: all positions <= i, not only the previous one
    assert m.sum(-1).tolist() == list(range(1, t + 1))


@pytest.mark.parametrize(("t_q", "t_k"), [(3, 7), (7, 3), (1, 4), (5, 5)])
def test_causal_matches_torch_sdpa_is_causal(t_q, t_k):
    m = masks.causal(t_q, t_k)
    torch.testing.assert_close(m, torch.ones(t_q, t_k, dtype=torch.bool).tril(), rtol=0, atol=0)
    g = _gen(1)
    q = torch.randn(2, 2, t_q, 4, generator=g, dtype=torch.float64)
    k = torch.randn(2, 2, t_k, 4, generator=g, dtype=torch.float64)
    v = torch.randn(2, 2, t_k, 3, generator=g, dtype=torch.float64)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(
        F.scaled_dot_product_attention(q, k, v, attn_mask=m), ref, rtol=1e-12, atol=1e-12
    )
    ours, _ = scaled_dot_product_attention(q, k, v, mask=m)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("t_q", "t_k"), [(1, 6), (3, 6), (6, 6)])
def test_causal_offset_aligns_queries_with_the_end_of_a_kv_cache(t_q, t_k):
    m = masks.causal(t_q, t_k, offset=t_k - t_q)
    full = masks.causal(t_k)
    torch.testing.assert_close(m, full[t_k - t_q :], rtol=0, atol=0)  # the last t_q rows of the full mask
    torch.testing.assert_close(m, torch.ones(t_q, t_k, dtype=torch.bool).tril(t_k - t_q), rtol=0, atol=0)
    assert bool(m[-1].all())  # the newest query sees every cached key
    # decoding the last t_q tokens against a full KV cache reproduces full causal attention
    g = _gen(2)
    q = torch.randn(1, 2, t_k, 4, generator=g, dtype=torch.float64)
    k = torch.randn(1, 2, t_k, 4, generator=g, dtype=torch.float64)
    v = torch.randn(1, 2, t_k, 5, generator=g, dtype=torch.float64)
    full_out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    step, _ = scaled_dot_product_attention(q[:, :, t_k - t_q :], k, v, mask=m)
    torch.testing.assert_close(step, full_out[:, :, t_k - t_q :], rtol=1e-10, atol=1e-10)
    if t_q < t_k:  # ... which the top-left aligned is_causal does not
        wrong, _ = scaled_dot_product_attention(q[:, :, t_k - t_q :], k, v, is_causal=True)
        assert not torch.allclose(wrong, full_out[:, :, t_k - t_q :])


def test_causal_other_offsets_and_device():
    torch.testing.assert_close(
        masks.causal(4, offset=1), torch.ones(4, 4, dtype=torch.bool).tril(1), rtol=0, atol=0
    )
    torch.testing.assert_close(
        masks.causal(4, offset=-1), torch.ones(4, 4, dtype=torch.bool).tril(-1), rtol=0, atol=0
    )
    assert masks.causal(3, device="cpu").device.type == "cpu"


@pytest.mark.parametrize(("args", "name"), [((0,), "t_q"), ((-2,), "t_q"), ((2.0,), "t_q"), ((3, 0), "t_k")])
def test_causal_rejects_bad_sizes(args, name):
    with pytest.raises(ValueError, match=name):
        masks.causal(*args)


# --------------------------------------------------------------------------------------------------
# padding
# --------------------------------------------------------------------------------------------------


def test_padding_shape_and_values():
    m = masks.padding([3, 0, 5, 1], 5)
    assert m.dtype == torch.bool and m.shape == (4, 1, 1, 5)
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],  # length 0: nothing to attend to
            [1, 1, 1, 1, 1],  # length L: no padding
            [1, 0, 0, 0, 0],
        ],
        dtype=torch.bool,
    )
    torch.testing.assert_close(m[:, 0, 0], expected, rtol=0, atol=0)
    assert m.sum().item() == 9


@pytest.mark.parametrize(
    "lengths",
    [[2, 4], (2, 4), torch.tensor([2, 4]), torch.tensor([2, 4], dtype=torch.int32), np.array([2, 4])],
)
def test_padding_accepts_sequences_tensors_and_arrays(lengths):
    m = masks.padding(lengths, 4)
    torch.testing.assert_close(m[:, 0, 0], torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool))


def test_padding_empty_batch():
    assert masks.padding([], 3).shape == (0, 1, 1, 3)


@pytest.mark.parametrize(
    ("lengths", "max_len", "exc", "name"),
    [
        ([2, -1], 4, ValueError, "lengths"),
        ([2, 5], 4, ValueError, "lengths"),
        ([2.0, 3.0], 4, TypeError, "lengths"),
        (torch.tensor([1.5]), 4, TypeError, "lengths"),
        (torch.tensor([True, False]), 4, TypeError, "lengths"),
        ([[1, 2], [3, 4]], 4, ValueError, "lengths"),
        (3, 4, ValueError, "lengths"),
        ([1, 2], 0, ValueError, "max_len"),
        ([1, 2], 4.0, ValueError, "max_len"),
    ],
)
def test_padding_rejects_invalid_lengths(lengths, max_len, exc, name):
    with pytest.raises(exc, match=name):
        masks.padding(lengths, max_len)


def test_padding_error_message_shows_the_offending_values():
    with pytest.raises(ValueError, match=r"\[0, max_len=4\].*\[2, 7\]"):
        masks.padding([2, 7], 4)


# --------------------------------------------------------------------------------------------------
# combine
# --------------------------------------------------------------------------------------------------


def test_combine_broadcasts_padding_and_causal():
    b, t = 3, 5
    pad = masks.padding([5, 3, 0], t)
    cau = masks.causal(t)
    m = masks.combine(pad, cau)
    assert m.shape == (b, 1, t, t) and m.dtype == torch.bool
    for bi, n in enumerate([5, 3, 0]):
        for i in range(t):
            for j in range(t):
                assert bool(m[bi, 0, i, j]) == (j <= i and j < n)
    # same result in either order and when combined with an all-True mask
    torch.testing.assert_close(masks.combine(cau, pad), m, rtol=0, atol=0)
    torch.testing.assert_close(masks.combine(pad, cau, torch.ones(1, 1, 1, 1, dtype=torch.bool)), m)


def test_combine_none_handling():
    cau = masks.causal(4)
    assert masks.combine() is None
    assert masks.combine(None) is None
    assert masks.combine(None, None) is None
    assert masks.combine(None, cau, None) is cau
    torch.testing.assert_close(masks.combine(cau, None), cau, rtol=0, atol=0)


def test_combine_three_masks_is_logical_and():
    g = _gen(3)
    a, b, c = (torch.rand(2, 1, 4, 4, generator=g) > 0.3 for _ in range(3))
    torch.testing.assert_close(masks.combine(a, b, c), a & b & c, rtol=0, atol=0)


@pytest.mark.parametrize(
    "bad", [torch.ones(4, 4), torch.ones(4, 4, dtype=torch.int64), torch.zeros(4, 4) - 1e9]
)
def test_combine_rejects_non_bool(bad):
    with pytest.raises(TypeError, match=r"masks\[1\].*bool"):
        masks.combine(masks.causal(4), bad)


def test_combine_rejects_non_broadcastable_shapes():
    with pytest.raises(RuntimeError):
        masks.combine(masks.padding([1, 2], 3), masks.causal(4))


# --------------------------------------------------------------------------------------------------
# masks in attention: padded keys have no effect
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_outputs_at_valid_positions_ignore_padded_values(causal):
    lengths, t = [6, 4, 1, 0], 6
    g = _gen(4)
    q = torch.randn(4, 2, t, 8, generator=g, dtype=torch.float64)
    k = torch.randn(4, 2, t, 8, generator=g, dtype=torch.float64)
    v = torch.randn(4, 2, t, 5, generator=g, dtype=torch.float64)
    mask = masks.combine(masks.padding(lengths, t), masks.causal(t) if causal else None)
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    k2, v2 = k.clone(), v.clone()
    for bi, n in enumerate(lengths):  # overwrite every padded key and value with large garbage
        k2[bi, :, n:] = 1e4 * torch.randn(2, t - n, 8, generator=g, dtype=torch.float64)
        v2[bi, :, n:] = 1e6 * torch.randn(2, t - n, 5, generator=g, dtype=torch.float64)
    out2, w2 = scaled_dot_product_attention(q, k2, v2, mask=mask)
    assert not torch.equal(k, k2)
    for bi, n in enumerate(lengths):
        torch.testing.assert_close(out2[bi, :, :n], out[bi, :, :n], rtol=0, atol=1e-12)
        torch.testing.assert_close(w2[bi], w[bi], rtol=0, atol=0)
        assert torch.all(w[bi, ..., n:] == 0)
    # valid rows also agree with torch, and an all-padding sequence gives zeros, not NaN
    ref = F.scaled_dot_product_attention(q, k2, v2, attn_mask=mask)
    torch.testing.assert_close(out2[0], ref[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out2[1, :, :4], ref[1, :, :4], rtol=1e-10, atol=1e-6)
    assert torch.isfinite(out2).all() and torch.all(out2[3] == 0)
    # without the mask the garbage leaks in: the test can tell the difference
    leak, _ = scaled_dot_product_attention(q, k2, v2)
    assert (leak[1, :, :4] - out[1, :, :4]).abs().max() > 1.0


def test_mha_key_mask_from_padding_ignores_padded_tokens():
    torch.manual_seed(5)
    mha = MultiHeadAttention(8, 2, dtype=torch.float64).eval()
    lengths, t = [5, 3], 5
    x = torch.randn(2, t, 8, generator=_gen(6), dtype=torch.float64)
    key_mask = masks.padding(lengths, t)[:, 0, 0, :]  # (B, T) for MultiHeadAttention
    out, _ = mha(x, key_mask=key_mask, is_causal=True)
    x2 = x.clone()
    x2[1, 3:] = 100 * torch.randn(2, 8, generator=_gen(7), dtype=torch.float64)
    out2, _ = mha(x2, key_mask=key_mask, is_causal=True)
    torch.testing.assert_close(out2[1, :3], out[1, :3], rtol=0, atol=1e-12)
    torch.testing.assert_close(out2[0], out[0], rtol=0, atol=0)
    # the 4-D padding mask as attn_mask is equivalent to key_mask
    out3, _ = mha(x, attn_mask=masks.combine(masks.padding(lengths, t), masks.causal(t)))
    torch.testing.assert_close(out3, out, rtol=1e-12, atol=1e-12)


def test_the_three_families_of_masks():
    from companion.nn.masks import bidirectional, prefix_lm

    assert torch.equal(prefix_lm(5, 0), masks.causal(5)) and torch.equal(prefix_lm(5, 5), bidirectional(5))
    m = prefix_lm(5, 2)
    assert m[0, 1] and not m[1, 2] and m[4, 0] and m[4, 4] and not m[2, 3]
    expected = torch.tensor(
        [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]],
        dtype=torch.bool,
    )
    assert torch.equal(m, expected)
    with pytest.raises(ValueError, match="prefix_len"):
        prefix_lm(3, 4)


def test_glm_blank_infilling_reproduces_the_papers_figure():
    """Du et al. (2022), Figure 2: x1…x6 with spans {x3} and {x5, x6}; Part A = x1 x2 [M] x4 [M],
    Part B = [S] x5 x6 [S] x3. Positions (1-based in the paper): 1 2 3 4 5 5 5 5 3 3 and
    0 0 0 0 0 1 2 3 1 2."""
    from companion.nn.masks import glm_blank_infilling, prefix_lm

    mask, pos1, pos2 = glm_blank_infilling(5, [(4, 2), (2, 1)])
    assert (pos1 + 1).tolist() == [1, 2, 3, 4, 5, 5, 5, 5, 3, 3]
    assert pos2.tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 1, 2]
    assert torch.equal(mask, prefix_lm(10, 5))
    assert not mask[:5, 5:].any()  # Part A never sees Part B
    with pytest.raises(ValueError, match=r"spans\[0\]"):
        glm_blank_infilling(3, [(3, 1)])


def test_glm_mask_and_positions_split_the_blank_infilling_builder():
    from companion.nn.masks import glm_blank_infilling, glm_mask, glm_positions, prefix_lm

    mask, pos1, pos2 = glm_blank_infilling(5, [(4, 2), (2, 1)])
    assert torch.equal(mask, glm_mask(5, 5)) and torch.equal(glm_mask(5, 5), prefix_lm(10, 5))
    p1, p2 = glm_positions(5, [(4, 2), (2, 1)])
    assert torch.equal(p1, pos1) and torch.equal(p2, pos2)
    assert bool(glm_mask(3, 0).all())  # no Part B: an encoder's mask
    assert [t.tolist() for t in glm_positions(2, [])] == [[0, 1], [0, 0]]
    with pytest.raises(ValueError, match="len_b"):
        glm_mask(3, -1)
    with pytest.raises(ValueError, match="len_a"):
        glm_mask(0, 2)
