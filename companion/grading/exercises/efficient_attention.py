"""Exercises of the Efficient attention chapter (``notebooks/transformer/efficient-attention.ipynb``).

Checks compare the candidate with independent references — ``torch.nn.functional``'s SDPA (with
``enable_gqa``), explicit einsum/loop formulas written here, closed-form counts — on seeded random
inputs, and instrument the tiled attention with :class:`companion.nn.flash.TensorAllocationTracker`
to see which tensors it creates.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from companion.grading.checks import expect, expect_close, expect_raises, expect_tensor
from companion.grading.registry import Exercise, register
from companion.nn.attention import (
    GroupedQueryAttention,
    MultiHeadAttention,
    mean_pool_kv_heads,
)
from companion.nn.flash import TensorAllocationTracker, flash_reference
from companion.nn.kv_cache import kv_cache_bytes
from companion.nn.linformer import linformer
from companion.nn.masks import block_sparse, causal, sliding_window
from companion.nn.mla import MultiHeadLatentAttention, rope_half


def _output(result) -> torch.Tensor:
    return result[0] if isinstance(result, tuple) else result


def _project(module, x: torch.Tensor, n_heads: int, n_kv_heads: int):
    b, t, d = x.shape
    d_h = d // n_heads
    q = module.q_proj(x).view(b, t, n_heads, d_h).transpose(1, 2)
    k = module.k_proj(x).view(b, t, n_kv_heads, d_h).transpose(1, 2)
    v = module.v_proj(x).view(b, t, n_kv_heads, d_h).transpose(1, 2)
    return q, k, v


# --------------------------------------------------------------------------------------------------
# efficient-attention.gqa-kv-cache
# --------------------------------------------------------------------------------------------------


def _reference_kv_cache_bytes(n_layers, n_kv_heads, head_dim, dtype, seq_len=1, batch_size=1):
    return kv_cache_bytes(n_layers, n_kv_heads, head_dim, dtype=dtype, seq_len=seq_len, batch_size=batch_size)


GQA = register(
    Exercise(
        id="efficient-attention.gqa-kv-cache",
        title="Grouped-query attention, KV-cache size and MHA → GQA conversion",
        names=("GroupedQueryAttention", "kv_cache_bytes", "mha_to_gqa"),
        references=(GroupedQueryAttention, _reference_kv_cache_bytes, mean_pool_kv_heads),
        signature='''class GroupedQueryAttention(torch.nn.Module):
    """GroupedQueryAttention(d_model, n_heads, n_kv_heads): H query heads share G key/value heads.
    d_h = d_model // n_heads. Four nn.Linear layers *without bias*: q_proj (d_model -> H·d_h),
    k_proj and v_proj (d_model -> G·d_h), out_proj (H·d_h -> d_model).
    Query head h reads KV head h // (H // G). Scores are divided by sqrt(d_h).
    forward(x, is_causal=False): x (B, T, d_model) -> (output (B, T, d_model), anything).
    Raises ValueError when n_heads is not divisible by n_kv_heads.
    """

def kv_cache_bytes(n_layers, n_kv_heads, head_dim, dtype, seq_len=1, batch_size=1):
    """Bytes (an int) of the keys and values that n_layers layers cache for seq_len positions of
    batch_size sequences, with n_kv_heads heads of width head_dim stored as torch dtype `dtype`."""

def mha_to_gqa(weight, n_heads, n_kv_heads):
    """Mean-pool an MHA key (or value) projection into n_kv_heads groups.
    weight: (n_heads·d_h, d_in), nn.Linear layout with head-major rows (head h = rows h·d_h … ).
    Group g averages heads g·H/G, …, (g+1)·H/G - 1. Returns (n_kv_heads·d_h, d_in)."""''',
        hint=(
            "view K and V as (B, G, T, d_h) and queries as (B, G, H/G, T, d_h) (or repeat_interleave K/V "
            "along the head axis); the cache stores K *and* V; reshape the weight to (G, H/G, d_h, d_in)."
        ),
    )
)


def _mqa(module, x, is_causal):
    b, t, d = x.shape
    h = d // module.k_proj.weight.shape[0]
    d_h = d // h
    q = module.q_proj(x).view(b, t, h, d_h)
    k, v = module.k_proj(x), module.v_proj(x)  # one shared head
    s = torch.einsum("bthd,bsd->bhts", q, k) / math.sqrt(d_h)
    if is_causal:
        s = s.masked_fill(~causal(t), float("-inf"))
    return module.out_proj(torch.einsum("bhts,bsd->bthd", s.softmax(-1), v).reshape(b, t, d))


@GQA.check("G = H equals multi-head attention with the same weights (float64, atol 1e-10)")
def _gqa_is_mha(cls, kv_bytes, convert):
    module = cls(32, 4, 4).double()
    mha = MultiHeadAttention(32, 4, bias=False, dtype=torch.float64)
    mha.load_state_dict({k: v for k, v in module.state_dict().items() if k.split(".")[0].endswith("proj")})
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    with torch.no_grad():
        for is_causal in (False, True):
            got = _output(module(x, is_causal=is_causal))
            expect_close(got, mha(x, is_causal=is_causal)[0], f"output, is_causal={is_causal}", atol=1e-10)


@GQA.check("G = 1 equals multi-query attention (one shared K and V head, float64, atol 1e-10)")
def _gqa_is_mqa(cls, kv_bytes, convert):
    module = cls(32, 4, 1).double()
    expect_tensor(module.k_proj.weight, "k_proj.weight", shape=(8, 32))
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    with torch.no_grad():
        expect_close(_output(module(x, is_causal=True)), _mqa(module, x, True), "output", atol=1e-10)


@GQA.check("matches torch SDPA with enable_gqa=True and with repeat_interleave (H = 8, G = 2)")
def _gqa_sdpa(cls, kv_bytes, convert):
    module = cls(64, 8, 2).double()
    x = torch.randn(2, 7, 64, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = _project(module, x, 8, 2)
        for is_causal in (False, True):
            ref = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, enable_gqa=True)
            rep = F.scaled_dot_product_attention(
                q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1), is_causal=is_causal
            )
            expect_close(rep, ref, "repeat_interleave reference", atol=1e-12)
            expected = module.out_proj(ref.transpose(1, 2).reshape(2, 7, 64))
            expect_close(
                _output(module(x, is_causal=is_causal)), expected, f"is_causal={is_causal}", atol=1e-10
            )


@GQA.check("H not divisible by G raises ValueError")
def _gqa_divisible(cls, kv_bytes, convert):
    expect_raises(ValueError, lambda: cls(48, 6, 4), "GroupedQueryAttention(48, 6, 4)")


@GQA.check("only K and V shrink: 2·d·H·d_h + 2·d·G·d_h parameters")
def _gqa_params(cls, kv_bytes, convert):
    for g in (8, 2, 1):
        n = sum(p.numel() for p in cls(64, 8, g).parameters())
        want = 2 * 64 * 64 + 2 * 64 * g * 8
        expect(n == want, f"G = {g}: expected {want} parameters, got {n}")


@GQA.check("KV cache: 49 152 B/token for GPT-OSS-20B and 28 672 for ChatGLM2-6B (bf16)")
def _gqa_bytes_known(cls, kv_bytes, convert):
    for what, args, want in (
        ("GPT-OSS-20B (L=24, G=8, d_h=64)", (24, 8, 64), 49_152),
        ("ChatGLM2-6B (L=28, G=2, d_h=128)", (28, 2, 128), 28_672),
        ("ChatGLM2-6B with 32 KV heads", (28, 32, 128), 458_752),
        ("GPT-OSS-20B shape with MQA", (24, 1, 64), 6_144),
    ):
        got = kv_bytes(*args, torch.bfloat16)
        expect(got == want, f"{what}: expected {want} bytes per token, got {got}")


@GQA.check("KV cache grows with dtype size, sequence length and batch")
def _gqa_bytes_scaling(cls, kv_bytes, convert):
    for dtype, size in ((torch.float32, 4), (torch.float16, 2), (torch.float8_e4m3fn, 1)):
        got = kv_bytes(2, 3, 16, dtype, seq_len=10, batch_size=4)
        want = 2 * 2 * 3 * 16 * 10 * 4 * size
        expect(
            got == want,
            f"kv_cache_bytes(2, 3, 16, {dtype}, seq_len=10, batch_size=4): expected {want}, got {got}",
        )


@GQA.check("mha_to_gqa: shape (G·d_h, d_in) and each group's mean")
def _gqa_convert_values(cls, kv_bytes, convert):
    w = torch.randn(8 * 4, 10, dtype=torch.float64)
    got = convert(w, 8, 2)
    expect_close(got, mean_pool_kv_heads(w, 8, 2), "pooled weight", atol=1e-12)
    expect_close(convert(w, 8, 8), w, "G = H leaves the weight unchanged", atol=1e-12)


@GQA.check("mha_to_gqa is exact when the heads of each group are identical")
def _gqa_convert_exact(cls, kv_bytes, convert):
    mha = MultiHeadAttention(32, 8, bias=False, dtype=torch.float64)
    with torch.no_grad():
        for proj in (mha.k_proj, mha.v_proj):
            w = proj.weight.view(2, 4, 4, 32)
            w.copy_(w[:, :1].expand_as(w).clone())  # heads 0-3 equal, heads 4-7 equal
    gqa = GroupedQueryAttention(32, 8, 2, dtype=torch.float64)
    with torch.no_grad():
        gqa.q_proj.weight.copy_(mha.q_proj.weight)
        gqa.out_proj.weight.copy_(mha.out_proj.weight)
        gqa.k_proj.weight.copy_(expect_tensor(convert(mha.k_proj.weight, 8, 2), "k weight", shape=(8, 32)))
        gqa.v_proj.weight.copy_(expect_tensor(convert(mha.v_proj.weight, 8, 2), "v weight", shape=(8, 32)))
        x = torch.randn(2, 5, 32, dtype=torch.float64)
        expect_close(gqa(x, is_causal=True)[0], mha(x, is_causal=True)[0], "converted GQA vs MHA", atol=1e-10)


# --------------------------------------------------------------------------------------------------
# efficient-attention.mla
# --------------------------------------------------------------------------------------------------


class _ReferenceToyMLA(MultiHeadLatentAttention):
    """The exercise's interface on top of the companion module: causal self-attention."""

    def __init__(self, d, h, d_c, d_rope):
        super().__init__(d, h, d_c, d_rope)

    def forward(self, x, absorb=False):  # type: ignore[override]
        return super().forward(x, is_causal=True, absorb=absorb)[0]


MLA = register(
    Exercise(
        id="efficient-attention.mla",
        title="Multi-head latent attention with a decoupled RoPE key",
        names=("ToyMLA",),
        references=(_ReferenceToyMLA,),
        signature='''class ToyMLA(torch.nn.Module):
    """ToyMLA(d, h, d_c, d_rope): multi-head latent attention (DeepSeek-V2) with d_h = d // h.
    nn.Linear layers without bias, with these names:
        down_kv (d -> d_c) = W_DKV      up_k (d_c -> h·d_h) = W_UK     up_v (d_c -> h·d_h) = W_UV
        q_proj (d -> h·d_h) = W_Q       q_rope (d -> h·d_rope) = W_QR  k_rope (d -> d_rope) = W_KR
        out_proj (h·d_h -> d) = W_O
    rope(z, positions) rotates each pair (z_j, z_{j + D/2}) of position p by the angle
    p · 10000^(-2j/D)  (= companion.nn.mla.rope_half); positions are 0 … T-1.

    latents(x): x (B, T, d) -> (B, T, d_c + d_rope) = [x W_DKV ; rope(x W_KR)]: what the cache stores.
    forward(x, absorb=False): causal self-attention (B, T, d) -> (B, T, d) computed from latents(x):
        c, k_R = split of latents(x);  for head i:
        q_i = [x W_Q^i ; rope(x W_QR^i)],  k_i = [c W_UK^i ; k_R] (k_R shared by all heads),
        v_i = c W_UV^i,  o_i = softmax(q_i k_iᵀ / sqrt(d_h + d_rope) + causal mask) v_i,
        output = Concat(o_1 … o_h) W_O.
        absorb=True must give the same output while scoring the content part directly against c,
        with W_UK folded into the query (and W_UV applied after the weighted sum of the c's).
    forward may return the output or a tuple (output, anything).
    """''',
        hint=(
            "q^C·(c W_UK^iᵀ) = (q^C W_UK^i)·c: with nn.Linear's weight (h·d_h, d_c) viewed as (h, d_h, d_c), "
            "q_lat = q^C @ W; the weighted sum of c's times W_UV^iᵀ is the head output."
        ),
    )
)


def _explicit_mla(module, x: torch.Tensor, h: int, d_rope: int) -> torch.Tensor:
    """Per-head loop: K and V recomputed from the latent c through the up-projections."""
    _, t, d = x.shape
    d_h = d // h
    pos = torch.arange(t)
    c = x @ module.down_kv.weight.T
    k_r = rope_half(x @ module.k_rope.weight.T, pos)
    heads = []
    for i in range(h):
        rows = slice(i * d_h, (i + 1) * d_h)
        q_r = rope_half(x @ module.q_rope.weight[i * d_rope : (i + 1) * d_rope].T, pos)
        q = torch.cat([x @ module.q_proj.weight[rows].T, q_r], -1)
        k = torch.cat([c @ module.up_k.weight[rows].T, k_r], -1)
        v = c @ module.up_v.weight[rows].T
        s = (q @ k.transpose(-2, -1)) / math.sqrt(d_h + d_rope)
        heads.append(s.masked_fill(~causal(t), float("-inf")).softmax(-1) @ v)
    return torch.cat(heads, -1) @ module.out_proj.weight.T


@MLA.check("latents(x) = [x W_DKV ; rope(x W_KR)]: d_c + d_rope numbers per token")
def _mla_latents(cls):
    for d, h, d_c, d_r in ((32, 4, 12, 4), (64, 8, 16, 8)):
        module = cls(d, h, d_c, d_r).double()
        x = torch.randn(2, 6, d, dtype=torch.float64)
        with torch.no_grad():
            lat = expect_tensor(module.latents(x), "latents(x)", shape=(2, 6, d_c + d_r))
            want = torch.cat(
                [x @ module.down_kv.weight.T, rope_half(x @ module.k_rope.weight.T, torch.arange(6))], -1
            )
        expect_close(lat, want, f"latents for d_c={d_c}, d_rope={d_r}", atol=1e-10)


@MLA.check("forward equals an explicit per-head recomputation of K and V from c (float64, 1e-10)")
def _mla_explicit(cls):
    module = cls(32, 4, 12, 4).double()
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    with torch.no_grad():
        expect_close(_output(module(x)), _explicit_mla(module, x, 4, 4), "output (absorb=False)", atol=1e-10)


@MLA.check("absorb=True equals absorb=False (float32, atol 1e-5)")
def _mla_absorb(cls):
    for d, h, d_c, d_r in ((32, 4, 12, 4), (48, 3, 10, 6)):
        module = cls(d, h, d_c, d_r)
        x = torch.randn(2, 9, d)
        with torch.no_grad():
            expect_close(
                _output(module(x, absorb=True)), _output(module(x)), f"absorbed output (h={h})", atol=1e-5
            )


@MLA.check("causal: outputs at positions <= t ignore the tokens after t (both paths)")
def _mla_causal(cls):
    module = cls(32, 4, 12, 4).double()
    x = torch.randn(1, 8, 32, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 5:] += torch.randn(1, 3, 32, dtype=torch.float64)
    with torch.no_grad():
        for absorb in (False, True):
            a, b = _output(module(x, absorb=absorb)), _output(module(x2, absorb=absorb))
            expect_close(
                b[:, :5], a[:, :5], f"positions 0-4 after changing tokens 5-7 (absorb={absorb})", atol=1e-10
            )


# --------------------------------------------------------------------------------------------------
# efficient-attention.sparse-masks
# --------------------------------------------------------------------------------------------------


def _ref_sliding(L, w):
    return sliding_window(L, window=w)


def _ref_block(L, block, pattern):
    return block_sparse(L, block, pattern)


def _ref_linformer(q, k, v, proj_k, proj_v):
    return linformer(q, k, v, proj_k, proj_v)


SPARSE = register(
    Exercise(
        id="efficient-attention.sparse-masks",
        title="Sliding-window and block-sparse masks, and Linformer",
        names=("sliding_window", "block_sparse", "linformer"),
        references=(_ref_sliding, _ref_block, _ref_linformer),
        signature='''def sliding_window(L, w):
    """(L, L) bool mask, True = may attend: query i sees keys j with i - w < j <= i."""

def block_sparse(L, block, pattern):
    """(L, L) bool *causal* mask (only j <= i) for the Sparse Transformer patterns:
    'local':   j // block == i // block                          (same block)
    'strided': i - j < block  or  (i - j) % block == 0           (window or stride)
    'fixed':   j // block == i // block  or  j % block == block - 1   (same block or summary column)"""

def linformer(q, k, v, E, F):
    """softmax(q (E k)ᵀ / sqrt(d)) (F v); q, k: (..., n, d); v: (..., n, d_v); E, F: (k_proj, n).
    Returns (..., n, d_v)."""''',
        hint=(
            "compare i = arange(L)[:, None] with j = arange(L)[None, :]; "
            "E and F mix the n positions of K and V."
        ),
    )
)


@SPARSE.check("sliding window: L·w - w(w - 1)/2 entries, shape (L, L), dtype bool")
def _sparse_sliding_count(sw, bs, lin):
    for L, w in ((10, 3), (16, 4), (33, 5), (8, 1)):
        m = expect_tensor(sw(L, w), f"sliding_window({L}, {w})", shape=(L, L), dtype=torch.bool)
        want = L * w - w * (w - 1) // 2
        expect(
            int(m.sum()) == want,
            f"sliding_window({L}, {w}): expected {want} True entries, got {int(m.sum())}",
        )


@SPARSE.check("sliding window: exact pattern; w >= L is the causal mask")
def _sparse_sliding_exact(sw, bs, lin):
    got = sw(12, 4)
    expect(bool((got == sliding_window(12, window=4)).all()), f"wrong pattern for (12, 4):\n{got.int()}")
    expect(bool((sw(7, 9) == causal(7)).all()), "sliding_window(7, 9) must equal the causal mask")


def _closed_form(pattern, t, block):
    if pattern == "local":
        full, rest = divmod(t, block)
        return full * block * (block + 1) // 2 + rest * (rest + 1) // 2
    if pattern == "strided":
        return sum(min(i + 1, block) + i // block for i in range(t))
    return sum(i % block + 1 + i // block for i in range(t))


@SPARSE.check("block-sparse counts match the closed forms (local, strided, fixed)")
def _sparse_block_counts(sw, bs, lin):
    for t, block in ((17, 4), (30, 5), (9, 3)):
        for pattern in ("local", "strided", "fixed"):
            m = expect_tensor(bs(t, block, pattern), f"block_sparse({t}, {block}, {pattern!r})", shape=(t, t))
            want = _closed_form(pattern, t, block)
            expect(
                int(m.sum()) == want,
                f"block_sparse({t}, {block}, {pattern!r}): expected {want} entries, got {int(m.sum())}",
            )


@SPARSE.check("block-sparse patterns are exactly right (and causal)")
def _sparse_block_exact(sw, bs, lin):
    for pattern in ("local", "strided", "fixed"):
        got, want = bs(13, 4, pattern), block_sparse(13, 4, pattern)
        expect(bool((got == want).all()), f"{pattern!r}: expected\n{want.int()}\ngot\n{got.int()}")


@SPARSE.check("Linformer with k = n and identity projections equals full attention")
def _sparse_linformer_identity(sw, bs, lin):
    q, k, v = (torch.randn(2, 3, 10, 8, dtype=torch.float64) for _ in range(3))
    eye = torch.eye(10, dtype=torch.float64)
    expect_close(lin(q, k, v, eye, eye), F.scaled_dot_product_attention(q, k, v), "output", atol=1e-10)


@SPARSE.check("Linformer with random E, F (k_proj = 4 < n = 10) matches the formula")
def _sparse_linformer_random(sw, bs, lin):
    q, k = torch.randn(2, 10, 8, dtype=torch.float64), torch.randn(2, 10, 8, dtype=torch.float64)
    v = torch.randn(2, 10, 5, dtype=torch.float64)
    e, f = torch.randn(4, 10, dtype=torch.float64), torch.randn(4, 10, dtype=torch.float64)
    want = torch.softmax(q @ (e @ k).transpose(-2, -1) / math.sqrt(8), -1) @ (f @ v)
    expect_close(lin(q, k, v, e, f), want, "output", atol=1e-10)


# --------------------------------------------------------------------------------------------------
# efficient-attention.flash-reference
# --------------------------------------------------------------------------------------------------


def _ref_flash(q, k, v, block_q, block_k, causal=False):
    return flash_reference(q, k, v, block_q, block_k, causal)


FLASH = register(
    Exercise(
        id="efficient-attention.flash-reference",
        title="Tiled attention with the online softmax (FlashAttention's forward pass)",
        names=("flash_reference",),
        references=(_ref_flash,),
        signature='''def flash_reference(q, k, v, block_q, block_k, causal=False):
    """Exact attention softmax(q kᵀ / sqrt(d)) v computed tile by tile.
    q: (..., T_q, d); k: (..., T_k, d); v: (..., T_k, d_v). Returns (..., T_q, d_v).
    For each block of block_q queries, loop over blocks of block_k keys keeping per query row a
    running max m (start -inf), a normalizer l (start 0) and an accumulator o (start 0):
        m' = max(m, rowmax(s));  l' = e^(m - m') l + Σ e^(s - m');  o' = e^(m - m') o + e^(s - m') v
    and output o / l. Never build the (T_q, T_k) score matrix or any other T_q × T_k tensor such as a
    full mask (compute each score tile with @ or torch.matmul). causal: query i sees key j iff
    j <= i; skip the key blocks that lie entirely above the diagonal. Block sizes need not divide T.
    """''',
        hint=(
            "keep m, l, o of shape (..., block_q, 1), (..., block_q, 1), (..., block_q, d_v); for a causal "
            "query block ending at i1, only key blocks starting before i1 are needed."
        ),
    )
)


def _flash_inputs(t_q, t_k, d=8, d_v=6, lead=(2, 3), dtype=torch.float64):
    return (
        torch.randn(*lead, t_q, d, dtype=dtype),
        torch.randn(*lead, t_k, d, dtype=dtype),
        torch.randn(*lead, t_k, d_v, dtype=dtype),
    )


@FLASH.check("equals SDPA when the blocks divide T (float64, atol 1e-10)")
def _flash_divides(fn):
    q, k, v = _flash_inputs(64, 64)
    for causal_flag in (False, True):
        got = fn(q, k, v, 16, 16, causal_flag)
        want = F.scaled_dot_product_attention(q, k, v, is_causal=causal_flag)
        expect_close(got, want, f"T = 64, blocks 16×16, causal={causal_flag}", atol=1e-10)


@FLASH.check("equals SDPA when the blocks do not divide T, and for T_q != T_k")
def _flash_ragged(fn):
    for t_q, t_k, bq, bk in ((50, 50, 16, 12), (37, 61, 8, 16), (61, 37, 64, 5)):
        q, k, v = _flash_inputs(t_q, t_k)
        for causal_flag in (False, True):
            got = fn(q, k, v, bq, bk, causal_flag)
            want = F.scaled_dot_product_attention(q, k, v, is_causal=causal_flag)
            expect_close(
                got, want, f"T_q={t_q}, T_k={t_k}, blocks {bq}×{bk}, causal={causal_flag}", atol=1e-10
            )


@FLASH.check("the running max starts at -inf: rows whose scores are all about -1e4 stay exact")
def _flash_negative(fn):
    k = torch.ones(1, 1, 20, 16, dtype=torch.float32)
    q = torch.full((1, 1, 6, 16), -2.5e3, dtype=torch.float32)  # every score = -2.5e3·16/4 = -1e4
    v = torch.randn(1, 1, 20, 3, dtype=torch.float32)
    got = fn(q, k, v, 4, 8, False)
    expect(bool(torch.isfinite(got).all()), "NaN/inf output: did the running max start at 0 instead of -inf?")
    expect_close(
        got, v.mean(dim=-2, keepdim=True).expand(1, 1, 6, 3), "uniform weights → mean of v", atol=1e-5
    )


@FLASH.check("stable for logits of ±1e4 (float32, atol 1e-4)")
def _flash_large(fn):
    q, k, v = _flash_inputs(24, 24, dtype=torch.float32, lead=(1, 2))
    q = q * 1e4 / q.abs().amax()
    k = k / k.abs().amax() * math.sqrt(8)
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double()).float()
    expect_close(fn(q, k, v, 8, 8, False), want, "output at huge logits", atol=1e-4)


@FLASH.check("never allocates a T × T tensor (instrumented with TensorAllocationTracker)")
def _flash_no_square(fn):
    t = 256
    q, k, v = _flash_inputs(t, t, d=16, d_v=16, lead=(1, 1), dtype=torch.float32)
    with torch.no_grad(), TensorAllocationTracker([q, k, v]) as tracker:
        fn(q, k, v, 32, 32, True)
    biggest = max((n for _, shape in tracker.ops for n in [math.prod(shape)]), default=0)
    expect(
        biggest < t * t // 4,
        f"a tensor with {biggest} elements was created; the full score matrix has {t * t} "
        f"(allowed: < {t * t // 4})",
    )


_MATMUL_NAMES = {"matmul", "__matmul__", "__rmatmul__", "bmm", "mm", "einsum", "baddbmm"}


@FLASH.check("causal: key blocks entirely above the diagonal are skipped")
def _flash_skips(fn):
    q, k, v = _flash_inputs(64, 64, d=8, d_v=6, lead=(1, 1))
    with torch.no_grad(), TensorAllocationTracker([q, k, v]) as tracker:
        got = fn(q, k, v, 16, 16, True)
    expect_close(got, F.scaled_dot_product_attention(q, k, v, is_causal=True), "output", atol=1e-10)
    tiles = sum(1 for name, shape in tracker.ops if name in _MATMUL_NAMES and shape[-2:] in {(16, 16)})
    expect(
        tiles <= 10,
        f"computed {tiles} score tiles of 16×16 for T = 64; only the 10 on or below the diagonal are needed",
    )
