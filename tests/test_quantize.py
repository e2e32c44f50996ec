"""companion.quantize against llama.cpp's own Q4_1 code (the `gguf` package) and PyTorch's int8
weight-only kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from companion.quantize import (
    Int8Linear,
    Q4_1Linear,
    dequantize_q4_1,
    quantize_linears_,
    quantize_q4_1,
    weight_bytes,
)

gguf = pytest.importorskip("gguf")


def _blocks(codes, d, m) -> np.ndarray:
    """Our (codes, d, m) as ggml's 20-byte blocks: d, m (float16), then 16 bytes of codes."""
    out_f, n_blocks = d.shape
    b = np.empty((out_f, n_blocks, 20), dtype=np.uint8)
    b[..., 0:2] = d.numpy().view(np.uint8).reshape(out_f, n_blocks, 2)
    b[..., 2:4] = m.numpy().view(np.uint8).reshape(out_f, n_blocks, 2)
    b[..., 4:] = codes.numpy().reshape(out_f, n_blocks, 16)
    return b.reshape(out_f, n_blocks * 20)


@pytest.mark.parametrize("shape", [(8, 64), (3, 32), (16, 576)])
def test_q4_1_bytes_equal_llama_cpp(shape):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 0.05
    w[0, :32] = 0.25  # a constant block: d = 0
    ours = _blocks(*quantize_q4_1(w))
    theirs = gguf.quants.quantize(w.numpy(), gguf.GGMLQuantizationType.Q4_1)
    assert np.array_equal(ours, theirs)
    expected = gguf.quants.dequantize(theirs, gguf.GGMLQuantizationType.Q4_1)
    assert np.array_equal(dequantize_q4_1(*quantize_q4_1(w)).numpy(), expected)


def test_q4_1_error_is_at_most_half_a_step():
    w = torch.randn(4, 128, generator=torch.Generator().manual_seed(1))
    codes, d, m = quantize_q4_1(w)
    err = (dequantize_q4_1(codes, d, m) - w).abs().reshape(4, 4, 32)
    # half a step, plus the float16 rounding of d and m
    assert bool((err <= d.float()[..., None] * 0.5 + 2e-3).all())


def test_q4_1_linear_from_gguf_blocks_round_trips_and_computes_the_dequantized_product():
    w = torch.randn(6, 64, generator=torch.Generator().manual_seed(2))
    raw = gguf.quants.quantize(w.numpy(), gguf.GGMLQuantizationType.Q4_1)
    layer = Q4_1Linear.from_gguf_blocks(raw, (6, 64))
    assert np.array_equal(_blocks(layer.codes, layer.d, layer.m), raw)
    x = torch.randn(2, 3, 64)
    expected = x @ torch.from_numpy(gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_1)).T
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)
    rows = torch.tensor([5, 4, 3, 2, 1, 0])
    layer.permute_rows(rows)
    torch.testing.assert_close(layer(x), expected[..., rows], rtol=0, atol=1e-5)


def test_int8_linear_equals_pytorchs_int8_weight_only_kernel():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48, bias=False)
    q = Int8Linear.from_linear(linear)
    x = torch.randn(5, 64)
    reference = torch._weight_int8pack_mm(x, q.weight, q.scale)
    torch.testing.assert_close(q(x), reference, rtol=1e-5, atol=1e-5)
    err = (q.dequantized() - linear.weight).abs()
    assert bool((err <= q.scale[:, None] / 2 + 1e-7).all())  # round-to-nearest: half a step per row


def test_int8_keeps_the_bias_and_zero_rows():
    linear = nn.Linear(8, 3)
    with torch.no_grad():
        linear.weight[1] = 0
    q = Int8Linear.from_linear(linear)
    x = torch.randn(4, 8)
    torch.testing.assert_close(q(x), linear(x), rtol=0, atol=0.05)
    assert float(q.scale[1]) == 1.0


def test_quantize_linears_swaps_in_place_and_counts_bytes():
    model = nn.Sequential(nn.Linear(64, 32, bias=False), nn.ReLU(), nn.Linear(32, 64, bias=False))
    before = weight_bytes(model)
    assert before == {"float": 2 * 64 * 32 * 4, "quantized": 0, "total": 2 * 64 * 32 * 4}
    quantize_linears_(model, "q4_1", skip=("2",))
    assert isinstance(model[0], Q4_1Linear) and isinstance(model[2], nn.Linear)
    after = weight_bytes(model)
    assert after["quantized"] == 32 * 64 // 32 * 20  # 20 bytes per block of 32
    with pytest.raises(ValueError, match="kind"):
        quantize_linears_(model, "q3")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize_q4_1(torch.randn(2, 40))
    with pytest.raises(TypeError, match="codes"):
        Q4_1Linear(torch.zeros(2, 16, dtype=torch.int32), torch.zeros(2, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="d: expected shape"):
        Q4_1Linear(torch.zeros(2, 16, dtype=torch.uint8), torch.zeros(2, 2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="no bias"):
        Q4_1Linear.from_linear(nn.Linear(32, 2))
