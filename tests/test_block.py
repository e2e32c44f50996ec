"""Tests of companion.nn.block against references we did not write.

References: ``torch.nn.TransformerEncoderLayer(norm_first=False/True)`` with copied weights (Post-/
Pre-LN), explicit float64 formulas for Sandwich-LN and DeepNorm, Hugging Face ``GPT2Block`` (Pre-LN)
and ``BertLayer`` (Post-LN) for the placement tracer, the analytic 12d² parameter and
24nd² + 4n²d FLOP counts, and ``torch.autograd.gradcheck``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from companion.nn.attention import MultiHeadAttention
from companion.nn.block import (
    TransformerBlock,
    TransformerStack,
    deepnorm_init_,
    layer_cosine,
    norm_placement,
)
from companion.nn.norms import RMSNorm, deepnorm_constants

HYPO = settings(max_examples=20, deadline=None)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _encoder_layer(norm_first: bool, activation: str = "gelu", dtype=torch.float32, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(
        32, 4, 96, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first, dtype=dtype
    )
    with torch.no_grad():  # non-trivial norms, so that a swapped or missing norm is visible
        for norm in (layer.norm1, layer.norm2):
            norm.weight.normal_(1.0, 0.3)
            norm.bias.normal_(0.0, 0.3)
    return layer.eval()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_matches_torch_encoder_layer(norm_first, activation, dtype, tol):
    layer = _encoder_layer(norm_first, activation, dtype)
    x = _randn(3, 7, 32, dtype=dtype)
    key_mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4], dtype=torch.bool)
    for causal in (False, True):
        block = TransformerBlock.from_torch(layer, causal=causal).eval()
        assert block.norm_position == ("pre" if norm_first else "post")
        src_mask = ~torch.ones(7, 7, dtype=torch.bool).tril() if causal else None  # torch: True = blocked
        with (
            torch.enable_grad()
        ):  # torch's no-grad fast path uses a fused kernel; compare with its plain path
            want = layer(x, src_mask=src_mask, src_key_padding_mask=~key_mask)
        with torch.no_grad():
            got = block(x, key_mask=key_mask)
        real = key_mask[:, :, None].expand_as(got)  # torch's output at padded queries is not defined the same
        torch.testing.assert_close(got[real], want.detach()[real], atol=tol, rtol=0)


def test_pre_ln_block_matches_hand_written_reference():
    block = TransformerBlock(16, 2, norm_position="pre").double().eval()
    x = _randn(2, 6, 16)
    attn, mlp = block.attn, block.mlp

    def ln(t, norm):
        return F.layer_norm(t, (16,), norm.weight, norm.bias, 1e-5)

    with torch.no_grad():
        h = x + attn(ln(x, block.ln_1), is_causal=True)[0]
        want = h + mlp.fc_out(F.gelu(mlp.fc_in(ln(h, block.ln_2))))
        torch.testing.assert_close(block(x), want, atol=1e-12, rtol=0)


def test_sandwich_and_deepnorm_formulas():
    x = _randn(2, 5, 16)
    sand = TransformerBlock(16, 2, norm_position="sandwich").double().eval()
    deep = TransformerBlock(16, 2, norm_position="deepnorm", alpha=1.7).double().eval()
    with torch.no_grad():
        for m in (*sand.modules(), *deep.modules()):
            if hasattr(m, "weight") and type(m).__name__ == "LayerNorm":
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)
        att = lambda b, t: b.attn(t, is_causal=True)[0]  # noqa: E731
        h = x + sand.ln_1_post(att(sand, sand.ln_1(x)))
        torch.testing.assert_close(sand(x), h + sand.ln_2_post(sand.mlp(sand.ln_2(h))), atol=1e-12, rtol=0)
        h = deep.ln_1(1.7 * x + att(deep, x))
        torch.testing.assert_close(deep(x), deep.ln_2(1.7 * h + deep.mlp(h)), atol=1e-12, rtol=0)


def test_llama_style_block():
    """RMSNorm + SwiGLU + Pre-LN + no biases: x + attn(RMS(x)), then + SwiGLU(RMS(x))."""
    block = TransformerBlock(24, 4, norm="rmsnorm", ffn="swiglu", bias=False).double().eval()
    assert (
        isinstance(block.ln_1, RMSNorm) and block.mlp.w_gate.bias is None and block.attn.q_proj.bias is None
    )
    x = _randn(2, 5, 24)
    with torch.no_grad():
        h = x + block.attn(F.rms_norm(x, (24,), block.ln_1.weight, 1e-6), is_causal=True)[0]
        n = F.rms_norm(h, (24,), block.ln_2.weight, 1e-6)
        want = h + block.mlp.w_down(F.silu(block.mlp.w_gate(n)) * block.mlp.w_up(n))
        torch.testing.assert_close(block(x), want, atol=1e-12, rtol=0)


def test_causal_block_does_not_leak():
    block = TransformerBlock(16, 2).double().eval()
    x = _randn(1, 8, 16)
    with torch.no_grad():
        base = block(x)
        for t in range(7):
            y = x.clone()
            y[:, t + 1 :] = _randn(1, 7 - t, 16, seed=t + 1)
            torch.testing.assert_close(block(y)[:, : t + 1], base[:, : t + 1], atol=1e-12, rtol=0)
        bidirectional = TransformerBlock(16, 2, causal=False).double().eval()
        bidirectional.load_state_dict(block.state_dict())
        y = x.clone()
        y[:, -1] = _randn(1, 16, seed=99)  # (adding a constant would be undone by the LayerNorm)
        assert (bidirectional(y)[:, 0] - bidirectional(x)[:, 0]).abs().max() > 1e-6


def test_custom_attention_module_and_masks():
    calls = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = MultiHeadAttention(16, 4)

        def forward(self, x, **kwargs):
            calls.append(sorted(kwargs))
            return self.inner(x, **kwargs)

    block = TransformerBlock(16, 4, attention=Recorder())
    key_mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    out = block(torch.randn(1, 4, 16), key_mask=key_mask)
    assert out.shape == (1, 4, 16)
    assert calls == [["attn_mask", "is_causal", "key_mask"]]


@HYPO
@given(
    seed=st.integers(0, 2**31 - 1), perm=st.permutations(range(6)), position=st.sampled_from(["pre", "post"])
)
def test_bidirectional_block_is_permutation_equivariant(seed, perm, position):
    torch.manual_seed(seed % 10_000)
    block = TransformerBlock(8, 2, norm_position=position, causal=False).double().eval()
    x = _randn(2, 6, 8, seed=seed)
    with torch.no_grad():
        torch.testing.assert_close(block(x[:, list(perm)]), block(x)[:, list(perm)], atol=1e-12, rtol=0)


def test_parameter_and_flop_counts():
    d = 64
    block = TransformerBlock(d, 4, bias=False)
    n_params = sum(p.numel() for p in block.parameters())
    assert n_params == 12 * d * d + 2 * d  # 4d² attention + 8d² FFN, plus two LayerNorm gains
    n = 128
    assert block.flops(n) == 24 * n * d * d + 4 * n * n * d
    swiglu = TransformerBlock(96, 4, bias=False, ffn="swiglu", d_hidden=256)
    assert sum(p.numel() for p in swiglu.parameters()) == 12 * 96 * 96 + 2 * 96
    assert swiglu.flops(n) == 24 * n * 96 * 96 + 4 * n * n * 96


def test_stack_final_norm_and_hidden_states():
    for position, has_final in (("pre", True), ("sandwich", True), ("post", False), ("deepnorm", False)):
        stack = TransformerStack(3, 16, 2, norm_position=position)
        assert (stack.ln_f is not None) == has_final
        out, hidden = stack(torch.randn(2, 4, 16), return_hidden=True)
        assert out.shape == (2, 4, 16) and len(hidden) == 4
        if not has_final:
            assert torch.equal(out, hidden[-1])


def test_stack_applies_deepnorm_constants_and_init():
    n_layers, d, d_ff = 8, 128, 512
    stack = TransformerStack(
        n_layers, d, 4, norm_position="deepnorm", generator=torch.Generator().manual_seed(0)
    )
    alpha, beta = deepnorm_constants("decoder-only", n_layers)
    assert all(b.alpha == pytest.approx(alpha) for b in stack.blocks)
    block = stack.blocks[3]
    xavier, ffn_xavier = math.sqrt(2 / (2 * d)), math.sqrt(2 / (d + d_ff))
    for w, want in (
        (block.attn.q_proj.weight, xavier),
        (block.attn.k_proj.weight, xavier),
        (block.attn.v_proj.weight, beta * xavier),
        (block.attn.out_proj.weight, beta * xavier),
        (block.mlp.fc_in.weight, beta * ffn_xavier),
        (block.mlp.fc_out.weight, beta * ffn_xavier),
    ):
        assert abs(w.std().item() / want - 1) < 0.05
    encoder = TransformerStack(4, 16, 2, norm_position="deepnorm", causal=False)
    assert encoder.blocks[0].alpha == pytest.approx(deepnorm_constants("encoder-only", 4)[0])
    with pytest.raises(ValueError, match="beta"):
        deepnorm_init_(block, -1.0)


def test_norm_placement_on_references():
    from transformers import BertConfig, GPT2Config
    from transformers.models.bert.modeling_bert import BertLayer
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    gpt2 = GPT2Block(GPT2Config(n_embd=32, n_head=4, n_layer=2, attn_implementation="eager"))
    bert = BertLayer(
        BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, attn_implementation="eager")
    )
    assert norm_placement(gpt2) == "pre"  # GPT-2: ln_1 → attn → add; ln_2 → mlp → add
    assert norm_placement(bert) == "post"  # BERT keeps the original Post-LN
    assert norm_placement(_encoder_layer(False)) == "post"
    assert norm_placement(_encoder_layer(True)) == "pre"
    for position, want in (("pre", "pre"), ("post", "post"), ("sandwich", "sandwich"), ("deepnorm", "post")):
        for norm in ("layernorm", "rmsnorm"):
            assert norm_placement(TransformerBlock(16, 2, norm=norm, norm_position=position)) == want
    with pytest.raises(ValueError, match="no normalization"):
        norm_placement(nn.Sequential(nn.Linear(4, 4)))
    with pytest.raises(TypeError, match="block"):
        norm_placement("pre")


def test_layer_cosine():
    h = _randn(2, 5, 8)
    assert layer_cosine([h, h, -h]) == pytest.approx([1.0, -1.0])
    states = [_randn(2, 5, 8, seed=i) for i in range(4)]
    want = [F.cosine_similarity(a, b, dim=-1).mean().item() for a, b in itertools.pairwise(states)]
    assert layer_cosine(states) == pytest.approx(want, abs=1e-12)
    assert layer_cosine(torch.stack(states)) == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        layer_cosine([h])
    with pytest.raises(ValueError, match="differs"):
        layer_cosine([h, h[:, :3]])


def test_pre_ln_has_smaller_gradients_near_the_output_at_init():
    """Xiong et al. (2020): at initialization Post-LN's last-layer gradients exceed Pre-LN's."""
    grads = {}
    x, target = _randn(4, 8, 32, dtype=torch.float32), _randn(4, 8, 32, seed=1, dtype=torch.float32)
    for position in ("post", "pre"):
        torch.manual_seed(0)
        stack = TransformerStack(12, 32, 4, norm_position=position, causal=False)
        ((stack(x) - target) ** 2).mean().backward()
        grads[position] = stack.blocks[-1].mlp.fc_out.weight.grad.norm().item()
    assert grads["post"] > 1.15 * grads["pre"]


def test_block_gradcheck():
    torch.manual_seed(0)
    for position in ("pre", "post", "sandwich", "deepnorm"):
        block = TransformerBlock(8, 2, norm_position=position, alpha=1.5 if position == "deepnorm" else 1.0)
        block = block.double()
        x = _randn(1, 3, 8).requires_grad_()
        assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-7)


def test_clear_errors():
    with pytest.raises(ValueError, match="norm_position"):
        TransformerBlock(16, 2, norm_position="middle")
    with pytest.raises(ValueError, match="norm"):
        TransformerBlock(16, 2, norm="batchnorm")
    with pytest.raises(ValueError, match="ffn"):
        TransformerBlock(16, 2, ffn="kan")
    with pytest.raises(ValueError, match="alpha"):
        TransformerBlock(16, 2, alpha=2.0)
    with pytest.raises(ValueError, match="d_model=16"):
        TransformerBlock(16, 2)(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(16, 3)
    with pytest.raises(TypeError, match="TransformerEncoderLayer"):
        TransformerBlock.from_torch(nn.Linear(2, 2))


@pytest.mark.gpu
def test_block_bf16_autocast_on_gpu():
    torch.manual_seed(0)
    for kw in ({}, {"norm": "rmsnorm", "ffn": "swiglu", "bias": False}):
        block = TransformerBlock(128, 4, kernel="sdpa", **kw).cuda().eval()
        x = torch.randn(2, 64, 128, device="cuda")
        with torch.no_grad():
            ref = block(x)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                low = block(x)
        torch.testing.assert_close(low.float(), ref, atol=2e-2 * ref.abs().max().item(), rtol=2e-2)
