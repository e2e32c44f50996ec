"""Exercises of the Positional encoding chapter (``notebooks/transformer/positional-encoding.ipynb``).

Checks compare the candidate with closed forms (the sinusoid table of "Attention Is All You Need"
§3.5, the complex-number form of RoPE, the slope formula of the ALiBi paper), with properties the
math guarantees (orthogonality, norm preservation, dependence on ``m − n`` only), and with the
companion's reference implementations, which ``tests/test_positional.py`` verifies against Hugging
Face ``transformers`` (Llama's ``apply_rotary_pos_emb``, T5's ``_relative_position_bucket``, BLOOM's
ALiBi tensor) and the ALiBi paper's reference code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from companion.grading.checks import (
    as_number,
    expect,
    expect_close,
    expect_no_error,
    expect_raises,
    expect_tensor,
)
from companion.grading.registry import Exercise, register
from companion.losses import length_extrapolation
from companion.nn.positional import (
    LearnedPositionalEmbedding,
    PositionOutOfRangeError,
    offset_matrix,
    sinusoidal,
)
from companion.nn.relative_bias import alibi_bias, alibi_slopes, t5_relative_bucket
from companion.nn.rope import rope

# --------------------------------------------------------------------------------------------------
# positional-encoding.sinusoidal
# --------------------------------------------------------------------------------------------------


def _reference_sinusoidal(n_pos, d, base=10000.0):
    return sinusoidal(n_pos, d, base, dtype=torch.float64)


def _reference_offset_matrix(k, d, base=10000.0):
    return offset_matrix(k, d, base)


SINUSOIDAL = register(
    Exercise(
        id="positional-encoding.sinusoidal",
        title="Sinusoidal positional encoding and its offset matrix",
        names=("sinusoidal", "offset_matrix"),
        references=(_reference_sinusoidal, _reference_offset_matrix),
        signature='''def sinusoidal(n_pos, d, base=10000.0):
    """The float64 table PE of shape (n_pos, d), positions p = 0 … n_pos-1:
    PE[p, 2i] = sin(p·ω_i), PE[p, 2i+1] = cos(p·ω_i), ω_i = base^(-2i/d).
    Raises ValueError when d is odd."""

def offset_matrix(k, d, base=10000.0):
    """The float64 (d, d) matrix M_k with PE[p + k] = M_k @ PE[p] for every p (column vectors):
    block-diagonal, block i = [[cos kω_i, sin kω_i], [-sin kω_i, cos kω_i]]."""''',
        hint="ω = base ** (-arange(0, d, 2) / d); interleave sin and cos with torch.stack(..., -1).reshape; "
        "sin(a+b) = sin a cos b + cos a sin b.",
    )
)


def _closed_form(n_pos: int, d: int, base: float) -> torch.Tensor:
    pe = torch.zeros(n_pos, d, dtype=torch.float64)
    for i in range(d // 2):
        omega = base ** (-2 * i / d)
        for p in range(n_pos):
            pe[p, 2 * i] = math.sin(p * omega)
            pe[p, 2 * i + 1] = math.cos(p * omega)
    return pe


@SINUSOIDAL.check("matches the closed form of Attention Is All You Need §3.5 (float64, atol 1e-9)")
def _sin_closed_form(sinusoidal_fn, offset_matrix_fn):
    for n_pos, d, base in ((40, 16, 10000.0), (25, 6, 100.0)):
        got = expect_tensor(sinusoidal_fn(n_pos, d, base), f"sinusoidal({n_pos}, {d}, {base})")
        expect_close(got.double(), _closed_form(n_pos, d, base), f"PE with n_pos={n_pos}, d={d}", atol=1e-9)


@SINUSOIDAL.check("PE[p + k] = M_k · PE[p] for every p (float64, atol 1e-9)")
def _sin_offset(sinusoidal_fn, offset_matrix_fn):
    d, n = 16, 300
    pe = _closed_form(n, d, 10000.0)
    for k in (1, 7, 123):
        m = expect_tensor(offset_matrix_fn(k, d), f"offset_matrix({k}, {d})", shape=(d, d)).double()
        expect_close(pe[:-k] @ m.T, pe[k:], f"PE[p + {k}] vs M_{k} · PE[p]", atol=1e-9)


@SINUSOIDAL.check("M_k is orthogonal and M_0 is the identity")
def _sin_orthogonal(sinusoidal_fn, offset_matrix_fn):
    d = 12
    eye = torch.eye(d, dtype=torch.float64)
    for k in (0, 5, 1000):
        m = expect_tensor(offset_matrix_fn(k, d), f"offset_matrix({k}, {d})", shape=(d, d)).double()
        expect_close(m.T @ m, eye, f"M_{k}ᵀ M_{k}", atol=1e-12)
    expect_close(offset_matrix_fn(0, d).double(), eye, "M_0", atol=1e-15)


@SINUSOIDAL.check("all 10⁵ rows are distinct (no repetition), d = 16")
def _sin_distinct(sinusoidal_fn, offset_matrix_fn):
    pe = expect_tensor(sinusoidal_fn(100_000, 16), "sinusoidal(100000, 16)", shape=(100_000, 16))
    unique = torch.unique(pe.double(), dim=0).shape[0]
    expect(unique == 100_000, f"expected 100000 distinct rows, got {unique}")


@SINUSOIDAL.check("odd d raises ValueError")
def _sin_odd(sinusoidal_fn, offset_matrix_fn):
    expect_raises(ValueError, lambda: sinusoidal_fn(10, 7), "sinusoidal(10, 7)")


# --------------------------------------------------------------------------------------------------
# positional-encoding.learned
# --------------------------------------------------------------------------------------------------

LEARNED = register(
    Exercise(
        id="positional-encoding.learned",
        title="A learned absolute position table",
        names=("LearnedPE",),
        references=(LearnedPositionalEmbedding,),
        signature='''class LearnedPE(torch.nn.Module):
    """LearnedPE(max_len, d): one parameter, a (max_len, d) table E (random initialisation).
    forward(x, offset=0) with x (B, T, d) returns x + E[offset : offset + T].
    Raises ValueError when offset + T > max_len (there is no row for those positions).
    """''',
        hint="store nn.Parameter(torch.randn(max_len, d) * 0.02); slice rows offset … offset+T-1 and "
        "broadcast over the batch; check the length before slicing (slicing never raises by itself).",
    )
)


def _table(module: nn.Module, max_len: int, d: int) -> torch.Tensor:
    params = list(module.parameters())
    expect(len(params) == 1, f"expected exactly one parameter (the table), got {len(params)}")
    return expect_tensor(params[0], "the parameter", shape=(max_len, d))


@LEARNED.check("one (max_len, d) parameter; output = x + E[:T] with shape (B, T, d)")
def _learned_values(cls):
    module = cls(10, 8)
    table = _table(module, 10, 8)
    x = torch.randn(3, 6, 8)
    out = expect_tensor(module(x), "output", shape=(3, 6, 8))
    expect_close(out, x + table[:6].detach(), "output", atol=1e-6)


@LEARNED.check("offset selects rows offset … offset + T − 1")
def _learned_offset(cls):
    module = cls(10, 4)
    table = _table(module, 10, 4)
    x = torch.zeros(2, 3, 4)
    expect_close(module(x, offset=5), table[5:8].detach().expand(2, 3, 4), "output at offset 5", atol=1e-6)
    expect_close(
        module(x, 7), table[7:10].detach().expand(2, 3, 4), "output at offset 7 (last rows)", atol=1e-6
    )


@LEARNED.check("lengths above max_len raise ValueError")
def _learned_too_long(cls):
    module = cls(8, 4)
    module(torch.zeros(1, 8, 4))  # exactly max_len is fine
    expect_raises(ValueError, lambda: module(torch.zeros(1, 9, 4)), "T = max_len + 1")
    expect_raises(ValueError, lambda: module(torch.zeros(1, 4, 4), offset=5), "offset 5 + T 4 > max_len 8")


@LEARNED.check("gradients reach only the rows used")
def _learned_grads(cls):
    module = cls(12, 4)
    table = _table(module, 12, 4)
    module(torch.randn(2, 5, 4), offset=3).pow(2).sum().backward()
    expect(table.grad is not None, "the table received no gradient")
    used = table.grad[3:8].abs().sum(-1)
    unused = torch.cat([table.grad[:3], table.grad[8:]]).abs().max().item()
    expect(bool((used > 0).all()), "rows 3 … 7 were used but some got no gradient")
    expect(unused == 0, f"rows outside 3 … 7 were not used but got gradient up to {unused:.3g}")


# --------------------------------------------------------------------------------------------------
# positional-encoding.t5-buckets
# --------------------------------------------------------------------------------------------------

T5_BUCKETS = register(
    Exercise(
        id="positional-encoding.t5-buckets",
        title="T5's bucketed relative positions",
        names=("t5_relative_bucket",),
        references=(t5_relative_bucket,),
        signature='''def t5_relative_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """Bucket ids (long tensor, shape of rel) of relative positions rel = key − query (integer tensor).
    Bidirectional: num_buckets // 2 buckets per sign, + num_buckets // 2 for rel > 0, n = |rel|.
    Unidirectional: n = max(−rel, 0) (future offsets → 0), all num_buckets for the past.
    With b buckets for a side and e = b // 2: bucket n if n < e, else
    min(e + int(log(n / e) / log(max_distance / e) · (b − e)), b − 1)."""''',
        hint="compute the large-distance bucket with the log formula for every n (clamp n to ≥ 1 "
        "first), then torch.where(n < e, n, large); the int() truncates towards zero.",
    )
)


def _buckets(fn, rel, *args) -> torch.Tensor:
    out = expect_tensor(fn(rel, *args), f"t5_relative_bucket(…, {', '.join(map(str, args))})")
    expect(not out.is_floating_point(), f"expected integer bucket ids, got dtype {out.dtype}")
    return out.long()


@T5_BUCKETS.check("equals the reference (= transformers' T5) for rel ∈ [−300, 300]")
def _t5_reference(fn):
    rel = torch.arange(-300, 301)
    for args in ((True, 32, 128), (False, 32, 128), (True, 16, 64), (False, 8, 20)):
        got = _buckets(fn, rel, *args)
        want = t5_relative_bucket(rel, *args)
        bad = (got != want).nonzero()
        if bad.numel():
            r = int(rel[bad[0, 0]])
            raise AssertionError(
                f"args {args}: rel={r} expected bucket {int(want[bad[0, 0]])}, got {int(got[bad[0, 0]])} "
                f"({bad.numel()} mismatches)"
            )


@T5_BUCKETS.check("exact buckets near 0, saturating from max_distance on")
def _t5_shape(fn):
    rel = -torch.arange(0, 400)
    got = _buckets(fn, rel, False, 32, 128)
    expect(
        torch.equal(got[:16], torch.arange(16)), f"distances 0 … 15 should be buckets 0 … 15, got {got[:16]}"
    )
    expect(
        bool((got[128:] == 31).all()), f"distances ≥ 128 should all be bucket 31, got {got[128:].unique()}"
    )
    expect(bool((got.diff() >= 0).all()), "buckets must not decrease with distance")


@T5_BUCKETS.check("bidirectional separates the sign; unidirectional maps the future to 0")
def _t5_sign(fn):
    rel = torch.arange(1, 50)
    pos, neg = _buckets(fn, rel, True, 32, 128), _buckets(fn, -rel, True, 32, 128)
    expect(bool((pos >= 16).all()), f"future offsets (rel > 0) use buckets 16 … 31, got {pos.min()}")
    expect(bool((neg < 16).all()), f"past offsets use buckets 0 … 15, got {neg.max()}")
    fut = _buckets(fn, rel, False, 32, 128)
    expect(bool((fut == 0).all()), f"unidirectional: future offsets go to bucket 0, got {fut.unique()}")


# --------------------------------------------------------------------------------------------------
# positional-encoding.rope
# --------------------------------------------------------------------------------------------------

ROPE = register(
    Exercise(
        id="positional-encoding.rope",
        title="Rotary position embedding (RoPE), both layouts",
        names=("rope",),
        references=(rope,),
        signature='''def rope(x, positions, base=10000.0, layout="interleaved"):
    """Rotate x (..., T, D) at integer positions (T,): pair i is turned by the angle m·θ_i,
    θ_i = base^(-2i/D), i = 0 … D/2-1, (a, b) -> (a cos − b sin, a sin + b cos).
    layout "interleaved": pair i = (x[2i], x[2i+1]); "half": pair i = (x[i], x[i + D/2]).
    Returns the same shape and dtype as x."""''',
        hint="angles = positions[:, None] * theta (T, D/2); for 'half' split x into two halves, for "
        "'interleaved' take x[..., 0::2] and x[..., 1::2] and re-interleave with stack(…, -1).flatten(-2).",
    )
)


def _complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Interleaved RoPE as a complex product: x̃_i · e^{i m θ_i} (float64)."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    rot = torch.polar(torch.ones_like(theta), positions.double()[:, None] * theta)
    return torch.view_as_real(z * rot).reshape(x.shape)


def _hf_style_half(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """The half-split formula of Hugging Face's Llama: x·cos + rotate_half(x)·sin, cos = [cos, cos]."""
    d = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    emb = torch.cat([positions.double()[:, None] * inv_freq] * 2, dim=-1)
    rotated = torch.cat((-x[..., d // 2 :], x[..., : d // 2]), dim=-1)
    return x * emb.cos() + rotated * emb.sin()


def _rope_call(fn, x, positions, base=10000.0, layout="interleaved"):
    out = fn(x, positions, base, layout)
    return expect_tensor(out, f"rope(layout={layout!r})", shape=tuple(x.shape), dtype=x.dtype)


@ROPE.check("interleaved layout equals the complex-number form x̃·e^{imθ} (float64, atol 1e-9)")
def _rope_complex(fn):
    x = torch.randn(2, 3, 9, 16, dtype=torch.float64)
    pos = torch.tensor([0, 1, 2, 5, 9, 40, 100, 1000, 4096])
    for base in (10000.0, 100.0):
        expect_close(_rope_call(fn, x, pos, base), _complex_rope(x, pos, base), f"base {base:g}", atol=1e-9)


@ROPE.check("half layout equals Hugging Face Llama's x·cos + rotate_half(x)·sin (atol 1e-6)")
def _rope_half(fn):
    x = torch.randn(2, 4, 7, 32, dtype=torch.float64)
    pos = torch.arange(3, 10)
    expect_close(
        _rope_call(fn, x, pos, 10000.0, "half"), _hf_style_half(x, pos, 10000.0), "output", atol=1e-6
    )


@ROPE.check("the two layouts agree up to the permutation (0, 2, 4, …, 1, 3, 5, …)")
def _rope_layouts(fn):
    x = torch.randn(3, 11, 12, dtype=torch.float64)
    pos = torch.arange(11) * 3
    perm = torch.cat([torch.arange(0, 12, 2), torch.arange(1, 12, 2)])
    inter = _rope_call(fn, x, pos, 10000.0, "interleaved")
    half = _rope_call(fn, x[..., perm], pos, 10000.0, "half")
    expect_close(half, inter[..., perm], "half(x[perm]) vs interleaved(x)[perm]", atol=1e-10)


@ROPE.check("norms are preserved and position 0 is the identity")
def _rope_norm(fn):
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    for layout in ("interleaved", "half"):
        out = _rope_call(fn, x, torch.arange(6) * 17, 10000.0, layout)
        expect_close(out.norm(dim=-1), x.norm(dim=-1), f"norms ({layout})", atol=1e-10)
        at0 = _rope_call(fn, x, torch.zeros(6, dtype=torch.long), 10000.0, layout)
        expect_close(at0, x, f"position 0 ({layout})", atol=1e-12)


@ROPE.check("⟨rope(q, m), rope(k, n)⟩ depends only on m − n (random shifts, atol 1e-5)")
def _rope_relative(fn):
    q, k = torch.randn(1, 16, dtype=torch.float64), torch.randn(1, 16, dtype=torch.float64)
    for layout in ("interleaved", "half"):
        for m, n in ((5, 2), (40, 41), (300, 0)):
            ref = None
            for shift in (0, 1, 37, 1000):
                a = _rope_call(fn, q, torch.tensor([m + shift]), 10000.0, layout)
                b = _rope_call(fn, k, torch.tensor([n + shift]), 10000.0, layout)
                score = (a * b).sum()
                ref = score if ref is None else ref
                expect(
                    abs(score.item() - ref.item()) <= 1e-5,
                    f"{layout}: score at (m, n) = ({m + shift}, {n + shift}) is {score.item():.6g}, at "
                    f"({m}, {n}) {ref.item():.6g}: it must depend only on m − n",
                )


@ROPE.check("keeps the dtype: float32 in, float32 out, close to the float64 result")
def _rope_dtype(fn):
    x = torch.randn(2, 5, 8)
    pos = torch.arange(5)
    out = _rope_call(fn, x, pos)
    expect_close(out.double(), _complex_rope(x, pos, 10000.0), "float32 output", atol=1e-5)


# --------------------------------------------------------------------------------------------------
# positional-encoding.alibi
# --------------------------------------------------------------------------------------------------


def _reference_alibi_slopes(n_heads):
    return alibi_slopes(n_heads, dtype=torch.float64)


def _reference_alibi_bias(n_heads, L):
    return alibi_bias(n_heads, L, dtype=torch.float64)


ALIBI = register(
    Exercise(
        id="positional-encoding.alibi",
        title="ALiBi slopes and biases",
        names=("alibi_slopes", "alibi_bias"),
        references=(_reference_alibi_slopes, _reference_alibi_bias),
        signature='''def alibi_slopes(n_heads):
    """(n_heads,) float tensor of slopes m_h. For H a power of two: m_h = 2^(-8h/H), h = 1 … H.
    Otherwise (the ALiBi paper's code): the slopes for P = 2^floor(log2 H), then every other slope
    (1st, 3rd, …) of the sequence for 2P, until there are H."""

def alibi_bias(n_heads, L):
    """(n_heads, L, L) float tensor with bias[h, i, j] = -m_h·(i − j) for j ≤ i (query i, key j).
    Entries with j > i are not checked: the causal mask removes them."""''',
        hint="slopes for a power of two P: [2 ** (-8 * h / P) for h in 1 … P]; the bias is "
        "-slopes[:, None, None] * (i[:, None] - j[None, :]) — added to the scores, never multiplied.",
    )
)


def _paper_get_slopes(n: int) -> list[float]:
    """The reference ``get_slopes`` of Press et al. (attention_with_linear_biases, fairseq)."""

    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (
        get_slopes_power_of_2(closest_power_of_2)
        + _paper_get_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2]
    )


def _slopes(fn, n):
    out = expect_tensor(fn(n), f"alibi_slopes({n})", shape=(n,))
    expect(out.is_floating_point(), f"alibi_slopes({n}): expected a float tensor, got {out.dtype}")
    return out.double()


@ALIBI.check("8 heads give 2^−1 … 2^−8")
def _alibi_eight(slopes_fn, bias_fn):
    expected = torch.tensor([2.0**-h for h in range(1, 9)], dtype=torch.float64)
    expect_close(_slopes(slopes_fn, 8), expected, "slopes for 8 heads", atol=0, rtol=1e-6)


@ALIBI.check("non-powers of two follow the paper's rule (12 heads, and every H ≤ 32)")
def _alibi_non_power(slopes_fn, bias_fn):
    for n in (12, *range(1, 33)):
        expected = torch.tensor(_paper_get_slopes(n), dtype=torch.float64)
        expect_close(_slopes(slopes_fn, n), expected, f"slopes for {n} heads", atol=0, rtol=1e-6)


@ALIBI.check("bias[h, i, j] = −m_h·(i − j) for j ≤ i, shape (H, L, L)")
def _alibi_bias_values(slopes_fn, bias_fn):
    for n_heads, L in ((4, 6), (12, 9)):
        got = expect_tensor(
            bias_fn(n_heads, L), f"alibi_bias({n_heads}, {L})", shape=(n_heads, L, L)
        ).double()
        want = alibi_bias(n_heads, L, dtype=torch.float64)
        lower = torch.ones(L, L, dtype=torch.bool).tril()
        expect_close(got * lower, want * lower, f"lower triangle of alibi_bias({n_heads}, {L})", atol=1e-6)


@ALIBI.check("softmax(scores + bias) equals BLOOM's per-key bias m_h·j under the causal mask")
def _alibi_bloom(slopes_fn, bias_fn):
    n_heads, L = 8, 7
    scores = torch.randn(n_heads, L, L, dtype=torch.float64)
    future = torch.ones(L, L, dtype=torch.bool).triu(1)
    bias = expect_tensor(bias_fn(n_heads, L), "bias", shape=(n_heads, L, L)).double()
    ours = torch.softmax((scores + bias).masked_fill(future, float("-inf")), dim=-1)
    m = torch.tensor(_paper_get_slopes(n_heads), dtype=torch.float64)
    bloom = m[:, None, None] * torch.arange(L, dtype=torch.float64)  # (H, 1, L): differs by a row constant
    want = torch.softmax((scores + bloom).masked_fill(future, float("-inf")), dim=-1)
    expect_close(ours, want, "attention weights", atol=1e-10)


# --------------------------------------------------------------------------------------------------
# positional-encoding.extrapolation
# --------------------------------------------------------------------------------------------------

EXTRAPOLATION = register(
    Exercise(
        id="positional-encoding.extrapolation",
        title="Perplexity at evaluation lengths beyond the training length",
        names=("length_extrapolation",),
        references=(length_extrapolation,),
        signature='''def length_extrapolation(model, ids, eval_lens):
    """{L: perplexity or None} for each L in eval_lens (same order).
    model maps ids (B, L) to logits (B, L, V); put it in eval() mode and use torch.no_grad().
    ids: (N,) held-out token ids. For each L use the n = (N − 1) // L consecutive windows
    inputs ids[wL : wL + L], targets ids[wL + 1 : wL + L + 1], w = 0 … n-1; perplexity =
    exp(mean cross-entropy over all n·L predictions). If the model raises ValueError for a length
    (a learned position table that is too short), report None for that length instead of crashing."""''',
        hint="targets are the inputs shifted by one; average the summed cross-entropy over every "
        "predicted token before taking exp (not the mean of per-window perplexities).",
    )
)


class _FixedLM(nn.Module):
    """A deterministic toy LM: logits from the current token and a position-dependent bias; dropout
    makes ``train()`` mode visibly random; raises a ValueError (``PositionOutOfRangeError``) beyond
    ``max_len``."""

    def __init__(self, vocab: int = 7, max_len: int | None = None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.table = nn.Parameter(torch.randn(vocab, vocab, generator=g, dtype=torch.float64))
        self.pos = nn.Parameter(torch.randn(512, vocab, generator=g, dtype=torch.float64) * 0.5)
        self.drop = nn.Dropout(0.5)
        self.max_len = max_len

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if self.max_len is not None and t > self.max_len:
            # the library's ValueError for it: the reference catches only this one, a learner's
            # solution that catches ValueError (the specification) catches it too
            raise PositionOutOfRangeError(f"length {t} > max_len {self.max_len}")
        return self.drop(self.table[ids] + self.pos[:t])


def _stream(n: int = 257, vocab: int = 7) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(11))


def _ppl(fn, model, ids, lens):
    out = fn(model, ids, lens)
    expect(isinstance(out, dict), f"expected a dict {{L: perplexity}}, got {type(out).__name__}")
    expect(list(out) == list(lens), f"expected keys {list(lens)} in that order, got {list(out)}")
    return {L: None if p is None else as_number(p, f"the perplexity at L={L}") for L, p in out.items()}


@EXTRAPOLATION.check("matches the specification on a fixed model (rtol 1e-6)")
def _extra_reference(fn):
    lens = [4, 16, 64]
    got = _ppl(fn, _FixedLM(), _stream(), lens)
    want = length_extrapolation(_FixedLM(), _stream(), lens)
    for L in lens:
        expect(got[L] is not None, f"L={L}: got None for a supported length")
        expect(
            math.isclose(float(got[L]), want[L], rel_tol=1e-6),
            f"L={L}: expected perplexity {want[L]:.6g}, got {float(got[L]):.6g}",
        )


@EXTRAPOLATION.check("uniform logits give perplexity V at every length")
def _extra_uniform(fn):
    class Uniform(nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 9)

    got = _ppl(fn, Uniform(), _stream(200, 9), [1, 10, 99])
    for L, p in got.items():
        expect(p is not None and abs(float(p) - 9) < 1e-6, f"L={L}: expected perplexity 9 (= V), got {p}")


@EXTRAPOLATION.check("a length the model cannot run is reported as None, not a crash")
def _extra_unsupported(fn):
    got = expect_no_error(
        lambda: _ppl(fn, _FixedLM(max_len=16), _stream(), [8, 16, 32, 64]),
        "lengths beyond the model's max_len=16 must be reported as None",
    )
    expect(got[32] is None and got[64] is None, f"lengths beyond max_len=16 should be None, got {got}")
    expect(got[8] is not None and got[16] is not None, f"lengths ≤ 16 are supported, got {got}")
    expect(all(math.isfinite(float(got[L])) for L in (8, 16)), f"perplexities must be finite, got {got}")


@EXTRAPOLATION.check("deterministic: evaluation mode, same result twice")
def _extra_deterministic(fn):
    model = _FixedLM()
    model.train()  # dropout active until the candidate switches to eval()
    first = _ppl(fn, model, _stream(), [8, 32])
    model.train()
    second = _ppl(fn, model, _stream(), [8, 32])
    expect(first == second, f"two evaluations differ: {first} vs {second} (is the model in eval mode?)")
    want = length_extrapolation(_FixedLM(), _stream(), [8, 32])
    for L in (8, 32):
        expect(
            math.isclose(float(first[L]), want[L], rel_tol=1e-6),
            f"L={L}: expected {want[L]:.6g}, got {first[L]}",
        )
