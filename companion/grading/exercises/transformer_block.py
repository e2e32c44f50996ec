"""Exercises of the Transformer-block chapter (``notebooks/transformer/transformer-block.ipynb``).

Checks compare the candidate with PyTorch (``LayerNorm``, ``RMSNorm``, ``F.gelu``, ``F.silu``,
``TransformerEncoderLayer``), with the DeepNet paper's formulas, or with a property the math
guarantees, on seeded random inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from companion.grading.checks import expect, expect_close, expect_raises, expect_tensor
from companion.grading.registry import Exercise, register
from companion.nn.activations import gelu_exact, gelu_tanh, swish
from companion.nn.attention import MultiHeadAttention
from companion.nn.block import (
    TransformerBlock,
    TransformerStack,
    deepnorm_init_,
    layer_cosine,
    norm_placement,
)
from companion.nn.ffn import FeedForward, GLUFeedForward, ffn, ffn_param_count
from companion.nn.moe import MoE
from companion.nn.norms import RMSNorm, deepnorm_constants, layer_norm, rms_norm

_PLACEMENTS = ("pre", "post", "sandwich", "deepnorm")


def _f64(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# transformer-block.layernorm-rmsnorm
# --------------------------------------------------------------------------------------------------

NORMS = register(
    Exercise(
        id="transformer-block.layernorm-rmsnorm",
        title="LayerNorm and RMSNorm from their formulas",
        names=("layer_norm", "rms_norm"),
        references=(layer_norm, rms_norm),
        signature='''def layer_norm(x, g, b, eps):
    """g ⊙ (x − μ) / sqrt(σ² + eps) + b over the LAST axis of x (..., C), where μ and the biased
    variance σ² are computed per row (per token). g, b: (C,). Returns the shape of x."""

def rms_norm(x, g, eps):
    """g ⊙ x / sqrt(mean(x²) + eps) over the last axis of x (..., C). g: (C,)."""''',
        hint="reduce over dim=-1 with keepdim=True; the variance is biased (divide by C); eps goes inside "
        "the square root.",
    )
)


def _torch_ln(x, g, b, eps):
    return F.layer_norm(x, (x.shape[-1],), g, b, eps)


def _torch_rms(x, g, eps):
    return F.rms_norm(x, (x.shape[-1],), g, eps)


@NORMS.check("layer_norm matches torch LayerNorm (float64 1e-12, float32 1e-6)")
def _ln_torch(layer_norm_fn, rms_norm_fn):
    x, g, b = 3 * _f64(4, 5, 32) + 1.5, _f64(32), _f64(32)
    expect_close(layer_norm_fn(x, g, b, 1e-5), _torch_ln(x, g, b, 1e-5), "float64 output", atol=1e-12)
    x32, g32, b32 = x.float(), g.float(), b.float()
    expect_close(
        layer_norm_fn(x32, g32, b32, 1e-5), _torch_ln(x32, g32, b32, 1e-5), "float32 output", atol=1e-6
    )


@NORMS.check("rms_norm matches torch RMSNorm (float64 1e-12, float32 1e-6)")
def _rms_torch(layer_norm_fn, rms_norm_fn):
    x, g = 2 * _f64(3, 7, 24) + 0.5, _f64(24)
    expect_close(rms_norm_fn(x, g, 1e-6), _torch_rms(x, g, 1e-6), "float64 output", atol=1e-12)
    expect_close(
        rms_norm_fn(x.float(), g.float(), 1e-6), _torch_rms(x.float(), g.float(), 1e-6), "float32", atol=1e-6
    )


@NORMS.check("eps is added inside the square root (small inputs, eps = 1e-2)")
def _norm_eps(layer_norm_fn, rms_norm_fn):
    x, g, b = 1e-2 * _f64(4, 16), _f64(16), _f64(16)
    expect_close(layer_norm_fn(x, g, b, 1e-2), _torch_ln(x, g, b, 1e-2), "layer_norm", atol=1e-12)
    expect_close(rms_norm_fn(x, g, 1e-2), _torch_rms(x, g, 1e-2), "rms_norm", atol=1e-12)


@NORMS.check("with b = 0: LN(x) = RMSNorm(x − mean(x)) (float64 1e-12)")
def _ln_is_centred_rms(layer_norm_fn, rms_norm_fn):
    x, g = _f64(5, 12) + 2.0, _f64(12)
    centred = x - x.mean(-1, keepdim=True)
    expect_close(
        layer_norm_fn(x, g, torch.zeros(12, dtype=torch.float64), 1e-6),
        rms_norm_fn(centred, g, 1e-6),
        "layer_norm(x) vs rms_norm(x − mean)",
        atol=1e-12,
    )


@NORMS.check("RMSNorm is scale-invariant but not shift-invariant; LayerNorm is both")
def _norm_invariances(layer_norm_fn, rms_norm_fn):
    x, g, b = _f64(6, 16), torch.ones(16, dtype=torch.float64), torch.zeros(16, dtype=torch.float64)
    expect_close(
        rms_norm_fn(7.5 * x, g, 1e-12), rms_norm_fn(x, g, 1e-12), "rms_norm(7.5·x) vs rms_norm(x)", atol=1e-9
    )
    shift = (rms_norm_fn(x + 3.0, g, 1e-12) - rms_norm_fn(x, g, 1e-12)).abs().max().item()
    expect(shift > 0.1, f"rms_norm(x + 3) should differ from rms_norm(x), max difference only {shift:.3g}")
    expect_close(
        layer_norm_fn(x + 3.0, g, b, 1e-12), layer_norm_fn(x, g, b, 1e-12), "layer_norm(x + 3)", atol=1e-9
    )
    expect_close(
        layer_norm_fn(7.5 * x, g, b, 1e-12), layer_norm_fn(x, g, b, 1e-12), "layer_norm(7.5·x)", atol=1e-9
    )


@NORMS.check("an all-zero input gives b (LN) and 0 (RMSNorm), not NaN")
def _norm_zero(layer_norm_fn, rms_norm_fn):
    x, g, b = torch.zeros(2, 8), torch.randn(8), torch.randn(8)
    expect_close(layer_norm_fn(x, g, b, 1e-5), b.expand(2, 8), "layer_norm(0)", atol=1e-7)
    expect_close(rms_norm_fn(x, g, 1e-6), torch.zeros(2, 8), "rms_norm(0)", atol=1e-7)


# --------------------------------------------------------------------------------------------------
# transformer-block.gelu
# --------------------------------------------------------------------------------------------------

GELU = register(
    Exercise(
        id="transformer-block.gelu",
        title="GELU: the exact form and its tanh approximation",
        names=("gelu_exact", "gelu_tanh"),
        references=(gelu_exact, gelu_tanh),
        signature='''def gelu_exact(x):
    """x·Φ(x) = ½x(1 + erf(x/√2)), element-wise."""

def gelu_tanh(x):
    """½x(1 + tanh(√(2/π)(x + 0.044715x³))), element-wise (the approximation BERT and GPT-2 use)."""''',
        hint="torch.erf and torch.tanh are differentiable; Φ(x) = ½(1 + erf(x/√2)).",
    )
)


def _gelu_inputs(dtype):
    return torch.cat([torch.linspace(-8, 8, 1601, dtype=dtype), 3 * torch.randn(200, dtype=dtype)])


@GELU.check("gelu_exact matches F.gelu (float64 1e-12, float32 1e-6)")
def _gelu_exact(gelu_exact_fn, gelu_tanh_fn):
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        x = _gelu_inputs(dtype)
        expect_close(gelu_exact_fn(x), F.gelu(x), f"gelu_exact, {dtype}", atol=tol)


@GELU.check("gelu_tanh matches F.gelu(approximate='tanh') (float64 1e-12, float32 1e-6)")
def _gelu_tanh(gelu_exact_fn, gelu_tanh_fn):
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        x = _gelu_inputs(dtype)
        expect_close(gelu_tanh_fn(x), F.gelu(x, approximate="tanh"), f"gelu_tanh, {dtype}", atol=tol)


@GELU.check("the two differ: max |exact − tanh| on [−8, 8] lies in (1e-4, 5e-4)")
def _gelu_gap(gelu_exact_fn, gelu_tanh_fn):
    x = torch.linspace(-8, 8, 16001, dtype=torch.float64)
    gap = (gelu_exact_fn(x) - gelu_tanh_fn(x)).abs().max().item()
    expect(1e-4 < gap < 5e-4, f"expected a maximum difference of about 4.7e-4, got {gap:.3g}")


@GELU.check("finite limits for large |x|: GELU(x) → x and GELU(−x) → 0")
def _gelu_large(gelu_exact_fn, gelu_tanh_fn):
    x = torch.tensor([-1e4, -60.0, 60.0, 1e4])
    want = torch.tensor([0.0, 0.0, 60.0, 1e4])
    for name, fn in (("gelu_exact", gelu_exact_fn), ("gelu_tanh", gelu_tanh_fn)):
        expect_close(fn(x), want, name, atol=1e-3)


@GELU.check("differentiable: gradients match autograd of F.gelu (float64 1e-10)")
def _gelu_grad(gelu_exact_fn, gelu_tanh_fn):
    for name, fn, approx in (("gelu_exact", gelu_exact_fn, "none"), ("gelu_tanh", gelu_tanh_fn, "tanh")):
        x = (3 * _f64(50)).requires_grad_()
        out = fn(x)
        expect(isinstance(out, torch.Tensor) and out.requires_grad, f"{name}: output is not differentiable")
        (got,) = torch.autograd.grad(out.sum(), x)
        (want,) = torch.autograd.grad(F.gelu(x, approximate=approx).sum(), x)
        expect_close(got, want, f"{name} gradient", atol=1e-10)


# --------------------------------------------------------------------------------------------------
# transformer-block.swish
# --------------------------------------------------------------------------------------------------

SWISH = register(
    Exercise(
        id="transformer-block.swish",
        title="Swish and its β",
        names=("swish",),
        references=(swish,),
        signature='''def swish(x, beta=1.0):
    """Swish_β(x) = x·σ(βx), element-wise. beta = 1 is SiLU; beta = 0 gives x/2."""''',
        hint="use torch.sigmoid (stable), not 1/(1 + exp(−βx)), whose gradient overflows to NaN.",
    )
)


@SWISH.check("β = 1 (and the default) equals F.silu (float64 1e-12)")
def _swish_silu(swish_fn):
    x = 4 * _f64(100)
    expect_close(swish_fn(x, 1.0), F.silu(x), "swish(x, 1)", atol=1e-12)
    expect_close(swish_fn(x), F.silu(x), "swish(x) with the default beta", atol=1e-12)


@SWISH.check("β = 0 gives x/2; β = 0.5 gives x·σ(x/2)")
def _swish_beta(swish_fn):
    x = 4 * _f64(100)
    expect_close(swish_fn(x, 0.0), x / 2, "swish(x, 0)", atol=1e-12)
    expect_close(swish_fn(x, 0.5), x * torch.sigmoid(0.5 * x), "swish(x, 0.5)", atol=1e-12)


@SWISH.check("β = 100 is within 1e-2 of ReLU outside [−0.1, 0.1]")
def _swish_relu(swish_fn):
    x = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    x = x[x.abs() > 0.1]
    expect_close(swish_fn(x, 100.0), torch.relu(x), "swish(x, 100) vs relu", atol=1e-2)


@SWISH.check("gradients are finite for |x| = 1e4 (float32, β = 1 and 10)")
def _swish_grad(swish_fn):
    for beta in (1.0, 10.0):
        x = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], requires_grad=True)
        (grad,) = torch.autograd.grad(swish_fn(x, beta).sum(), x)
        expect(bool(torch.isfinite(grad).all()), f"beta={beta}: non-finite gradient {grad.tolist()}")
        want = torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0])
        expect_close(grad, want, f"beta={beta}: gradient", atol=1e-4)


# --------------------------------------------------------------------------------------------------
# transformer-block.ffn
# --------------------------------------------------------------------------------------------------


def _ffn_params(d, d_ff):
    return ffn_param_count(d, d_ff, gated=False, bias=True)


FFN = register(
    Exercise(
        id="transformer-block.ffn",
        title="The position-wise feed-forward network",
        names=("ffn", "ffn_params"),
        references=(ffn, _ffn_params),
        signature='''def ffn(x, W1, b1, W2, b2, act):
    """act(x W1 + b1) W2 + b2 for x (..., d), W1 (d, d_ff), b1 (d_ff,), W2 (d_ff, d), b2 (d,).
    act is a callable applied element-wise (e.g. torch.nn.functional.gelu). Returns (..., d)."""

def ffn_params(d, d_ff):
    """Number of parameters of this FFN (weights and biases)."""''',
        hint="row vectors: x @ W1 (not W1ᵀ); torch.nn.Linear stores the transpose in .weight.",
    )
)


def _sequential_ffn(d, d_ff, act_module):
    return nn.Sequential(nn.Linear(d, d_ff), act_module, nn.Linear(d_ff, d)).double()


@FFN.check("matches torch Sequential(Linear, act, Linear) with copied weights (float64 1e-12)")
def _ffn_torch(ffn_fn, ffn_params_fn):
    # d_ff = d first: there a transposed weight is a wrong value rather than a shape error.
    cases = [(8, 8, F.gelu, nn.GELU()), (8, 20, F.gelu, nn.GELU())]
    cases += [(8, 20, F.relu, nn.ReLU()), (8, 20, torch.tanh, nn.Tanh())]
    for d, d_ff, act_fn, act_module in cases:
        seq = _sequential_ffn(d, d_ff, act_module)
        x = _f64(3, 5, d)
        W1, b1, W2, b2 = seq[0].weight.T, seq[0].bias, seq[2].weight.T, seq[2].bias
        with torch.no_grad():
            got = ffn_fn(x, W1, b1, W2, b2, act_fn)
            expect_close(got, seq(x), f"ffn with {act_module}, d = {d}, d_ff = {d_ff}", atol=1e-12)


@FFN.check("position-wise: applying it token by token equals the batched call")
def _ffn_positionwise(ffn_fn, ffn_params_fn):
    W1, b1, W2, b2 = _f64(6, 16), _f64(16), _f64(16, 6), _f64(6)
    x = _f64(2, 7, 6)
    batched = ffn_fn(x, W1, b1, W2, b2, F.gelu)
    expect_tensor(batched, "ffn output", shape=(2, 7, 6))
    per_token = torch.stack(
        [torch.stack([ffn_fn(x[b, t], W1, b1, W2, b2, F.gelu) for t in range(7)]) for b in range(2)]
    )
    expect_close(batched, per_token, "batched vs per-token", atol=1e-12)


@FFN.check("the biases enter: ffn(0) = act(b1) W2 + b2")
def _ffn_bias(ffn_fn, ffn_params_fn):
    W1, b1, W2, b2 = _f64(4, 10), _f64(10), _f64(10, 4), _f64(4)
    got = ffn_fn(torch.zeros(3, 4, dtype=torch.float64), W1, b1, W2, b2, F.relu)
    expect_close(got, (F.relu(b1) @ W2 + b2).expand(3, 4), "ffn of a zero input", atol=1e-12)


@FFN.check("ffn_params(d, d_ff) = 2·d·d_ff + d_ff + d, the count of the torch module")
def _ffn_count(ffn_fn, ffn_params_fn):
    seq = _sequential_ffn(8, 20, nn.GELU())
    got, want = ffn_params_fn(8, 20), sum(p.numel() for p in seq.parameters())
    expect(got == want, f"ffn_params(8, 20): the torch module has {want} parameters, got {got}")
    for d, d_ff in ((768, 3072), (4096, 16384)):
        formula = 2 * d * d_ff + d_ff + d
        got = ffn_params_fn(d, d_ff)
        expect(got == formula, f"ffn_params({d}, {d_ff}): expected {formula:,}, got {got}")


# --------------------------------------------------------------------------------------------------
# transformer-block.gated-ffn
# --------------------------------------------------------------------------------------------------


class _ReferenceGatedFFN(GLUFeedForward):
    """``GatedFFN(d, d_ff, act)``: the companion's :class:`GLUFeedForward` with the exercise's signature."""

    def __init__(self, d, d_ff, act="silu"):
        super().__init__(d, d_ff, act, bias=False)


GATED = register(
    Exercise(
        id="transformer-block.gated-ffn",
        title="Gated FFNs: GLU, ReGLU, GeGLU, SwiGLU",
        names=("GatedFFN",),
        references=(_ReferenceGatedFFN,),
        signature='''class GatedFFN(torch.nn.Module):
    """GatedFFN(d, d_ff, act="silu"): (act(xW) ⊙ xV) W₂ with three bias-free nn.Linear layers
    w_gate = nn.Linear(d, d_ff) (W), w_up = nn.Linear(d, d_ff) (V), w_down = nn.Linear(d_ff, d) (W₂).
    act is "sigmoid" (GLU), "relu" (ReGLU), "gelu" (GeGLU, exact) or "silu" (SwiGLU); anything
    else raises ValueError. forward(x (..., d)) -> (..., d).
    """''',
        hint="gate the projection xV, never the raw input x: w_down(act(w_gate(x)) * w_up(x)).",
    )
)

_GATE_ACTS = {"sigmoid": torch.sigmoid, "relu": F.relu, "gelu": F.gelu, "silu": F.silu}


@GATED.check("3·d·d_ff parameters; d_ff = 8d/3 matches a 4d two-matrix FFN exactly")
def _gated_count(cls):
    module = cls(48, 128)
    got = sum(p.numel() for p in module.parameters())
    expect(got == 3 * 48 * 128, f"expected 3·48·128 = {3 * 48 * 128} parameters, got {got}")
    dense = 2 * 48 * (4 * 48)
    expect(got == dense, f"with d_ff = 8·48/3 = 128 the count should equal 2·48·192 = {dense}, got {got}")


@GATED.check("equals (act(xW) ⊙ xV)W₂ for each activation (float64 1e-12)")
def _gated_formula(cls):
    for name, act in _GATE_ACTS.items():
        module = cls(12, 20, name).double()
        x = _f64(2, 5, 12)
        W, V, W2 = module.w_gate.weight.T, module.w_up.weight.T, module.w_down.weight.T
        with torch.no_grad():
            expect_close(module(x), (act(x @ W) * (x @ V)) @ W2, f"act={name!r}", atol=1e-12)


@GATED.check("'silu' (the default) matches a Llama-layout SwiGLU MLP with copied weights")
def _gated_llama(cls):
    ours = cls(16, 40).double()
    ref = GLUFeedForward(16, 40, "silu").double()
    with torch.no_grad():
        ref.w_gate.weight.copy_(ours.w_gate.weight)
        ref.w_up.weight.copy_(ours.w_up.weight)
        ref.w_down.weight.copy_(ours.w_down.weight)
        x = _f64(3, 4, 16)
        expect_close(ours(x), ref(x), "SwiGLU output", atol=1e-12)


@GATED.check("an unknown activation raises ValueError")
def _gated_unknown(cls):
    expect_raises(ValueError, lambda: cls(8, 16, "tanh-ish"), "GatedFFN(8, 16, 'tanh-ish')")


# --------------------------------------------------------------------------------------------------
# transformer-block.norm-variants
# --------------------------------------------------------------------------------------------------


class _ReferenceBlock(TransformerBlock):
    """``Block(d, h, placement, alpha=1.0)``: the companion block, bidirectional, 4d GELU MLP."""

    def __init__(self, d, h, placement, alpha=1.0):
        super().__init__(d, h, norm_position=placement, alpha=alpha, causal=False)

    def forward(self, x):
        return super().forward(x)


VARIANTS = register(
    Exercise(
        id="transformer-block.norm-variants",
        title="Post-LN, Pre-LN, Sandwich-LN and DeepNorm blocks",
        names=("Block",),
        references=(_ReferenceBlock,),
        signature='''class Block(torch.nn.Module):
    """Block(d, h, placement, alpha=1.0), placement in "pre", "post", "sandwich", "deepnorm";
    any other placement raises ValueError. Submodules:
        attn = companion.nn.MultiHeadAttention(d, h)   # returns (output, weights); no mask here
        mlp  = companion.nn.ffn.FeedForward(d)         # 4d GELU MLP
        ln_1, ln_2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        ln_1_post, ln_2_post = two more LayerNorms, for "sandwich" only
    forward(x (B, T, d)) -> (B, T, d), with F = attn, then F = mlp:
        pre:      x = x + F(ln(x))              post:     x = ln(x + F(x))
        sandwich: x = x + ln_post(F(ln(x)))     deepnorm: x = ln(alpha·x + F(x))
    """''',
        hint="one residual step per sublayer; DeepNorm up-weights the residual x by alpha, not F(x).",
    )
)


def _copy_from_encoder_layer(block: nn.Module, layer: nn.TransformerEncoderLayer) -> None:
    d = layer.self_attn.embed_dim
    w, b = layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias
    with torch.no_grad():
        for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
            getattr(block.attn, name).weight.copy_(w[i * d : (i + 1) * d])
            getattr(block.attn, name).bias.copy_(b[i * d : (i + 1) * d])
        block.attn.out_proj.load_state_dict(layer.self_attn.out_proj.state_dict())
        block.mlp.fc_in.load_state_dict(layer.linear1.state_dict())
        block.mlp.fc_out.load_state_dict(layer.linear2.state_dict())
        block.ln_1.load_state_dict(layer.norm1.state_dict())
        block.ln_2.load_state_dict(layer.norm2.state_dict())


def _randomize_norms(block: nn.Module) -> None:
    with torch.no_grad():
        for m in block.modules():
            # A norm layer: torch's or one of the learner's own, by name (never the block itself, whose
            # class name may end in "Norm" too).
            is_norm = isinstance(m, nn.LayerNorm) or type(m).__name__.endswith("Norm")
            if m is not block and is_norm and isinstance(getattr(m, "weight", None), torch.Tensor):
                m.weight.copy_(1 + 0.5 * torch.randn_like(m.weight))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(0.5 * torch.randn_like(m.bias))


def _vs_encoder_layer(cls, placement: str, norm_first: bool) -> None:
    layer = nn.TransformerEncoderLayer(32, 4, 128, dropout=0.0, activation="gelu", batch_first=True)
    layer.norm_first = norm_first
    _randomize_norms(layer)
    block = cls(32, 4, placement)
    _copy_from_encoder_layer(block, layer)
    block.eval()
    x = torch.randn(3, 7, 32)
    with torch.enable_grad():  # torch's fast path (no grad) uses a fused kernel; compare with the plain one
        expected = layer(x)
    with torch.no_grad():
        expect_close(block(x), expected.detach(), f"{placement} block vs TransformerEncoderLayer", atol=1e-5)


@VARIANTS.check("'post' matches TransformerEncoderLayer(norm_first=False) with copied weights (1e-5)")
def _variants_post(cls):
    _vs_encoder_layer(cls, "post", False)


@VARIANTS.check("'pre' matches TransformerEncoderLayer(norm_first=True) with copied weights (1e-5)")
def _variants_pre(cls):
    _vs_encoder_layer(cls, "pre", True)


def _sublayers(block):
    return (lambda h: block.attn(h)[0]), block.mlp


@VARIANTS.check("'sandwich' computes x + LN_post(F(LN(x))) (float64 1e-10)")
def _variants_sandwich(cls):
    block = cls(16, 2, "sandwich").double().eval()
    _randomize_norms(block)
    x = _f64(2, 5, 16)
    attn, mlp = _sublayers(block)
    with torch.no_grad():
        h = x + block.ln_1_post(attn(block.ln_1(x)))
        want = h + block.ln_2_post(mlp(block.ln_2(h)))
        expect_close(block(x), want, "sandwich output", atol=1e-10)


@VARIANTS.check("'deepnorm' computes LN(α·x + F(x)) (α = 2.5, float64 1e-10)")
def _variants_deepnorm(cls):
    block = cls(16, 2, "deepnorm", alpha=2.5).double().eval()
    _randomize_norms(block)
    x = _f64(2, 5, 16)
    attn, mlp = _sublayers(block)
    with torch.no_grad():
        h = block.ln_1(2.5 * x + attn(x))
        want = block.ln_2(2.5 * h + mlp(h))
        expect_close(block(x), want, "deepnorm output", atol=1e-10)


@VARIANTS.check("an unknown placement raises ValueError")
def _variants_unknown(cls):
    expect_raises(ValueError, lambda: cls(16, 2, "middle"), "Block(16, 2, 'middle')")


def _last_layer_grad(cls, placement: str, n_layers: int = 12, d: int = 32) -> float:
    torch.manual_seed(0)
    blocks = nn.Sequential(*(cls(d, 4, placement) for _ in range(n_layers)))
    final = nn.LayerNorm(d) if placement == "pre" else nn.Identity()
    x, target = torch.randn(4, 8, d), torch.randn(4, 8, d)
    loss = ((final(blocks(x)) - target) ** 2).mean()
    loss.backward()
    return blocks[-1].mlp.fc_out.weight.grad.norm().item()


@VARIANTS.check("at initialization Post-LN's last-layer gradient is larger than Pre-LN's (12 layers)")
def _variants_gradients(cls):
    post, pre = _last_layer_grad(cls, "post"), _last_layer_grad(cls, "pre")
    expect(post > 1.15 * pre, f"expected Post-LN > 1.15 × Pre-LN, got {post:.3g} (post) vs {pre:.3g} (pre)")


def _output_change(cls, placement: str, n_layers: int = 12, d: int = 32, lr: float = 1e-3) -> float:
    """Relative change of the stack's output after one Adam step at ``lr`` (no warm-up)."""
    torch.manual_seed(0)
    blocks = nn.Sequential(*(cls(d, 4, placement) for _ in range(n_layers)))
    final = nn.LayerNorm(d) if placement == "pre" else nn.Identity()
    model = nn.Sequential(blocks, final)
    x, target = torch.randn(4, 8, d), torch.randn(4, 8, d)
    with torch.no_grad():
        before = model(x)
    ((model(x) - target) ** 2).mean().backward()
    with torch.no_grad():
        for p in model.parameters():  # Adam's first step is lr·g/(|g| + eps): bias corrections cancel
            if p.grad is not None:
                p -= lr * p.grad / (p.grad.abs() + 1e-8)
        return ((model(x) - before).norm() / before.norm()).item()


@VARIANTS.check("one Adam step (lr 1e-3, no warm-up) moves Post-LN's output more than Pre-LN's (12 layers)")
def _variants_update(cls):
    post, pre = _output_change(cls, "post"), _output_change(cls, "pre")
    expect(
        post > 1.15 * pre, f"expected ‖ΔF‖ Post-LN > 1.15 × Pre-LN, got {post:.3g} (post) vs {pre:.3g} (pre)"
    )


# --------------------------------------------------------------------------------------------------
# transformer-block.deepnorm
# --------------------------------------------------------------------------------------------------

DEEPNORM = register(
    Exercise(
        id="transformer-block.deepnorm",
        title="DeepNorm's constants and initialization",
        names=("deepnorm_constants", "deepnorm_init"),
        references=(deepnorm_constants, deepnorm_init_),
        signature='''def deepnorm_constants(arch, N, M=None):
    """(alpha, beta) of DeepNet (Wang et al., 2022). arch is "encoder-only" or "decoder-only"
    (N layers; M must be None), or "encoder" / "decoder": the two stacks of an encoder–decoder
    model with N encoder and M decoder layers (M required). Raise ValueError otherwise."""

def deepnorm_init(block, beta):
    """In place, on a companion TransformerBlock: Xavier-normal init with gain beta for the FFN
    weights (block.mlp.fc_in, block.mlp.fc_out) and for W_V, W_O (block.attn.v_proj, out_proj);
    gain 1 for W_Q, W_K (block.attn.q_proj, k_proj). Leave biases and norms alone."""''',
        hint="Xavier-normal std = gain·sqrt(2/(fan_in + fan_out)); nn.init.xavier_normal_ takes a gain.",
    )
)


@DEEPNORM.check("encoder-only and decoder-only: α = (2N)^¼, β = (8N)^−¼")
def _deepnorm_single(constants, init):
    for arch in ("encoder-only", "decoder-only"):
        for n in (6, 12, 100, 1000):
            alpha, beta = constants(arch, n)
            expect(math.isclose(alpha, (2 * n) ** 0.25, rel_tol=1e-12), f"{arch}, N={n}: α = {alpha}")
            expect(math.isclose(beta, (8 * n) ** -0.25, rel_tol=1e-12), f"{arch}, N={n}: β = {beta}")


@DEEPNORM.check("encoder–decoder: the paper's encoder and decoder formulas")
def _deepnorm_encdec(constants, init):
    for n, m in ((6, 6), (18, 6), (100, 50)):
        a, b = constants("encoder", n, m)
        expect(
            math.isclose(a, 0.81 * (n**4 * m) ** (1 / 16), rel_tol=1e-12), f"encoder N={n}, M={m}: α = {a}"
        )
        expect(
            math.isclose(b, 0.87 * (n**4 * m) ** (-1 / 16), rel_tol=1e-12), f"encoder N={n}, M={m}: β = {b}"
        )
        a, b = constants("decoder", n, m)
        expect(math.isclose(a, (3 * m) ** 0.25, rel_tol=1e-12), f"decoder N={n}, M={m}: α = {a}")
        expect(math.isclose(b, (12 * m) ** -0.25, rel_tol=1e-12), f"decoder N={n}, M={m}: β = {b}")


@DEEPNORM.check("M is required for the encoder–decoder stacks; unknown arch raises ValueError")
def _deepnorm_errors(constants, init):
    expect_raises(ValueError, lambda: constants("decoder", 12), "deepnorm_constants('decoder', 12)")
    expect_raises(ValueError, lambda: constants("encoder", 12), "deepnorm_constants('encoder', 12)")
    expect_raises(ValueError, lambda: constants("gpt", 12), "deepnorm_constants('gpt', 12)")


def _std_ok(weight: torch.Tensor, want: float, what: str) -> None:
    std = weight.detach().std().item()
    expect(abs(std / want - 1) < 0.05, f"{what}: expected std ≈ {want:.4g}, got {std:.4g}")


@DEEPNORM.check("init: gain β on FFN, W_V, W_O; gain 1 on W_Q, W_K; biases and norms untouched")
def _deepnorm_init(constants, init):
    d, d_ff, beta = 128, 512, 0.25
    block = TransformerBlock(d, 4, d_hidden=d_ff, norm_position="deepnorm", alpha=2.0)
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.normal_()
    before = {k: v.clone() for k, v in block.state_dict().items() if not k.endswith("weight")}
    norms_before = {k: v.clone() for k, v in block.state_dict().items() if k.startswith("ln_")}
    init(block, beta)
    xavier = math.sqrt(2 / (2 * d))
    ffn_xavier = math.sqrt(2 / (d + d_ff))
    _std_ok(block.attn.q_proj.weight, xavier, "W_Q")
    _std_ok(block.attn.k_proj.weight, xavier, "W_K")
    _std_ok(block.attn.v_proj.weight, beta * xavier, "W_V")
    _std_ok(block.attn.out_proj.weight, beta * xavier, "W_O")
    _std_ok(block.mlp.fc_in.weight, beta * ffn_xavier, "FFN fc_in")
    _std_ok(block.mlp.fc_out.weight, beta * ffn_xavier, "FFN fc_out")
    after = block.state_dict()
    for k, v in {**before, **norms_before}.items():
        expect(torch.equal(after[k], v), f"{k} changed; only the weights named above may change")


# --------------------------------------------------------------------------------------------------
# transformer-block.norm-trace
# --------------------------------------------------------------------------------------------------

TRACE = register(
    Exercise(
        id="transformer-block.norm-trace",
        title="Find a block's norm placement by tracing it",
        names=("norm_placement",),
        references=(norm_placement,),
        signature='''def norm_placement(block):
    """Return "pre", "post" or "sandwich" for a block called as block(x), x (B, T, d),
    by tracing one forward pass (not by reading attribute names):
      "post"     - the block's output is the output of a norm layer;
      "sandwich" - a norm is applied directly to a sublayer's (attention's / FFN's) output;
      "pre"      - a norm is applied to the block's input x.
    Norm layers are torch.nn.LayerNorm / RMSNorm or companion LayerNorm / RMSNorm."""''',
        hint="register forward hooks on every submodule; keep the tensors they see and compare with `is`.",
    )
)


class _PostNormsFirst(nn.Module):
    """A Post-LN block that registers its norms *before* its sublayers (registration order misleads)."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.norm_a, self.norm_b = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = MultiHeadAttention(d, 2)
        self.ffn = FeedForward(d)

    def forward(self, x):
        x = self.norm_a(x + self.attention(x)[0])
        return self.norm_b(x + self.ffn(x))


class _PreNormsLast(nn.Module):
    """A Pre-LN block whose norms are registered last and whose FFN has no norm-related name."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(d, 2)
        self.ffn = FeedForward(d)
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)

    def forward(self, x):
        x = x + self.attention(self.n1(x))[0]
        return x + self.ffn(self.n2(x))


def _trace(fn, block) -> str:
    got = fn(block)
    expect(got in ("pre", "post", "sandwich"), f"expected 'pre', 'post' or 'sandwich', got {got!r}")
    return got


@TRACE.check("torch TransformerEncoderLayer: norm_first=False is 'post', True is 'pre'")
def _trace_torch(fn):
    for norm_first, want in ((False, "post"), (True, "pre")):
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
        got = _trace(fn, layer)
        expect(
            got == want, f"TransformerEncoderLayer(norm_first={norm_first}): expected {want!r}, got {got!r}"
        )


@TRACE.check("companion blocks: pre (GPT-2 style, with a final LN in its stack), post, sandwich, deepnorm")
def _trace_companion(fn):
    stack = TransformerStack(2, 16, 2, norm_position="pre", activation="gelu_tanh")
    expect(stack.ln_f is not None, "the Pre-LN stack should have a final norm ln_f")
    cases = {"pre": "pre", "post": "post", "sandwich": "sandwich", "deepnorm": "post"}
    for position, want in cases.items():
        block = stack.blocks[0] if position == "pre" else TransformerBlock(16, 2, norm_position=position)
        got = _trace(fn, block)
        expect(got == want, f"TransformerBlock(norm_position={position!r}): expected {want!r}, got {got!r}")


@TRACE.check("follows the data, not the registration order or names (custom blocks)")
def _trace_custom(fn):
    got = _trace(fn, _PostNormsFirst())
    expect(got == "post", f"a Post-LN block that registers its norms first: expected 'post', got {got!r}")
    got = _trace(fn, _PreNormsLast())
    expect(got == "pre", f"a Pre-RMSNorm block that registers its norms last: expected 'pre', got {got!r}")


@TRACE.check("a sandwich block built from RMSNorm is recognized")
def _trace_rms_sandwich(fn):
    block = TransformerBlock(16, 2, norm="rmsnorm", norm_position="sandwich", ffn="swiglu")
    got = _trace(fn, block)
    expect(got == "sandwich", f"expected 'sandwich', got {got!r}")


# --------------------------------------------------------------------------------------------------
# transformer-block.layer-cosine
# --------------------------------------------------------------------------------------------------

COSINE = register(
    Exercise(
        id="transformer-block.layer-cosine",
        title="Consecutive-layer cosine similarity",
        names=("layer_cosine",),
        references=(layer_cosine,),
        signature='''def layer_cosine(hidden_states):
    """hidden_states: a list of L tensors of the same shape (..., d), e.g. (B, T, d).
    Return a list of L − 1 floats: entry l is the mean over tokens of cos(h_l, h_{l+1}),
    the cosine taken along the feature axis (the last one)."""''',
        hint="torch.nn.functional.cosine_similarity(a, b, dim=-1) gives one cosine per token.",
    )
)


def _states(n_layers=5, shape=(2, 6, 8)):
    # tokens with very different norms, so that a cosine of the flattened tensors differs from the mean
    scale = torch.exp(2 * torch.randn(*shape[:-1], 1, dtype=torch.float64))
    return [scale * torch.randn(*shape, dtype=torch.float64) + 0.5 * i for i in range(n_layers)]


@COSINE.check("returns L − 1 floats")
def _cos_length(fn):
    got = fn(_states(5))
    expect(isinstance(got, list) and len(got) == 4, f"expected a list of 4 values for 5 layers, got {got!r}")
    expect(
        all(isinstance(v, float) for v in got),
        f"expected Python floats, got {[type(v).__name__ for v in got]}",
    )


@COSINE.check("identical consecutive states give 1, negated ones −1")
def _cos_identity(fn):
    h = torch.randn(2, 6, 8, dtype=torch.float64)
    got = fn([h, h, -h])
    expect(len(got) == 2, f"expected 2 values, got {got!r}")
    expect(abs(got[0] - 1) < 1e-9 and abs(got[1] + 1) < 1e-9, f"expected [1, −1], got {got}")


@COSINE.check("matches the per-token mean cosine on random states (1e-9)")
def _cos_values(fn):
    states = _states(4)
    got = fn(states)
    want = layer_cosine(states)
    expect(len(got) == len(want), f"expected {len(want)} values, got {len(got)}")
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        expect(abs(a - b) < 1e-9, f"layer pair ({i}, {i + 1}): expected {b:.6f}, got {a:.6f}")


@COSINE.check("at initialization a 12-layer Pre-LN stack has higher consecutive cosine than Post-LN")
def _cos_pre_post(fn):
    x = torch.randn(2, 8, 32)
    means = {}
    for position in ("pre", "post"):
        torch.manual_seed(0)
        stack = TransformerStack(12, 32, 4, norm_position=position)
        with torch.no_grad():
            _, hidden = stack(x, return_hidden=True)
        values = fn(hidden[1:])
        means[position] = sum(values) / len(values)
    expect(means["pre"] > means["post"], f"expected pre > post, got {means}")


# --------------------------------------------------------------------------------------------------
# transformer-block.moe
# --------------------------------------------------------------------------------------------------

MOE = register(
    Exercise(
        id="transformer-block.moe",
        title="A top-k mixture of experts with a load-balancing loss",
        names=("MoE",),
        references=(MoE,),
        signature='''class MoE(torch.nn.Module):
    """MoE(d, d_ff, n_experts, top_k): router = nn.Linear(d, n_experts, bias=False);
    experts = nn.ModuleList of n_experts FFNs (d -> d), e.g. GLUFeedForward(d, d_ff).
    top_k > n_experts raises ValueError.

    route(x) for x (N, d) returns (indices, gates, aux_loss):
      p = softmax(router(x)); indices (N, top_k) = the top_k experts by p, best first, ties to the
      LOWER expert index; gates (N, top_k) = p at those experts renormalized to sum to 1;
      aux_loss = E · Σ_e f_e · P_e with f_e = (number of the N·top_k assignments to e) / (N·top_k)
      and P_e = mean over tokens of p_e.
    forward(x (B, T, d)) returns (y (B, T, d), aux_loss) with y = Σ_{e chosen} gate_e · expert_e(x).
    """''',
        hint="torch.sort(p, descending=True, stable=True) breaks ties by index; bincount gives f.",
    )
)


def _route(moe, x):
    r = moe.route(x)
    if hasattr(r, "indices"):
        return r.indices, r.gates, r.aux_loss
    expect(isinstance(r, tuple) and len(r) == 3, "route must return (indices, gates, aux_loss)")
    return r


def _forward(moe, x):
    out = moe(x)
    expect(isinstance(out, tuple) and len(out) == 2, "forward must return (y, aux_loss)")
    return out


@MOE.check("top_k > n_experts raises ValueError")
def _moe_errors(cls):
    expect_raises(ValueError, lambda: cls(8, 16, 2, 3), "MoE(8, 16, n_experts=2, top_k=3)")


@MOE.check("each token gets exactly top_k distinct experts, the top-k of the router; gates sum to 1")
def _moe_route(cls):
    moe = cls(8, 16, 6, 2).double()
    x = _f64(40, 8)
    indices, gates, _ = _route(moe, x)
    expect_tensor(indices, "indices", shape=(40, 2))
    expect_tensor(gates, "gates", shape=(40, 2))
    with torch.no_grad():
        logits = moe.router(x)
        want = torch.sort(logits, dim=-1, descending=True, stable=True).indices[:, :2]
        expect(bool((indices == want).all()), "indices are not the top-2 experts of the router, best first")
        expect(bool((indices[:, 0] != indices[:, 1]).all()), "a token was sent twice to the same expert")
        expect_close(gates.sum(-1), torch.ones(40, dtype=gates.dtype), "gate sums", atol=1e-9)
        want_gates = torch.softmax(logits.gather(-1, want), dim=-1)
        expect_close(gates, want_gates, "gates (softmax of the chosen logits)", atol=1e-6)


@MOE.check("forward = Σ gate · expert(x) over the chosen experts (float64 1e-10)")
def _moe_forward(cls):
    moe = cls(8, 16, 4, 2).double()
    x = _f64(3, 5, 8)
    y, _ = _forward(moe, x)
    expect_tensor(y, "y", shape=(3, 5, 8))
    flat = x.reshape(-1, 8)
    indices, gates, _ = _route(moe, flat)
    with torch.no_grad():
        want = torch.zeros_like(flat)
        for slot in range(2):
            for e in range(4):
                sel = indices[:, slot] == e
                if sel.any():
                    want[sel] += gates[sel, slot, None] * moe.experts[e](flat[sel])
        expect_close(y.reshape(-1, 8), want, "y", atol=1e-10)


@MOE.check("one expert with top_k = 1 is exactly that expert's FFN")
def _moe_single(cls):
    moe = cls(8, 16, 1, 1).double()
    x = _f64(2, 6, 8)
    y, _ = _forward(moe, x)
    with torch.no_grad():
        expect_close(y, moe.experts[0](x), "y vs experts[0](x)", atol=1e-12)


@MOE.check("top_k = n_experts with equal router logits is the dense average of the experts")
def _moe_dense(cls):
    moe = cls(8, 16, 4, 4).double()
    with torch.no_grad():
        moe.router.weight.zero_()
        x = _f64(2, 3, 8)
        y, _ = _forward(moe, x)
        want = sum(expert(x) for expert in moe.experts) / 4
        expect_close(y, want, "y vs mean of the experts", atol=1e-12)


@MOE.check("ties in the router logits go to the lower expert index")
def _moe_ties(cls):
    moe = cls(8, 16, 4, 2)
    with torch.no_grad():
        moe.router.weight.zero_()
        indices, gates, _ = _route(moe, torch.randn(10, 8))
    want = torch.tensor([[0, 1]] * 10)
    expect(
        bool((indices == want).all()),
        f"expected experts [0, 1] for every token, got {indices[:3].tolist()} …",
    )
    expect_close(gates.float(), torch.full((10, 2), 0.5), "gates under a tie", atol=1e-6)


@MOE.check("aux loss = E·Σ f·P: 1 for a uniform router, larger when skewed, matches the formula")
def _moe_aux(cls):
    moe = cls(8, 16, 4, 2).double()
    x = _f64(64, 8) + 1.0
    with torch.no_grad():
        moe.router.weight.zero_()
        _, _, aux = _route(moe, x)
        expect(abs(float(aux) - 1.0) < 1e-9, f"uniform router: expected aux loss 1, got {float(aux):.6g}")
        moe.router.weight.copy_(0.1 * torch.randn(4, 8, dtype=torch.float64))
        moe.router.weight[0] = 1.0  # every token now prefers expert 0
        indices, _, aux = _route(moe, x)
        p = torch.softmax(moe.router(x), dim=-1)
    f = torch.bincount(indices.reshape(-1), minlength=4).double() / indices.numel()
    want = 4 * (f * p.mean(0)).sum()
    expect(
        abs(float(aux) - float(want)) < 1e-6, f"expected E·Σ f·P = {float(want):.6g}, got {float(aux):.6g}"
    )
    expect(
        float(aux) > 1.5, f"a router that prefers one expert should give aux loss > 1.5, got {float(aux):.6g}"
    )
