"""Exercises of the Attention chapter (``notebooks/transformer/attention.ipynb``).

Every check compares the candidate with an independent reference (``torch.nn.functional`` or
``torch.nn.MultiheadAttention``) or with a property the math guarantees, on seeded random inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from companion.grading.checks import as_number, expect, expect_close, expect_raises, expect_tensor
from companion.grading.registry import Exercise, register
from companion.nn.attention import CrossAttention, MultiHeadAttention
from companion.nn.masks import causal, combine, padding
from companion.nn.score_scaling import score_stats
from companion.nn.sdpa import scaled_dot_product_attention
from companion.testing import assert_causal

# --------------------------------------------------------------------------------------------------
# attention.sdpa
# --------------------------------------------------------------------------------------------------


def _reference_sdpa(q, k, v, mask=None, is_causal=False):
    return scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)


SDPA = register(
    Exercise(
        id="attention.sdpa",
        title="Scaled dot-product attention",
        names=("sdpa",),
        references=(_reference_sdpa,),
        signature='''def sdpa(q, k, v, mask=None, is_causal=False):
    """softmax(q kᵀ / sqrt(d_k) + M) v, returning (output, weights).

    q: (..., T_q, d_k); k: (..., T_k, d_k); v: (..., T_k, d_v).
    mask: None or a bool tensor broadcastable to (..., T_q, T_k), True = may attend.
    is_causal: also block key j > query i.
    Returns output (..., T_q, d_v) and weights (..., T_q, T_k). Blocked weights are exactly 0; a query
    with every key blocked gets zero weights and a zero output (never NaN).
    """''',
        hint="mask *before* the softmax with a large negative finite value, then zero the blocked weights.",
    )
)


def _qkv(b=2, h=3, t_q=5, t_k=5, d=8, dtype=torch.float64):
    return (
        torch.randn(b, h, t_q, d, dtype=dtype),
        torch.randn(b, h, t_k, d, dtype=dtype),
        torch.randn(b, h, t_k, 6, dtype=dtype),
    )


def _sdpa_call(sdpa, *args, **kwargs):
    result = sdpa(*args, **kwargs)
    expect(
        isinstance(result, tuple) and len(result) == 2,
        f"sdpa must return a tuple (output, weights), got {type(result).__name__}",
    )
    return result


@SDPA.check("matches torch SDPA without a mask (float64, atol 1e-6)")
def _sdpa_plain(sdpa):
    q, k, v = _qkv()
    out, _ = _sdpa_call(sdpa, q, k, v)
    expect_close(out, F.scaled_dot_product_attention(q, k, v), "output", atol=1e-6)


@SDPA.check("matches torch SDPA with a boolean mask (True = attend)")
def _sdpa_mask(sdpa):
    q, k, v = _qkv(t_q=4, t_k=7)
    mask = torch.rand(2, 1, 4, 7) > 0.4
    mask[..., 0] = True  # every query keeps one key, so torch's output is well defined
    out, _ = _sdpa_call(sdpa, q, k, v, mask=mask)
    expect_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), "output", atol=1e-6)


@SDPA.check("matches torch SDPA with is_causal=True")
def _sdpa_causal(sdpa):
    q, k, v = _qkv(t_q=6, t_k=6)
    out, weights = _sdpa_call(sdpa, q, k, v, is_causal=True)
    expect_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), "output", atol=1e-6)
    upper = torch.ones(6, 6, dtype=torch.bool).triu(1)
    expect(bool((weights[..., upper] == 0).all()), "weights above the diagonal must be exactly 0")


@SDPA.check("works when T_q != T_k and d_v != d_k")
def _sdpa_shapes(sdpa):
    q, k, v = _qkv(t_q=3, t_k=9)
    out, weights = _sdpa_call(sdpa, q, k, v)
    expect_tensor(out, "output", shape=(2, 3, 3, 6))
    expect_tensor(weights, "weights", shape=(2, 3, 3, 9))
    expect_close(out, F.scaled_dot_product_attention(q, k, v), "output", atol=1e-6)


@SDPA.check("weight rows sum to 1 and blocked weights are exactly 0")
def _sdpa_weights(sdpa):
    q, k, v = _qkv(t_q=4, t_k=6)
    mask = torch.rand(4, 6) > 0.5
    mask[:, 2] = True
    _, weights = _sdpa_call(sdpa, q, k, v, mask=mask)
    expect_close(weights.sum(-1), torch.ones(2, 3, 4, dtype=torch.float64), "row sums", atol=1e-9)
    blocked = weights[..., ~mask]
    expect(
        bool((blocked == 0).all()), f"blocked weights must be exactly 0, largest is {blocked.abs().max():.3g}"
    )


@SDPA.check("a fully masked row gives zeros, not NaN")
def _sdpa_fully_masked(sdpa):
    q, k, v = _qkv(t_q=3, t_k=4)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    out, weights = _sdpa_call(sdpa, q, k, v, mask=mask)
    expect(bool(torch.isfinite(out).all()), "output contains NaN/inf for the fully masked row")
    expect(bool((out[..., 1, :] == 0).all()), "the fully masked query's output must be 0")
    expect(bool((weights[..., 1, :] == 0).all()), "the fully masked query's weights must be 0")
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    expect_close(out[..., [0, 2], :], ref[..., [0, 2], :], "output of the other rows", atol=1e-6)


@SDPA.check("stable for logits of ±1e4")
def _sdpa_large(sdpa):
    q, k, v = _qkv(t_q=4, t_k=5, dtype=torch.float32)
    q = q * 1e4 / q.abs().amax()
    k = k / k.abs().amax() * math.sqrt(8)
    out, weights = _sdpa_call(sdpa, q, k, v)
    ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double()).float()
    expect_close(out, ref, "output at huge logits", atol=1e-4)
    expect(bool(torch.isfinite(weights).all()), "weights contain NaN/inf at huge logits")


# --------------------------------------------------------------------------------------------------
# attention.padding-mask
# --------------------------------------------------------------------------------------------------

PADDING = register(
    Exercise(
        id="attention.padding-mask",
        title="Padding masks and combining them with the causal mask",
        names=("padding_mask", "combine_masks"),
        references=(padding, combine),
        signature='''def padding_mask(lengths, L):
    """Bool key-padding mask of shape (B, 1, 1, L): True at the first lengths[b] positions."""

def combine_masks(pad, causal):
    """Combine two bool masks (True = may attend): attend only where both allow; broadcast shapes."""''',
        hint="compare arange(L) with the lengths; True marks real tokens; combining is a logical AND.",
    )
)


@PADDING.check("shape (B, 1, 1, L), dtype bool, True exactly at real tokens")
def _pad_values(padding_mask, combine_masks):
    got = padding_mask(torch.tensor([3, 1, 5]), 5)
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    expect_tensor(got, "padding_mask", shape=(3, 1, 1, 5), dtype=torch.bool)
    expect(bool((got[:, 0, 0] == expected).all()), f"expected\n{expected.int()}\ngot\n{got[:, 0, 0].int()}")


@PADDING.check("lengths 0 and L are handled")
def _pad_edges(padding_mask, combine_masks):
    got = padding_mask(torch.tensor([0, 4]), 4)
    expect_tensor(got, "padding_mask", shape=(2, 1, 1, 4), dtype=torch.bool)
    expect(not bool(got[0].any()), "length 0 must mask every position")
    expect(bool(got[1].all()), "length L must mask nothing")


@PADDING.check("combined with a causal mask: shape (B, 1, T, T), logical AND")
def _pad_combine(padding_mask, combine_masks):
    pad = padding(torch.tensor([2, 4]), 4)
    caus = causal(4)
    got = combine_masks(pad, caus)
    expect_tensor(got, "combine_masks(pad, causal)", shape=(2, 1, 4, 4), dtype=torch.bool)
    expect(bool((got == (pad & caus)).all()), "a position may be attended only where both masks allow it")


@PADDING.check("outputs at real positions ignore the values stored at padding")
def _pad_invariance(padding_mask, combine_masks):
    lengths = torch.tensor([3, 6])
    mask = combine_masks(padding_mask(lengths, 6), causal(6))
    q, k, v = (torch.randn(2, 2, 6, 4, dtype=torch.float64) for _ in range(3))
    out1, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    k2, v2 = k.clone(), v.clone()
    k2[0, :, 3:] = 100 * torch.randn(2, 3, 4, dtype=torch.float64)
    v2[0, :, 3:] = 100 * torch.randn(2, 3, 4, dtype=torch.float64)
    out2, _ = scaled_dot_product_attention(q, k2, v2, mask=mask)
    expect_close(out2[0, :, :3], out1[0, :, :3], "outputs at the 3 real positions", atol=1e-9)


# --------------------------------------------------------------------------------------------------
# attention.scaling-stats
# --------------------------------------------------------------------------------------------------

SCALING = register(
    Exercise(
        id="attention.scaling-stats",
        title="Why divide by sqrt(d_k): score variance, entropy and gradient",
        names=("score_stats",),
        references=(score_stats,),
        signature='''def score_stats(d_k, n, scaled, generator):
    """Draw Q (n, d_k) then K (32, d_k) from N(0, 1) in float64 with `generator`, in that order.
    Z = Q Kᵀ, divided by sqrt(d_k) if `scaled`. p = softmax over each row of Z.
    Return (var, entropy, grad_norm) as floats:
      var       = torch.var of all entries of Z (unbiased),
      entropy   = mean over rows of -Σ p log p (natural log),
      grad_norm = mean over rows of the Frobenius norm of the softmax Jacobian diag(p) - p pᵀ.
    """''',
        hint="Var(q·k) = d_k for unit-variance entries; the softmax Jacobian is diag(p) - p pᵀ.",
    )
)


def _stats(score_stats_fn, d_k, n, scaled, seed=0):
    g = torch.Generator().manual_seed(seed)
    result = score_stats_fn(d_k, n, scaled, g)
    expect(isinstance(result, tuple) and len(result) == 3, "must return a tuple (var, entropy, grad_norm)")
    values = tuple(as_number(x, "score_stats") for x in result)
    expect(all(math.isfinite(x) for x in values), f"values must be finite, got {values}")
    return values


@SCALING.check("Var(q·k) ≈ d_k unscaled (±10% at n = 10⁴)")
def _scaling_var_unscaled(score_stats_fn):
    var, _, _ = _stats(score_stats_fn, 64, 10_000, False)
    expect(abs(var / 64 - 1) < 0.10, f"expected a variance near d_k = 64, got {var:.4g}")


@SCALING.check("Var(q·k/√d_k) ≈ 1 (±10% at n = 10⁴)")
def _scaling_var_scaled(score_stats_fn):
    var, _, _ = _stats(score_stats_fn, 256, 10_000, True)
    expect(abs(var - 1) < 0.10, f"expected a variance near 1 after scaling, got {var:.4g}")


@SCALING.check("scaling keeps the softmax entropy higher (d_k = 256)")
def _scaling_entropy(score_stats_fn):
    _, h_scaled, _ = _stats(score_stats_fn, 256, 2_000, True)
    _, h_raw, _ = _stats(score_stats_fn, 256, 2_000, False)
    expect(
        h_scaled > h_raw + 0.5, f"entropy scaled {h_scaled:.4g} should clearly exceed unscaled {h_raw:.4g}"
    )
    expect(h_scaled <= math.log(32) + 1e-9, f"entropy {h_scaled:.4g} exceeds its maximum log 32")


@SCALING.check("at d_k = 1024 the logit gradient is smaller without scaling")
def _scaling_grad(score_stats_fn):
    _, _, g_scaled = _stats(score_stats_fn, 1024, 2_000, True)
    _, _, g_raw = _stats(score_stats_fn, 1024, 2_000, False)
    expect(
        g_raw < 0.5 * g_scaled,
        f"unscaled gradient norm {g_raw:.4g} should be well below scaled {g_scaled:.4g}",
    )


@SCALING.check("matches the specification exactly for a fixed generator (rtol 1e-6)")
def _scaling_exact(score_stats_fn):
    for d_k, scaled in ((16, False), (64, True)):
        got = _stats(score_stats_fn, d_k, 500, scaled, seed=7)
        want = score_stats(d_k, 500, scaled, torch.Generator().manual_seed(7))
        for name, a, b in zip(("var", "entropy", "grad_norm"), got, want, strict=True):
            expect(
                math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12),
                f"d_k={d_k}, scaled={scaled}: {name} expected {b:.8g}, got {a:.8g}",
            )


# --------------------------------------------------------------------------------------------------
# attention.multi-head
# --------------------------------------------------------------------------------------------------

MULTI_HEAD = register(
    Exercise(
        id="attention.multi-head",
        title="Multi-head self-attention",
        names=("MultiHeadAttention",),
        references=(MultiHeadAttention,),
        signature='''class MultiHeadAttention(torch.nn.Module):
    """MultiHeadAttention(d_model, n_heads): self-attention with four nn.Linear(d_model, d_model)
    (with bias) named q_proj, k_proj, v_proj, out_proj; head width d_model // n_heads.
    forward(x) with x (B, T, d_model) returns a tuple (output (B, T, d_model), anything).
    Raises ValueError when d_model is not divisible by n_heads.
    """''',
        hint="split (B, T, d) into (B, H, T, d_h) with view + transpose, scale by sqrt(d_h), merge back.",
    )
)


def _copy_from_torch(ours: nn.Module, ref: nn.MultiheadAttention) -> None:
    d = ref.embed_dim
    with torch.no_grad():
        for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
            getattr(ours, name).weight.copy_(ref.in_proj_weight[i * d : (i + 1) * d])
            getattr(ours, name).bias.copy_(ref.in_proj_bias[i * d : (i + 1) * d])
        ours.out_proj.weight.copy_(ref.out_proj.weight)
        ours.out_proj.bias.copy_(ref.out_proj.bias)


def _output(result) -> torch.Tensor:
    return result[0] if isinstance(result, tuple) else result


@MULTI_HEAD.check("d_model not divisible by n_heads raises ValueError")
def _mha_divisible(cls):
    expect_raises(ValueError, lambda: cls(10, 3), "MultiHeadAttention(10, 3)")


@MULTI_HEAD.check("has 4d² + 4d parameters")
def _mha_params(cls):
    d = 24
    count = sum(p.numel() for p in cls(d, 4).parameters())
    expect(count == 4 * d * d + 4 * d, f"expected {4 * d * d + 4 * d} parameters, got {count}")


@MULTI_HEAD.check("matches torch.nn.MultiheadAttention with copied weights (atol 1e-5)")
def _mha_torch(cls):
    for n_heads in (1, 4):
        ref = nn.MultiheadAttention(32, n_heads, batch_first=True)
        ours = cls(32, n_heads)
        _copy_from_torch(ours, ref)
        x = torch.randn(3, 7, 32)
        with torch.no_grad():
            expected, _ = ref(x, x, x, need_weights=False)
            got = _output(ours(x))
        expect_close(got, expected, f"output with n_heads={n_heads}", atol=1e-5)


@MULTI_HEAD.check("H = 1 equals single-head attention with the same weights")
def _mha_single_head(cls):
    ours = cls(16, 1)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    ours = ours.double()
    with torch.no_grad():
        q, k, v = ours.q_proj(x), ours.k_proj(x), ours.v_proj(x)
        w = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1)
        expected = ours.out_proj(w @ v)
        got = _output(ours(x))
    expect_close(got, expected, "output", atol=1e-10)


@MULTI_HEAD.check("output shape (B, T, d_model) for several head counts")
def _mha_shapes(cls):
    for n_heads in (1, 2, 8):
        out = _output(cls(16, n_heads)(torch.randn(2, 3, 16)))
        expect_tensor(out, f"output with n_heads={n_heads}", shape=(2, 3, 16))


# --------------------------------------------------------------------------------------------------
# attention.causality
# --------------------------------------------------------------------------------------------------

CAUSALITY = register(
    Exercise(
        id="attention.causality",
        title="A leak test for causal models",
        names=("assert_causal",),
        references=(assert_causal,),
        signature='''def assert_causal(model, ids, vocab_size):
    """Raise AssertionError if model's output at some position t changes when any token after t
    changes. model maps ids (B, T) to outputs (B, T, ...); perturb every t = 0 … T-1; tolerate 1e-6.
    Return None when the model is causal."""''',
        hint="for each t, change every token after t (to a different valid id) and compare outputs[:, :t+1].",
    )
)


class _TinyLM(nn.Module):
    """Embedding + one attention layer; ``mask_kind`` decides how causal it is."""

    def __init__(self, mask_kind: str, vocab: int = 11, d: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.attn = MultiHeadAttention(d, 2)
        self.mask_kind = mask_kind

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        t = ids.shape[1]
        if self.mask_kind == "causal":
            mask = causal(t)
        elif self.mask_kind == "none":
            mask = None
        elif self.mask_kind == "leak-middle":  # position 4 may also see token 6, nothing else leaks
            mask = causal(t).clone()
            mask[4, 6] = True
        else:  # "leak-next": each position also sees exactly the next one
            mask = causal(t, offset=1)
        return self.attn(x, attn_mask=mask)[0]


def _leak_case(assert_causal_fn, kind: str) -> bool:
    """True if the candidate raised AssertionError for this model."""
    model = _TinyLM(kind).eval()
    ids = torch.randint(0, 11, (2, 8))
    try:
        assert_causal_fn(model, ids, 11)
    except AssertionError:
        return True
    return False


@CAUSALITY.check("accepts a causal model")
def _causal_ok(assert_causal_fn):
    expect(not _leak_case(assert_causal_fn, "causal"), "raised AssertionError on a correctly masked model")


@CAUSALITY.check("rejects a model without a causal mask")
def _causal_none(assert_causal_fn):
    expect(_leak_case(assert_causal_fn, "none"), "did not raise on a model that sees every future token")


@CAUSALITY.check("rejects a model that leaks token 6 into position 4 only")
def _causal_middle(assert_causal_fn):
    expect(_leak_case(assert_causal_fn, "leak-middle"), "missed a leak from token 6 into position 4")


@CAUSALITY.check("rejects a model that sees exactly one token ahead")
def _causal_next(assert_causal_fn):
    expect(_leak_case(assert_causal_fn, "leak-next"), "missed a one-token-ahead leak")


@CAUSALITY.check("handles a sequence of length 1")
def _causal_len1(assert_causal_fn):
    model = _TinyLM("none").eval()
    assert_causal_fn(model, torch.randint(0, 11, (2, 1)), 11)  # nothing after t = 0: must not raise


# --------------------------------------------------------------------------------------------------
# attention.cross-attention
# --------------------------------------------------------------------------------------------------

CROSS = register(
    Exercise(
        id="attention.cross-attention",
        title="Encoder–decoder (cross) attention",
        names=("CrossAttention",),
        references=(CrossAttention,),
        signature='''class CrossAttention(torch.nn.Module):
    """CrossAttention(d, h): queries from the decoder, keys/values from the encoder output.
    Four nn.Linear(d, d) with bias named q_proj, k_proj, v_proj, out_proj; head width d // h.
    forward(x_dec (B, T_dec, d), enc_out (B, T_src, d), src_mask (B, T_src) bool, True = real token)
    returns a tuple (output (B, T_dec, d), anything). No causal mask.
    """''',
        hint="Q = x_dec W_Q, K = enc_out W_K, V = enc_out W_V; only the source padding mask applies.",
    )
)


def _cross_reference_output(module: nn.Module, n_heads: int, x, enc, src_mask) -> torch.Tensor:
    ref = CrossAttention(x.shape[-1], n_heads).to(x.dtype)
    ref.load_state_dict({k: v for k, v in module.state_dict().items() if k.split(".")[0].endswith("proj")})
    with torch.no_grad():
        return ref(x, enc, src_mask)[0]


@CROSS.check("output is (B, T_dec, d) for any source length")
def _cross_shapes(cls):
    module = cls(16, 2)
    for t_src in (1, 4, 11):
        out = _output(
            module(torch.randn(2, 5, 16), torch.randn(2, t_src, 16), torch.ones(2, t_src, dtype=torch.bool))
        )
        expect_tensor(out, f"output for source length {t_src}", shape=(2, 5, 16))


@CROSS.check("matches the reference with the same weights and a source mask (atol 1e-10)")
def _cross_reference(cls):
    module = cls(16, 2).double()
    x, enc = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 7, 16, dtype=torch.float64)
    src_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3], dtype=torch.bool)
    with torch.no_grad():
        got = _output(module(x, enc, src_mask))
    expect_close(got, _cross_reference_output(module, 2, x, enc, src_mask), "output", atol=1e-10)


@CROSS.check("encoder values at padding positions have no effect")
def _cross_padding(cls):
    module = cls(16, 2).double()
    x, enc = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 6, 16, dtype=torch.float64)
    src_mask = torch.tensor([[1] * 6, [1] * 2 + [0] * 4], dtype=torch.bool)
    enc2 = enc.clone()
    enc2[1, 2:] = 50 * torch.randn(4, 16, dtype=torch.float64)
    with torch.no_grad():
        a, b = _output(module(x, enc, src_mask)), _output(module(x, enc2, src_mask))
    expect_close(b, a, "output after changing padded encoder states", atol=1e-9)


@CROSS.check("no causal mask: the first decoder position sees the last source token")
def _cross_not_causal(cls):
    module = cls(16, 2).double()
    x, enc = torch.randn(1, 3, 16, dtype=torch.float64), torch.randn(1, 6, 16, dtype=torch.float64)
    mask = torch.ones(1, 6, dtype=torch.bool)
    enc2 = enc.clone()
    enc2[0, -1] += 5.0
    with torch.no_grad():
        a, b = _output(module(x, enc, mask)), _output(module(x, enc2, mask))
    change = (a[0, 0] - b[0, 0]).abs().max().item()
    expect(change > 1e-6, "decoder position 0 ignored the last source token: is a causal mask applied?")
