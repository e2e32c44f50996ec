"""Tests of companion.models.gpt against references we did not write.

References: Hugging Face ``transformers.GPT2LMHeadModel`` (random init, no download) with copied
weights for logits, loss and gradients; its parameter count; ``torch.utils.flop_counter`` for the FLOP
formula; ``F.layer_norm``/``F.rms_norm`` against the companion norms; the model itself run without
a cache (teacher forcing) for the KV-cache path.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from companion.models import GPT, GPTConfig, incremental_logits, param_count
from companion.nn.norms import LayerNorm, RMSNorm
from companion.testing import assert_causal

logging.getLogger("transformers").setLevel(logging.ERROR)

HYPO = settings(max_examples=25, deadline=None)
VARIANTS = {
    "gpt2": GPTConfig.baby(vocab_size=37, block_size=24, n_layer=2, n_embd=32),
    "rope-gqa-swiglu-rmsnorm": GPTConfig.llama_style(vocab_size=37, block_size=24, n_layer=2, n_embd=32),
    "alibi": GPTConfig.baby(vocab_size=37, block_size=24, n_layer=2, n_embd=32, position="alibi"),
    "post-ln-untied": GPTConfig.baby(
        vocab_size=37, block_size=24, n_layer=2, n_embd=32, norm_position="post", tie_embeddings=False
    ),
    "mqa-explicit": GPTConfig.baby(
        vocab_size=37, block_size=24, n_layer=2, n_embd=32, n_kv_head=1, fused_attention=False
    ),
    "sinusoidal": GPTConfig.baby(vocab_size=37, block_size=24, n_layer=2, n_embd=32, position="sinusoidal"),
    "t5-bias": GPTConfig.baby(vocab_size=37, block_size=24, n_layer=2, n_embd=32, position="t5"),
    "no-positions": GPTConfig.baby(vocab_size=37, block_size=24, n_layer=2, n_embd=32, position="none"),
}


@pytest.fixture(scope="module")
def transformers():
    """Hugging Face ``transformers``, for the parity tests only: without it they skip, the rest run."""
    return pytest.importorskip("transformers")


def _ids(b, t, v, seed=0):
    return torch.randint(0, v, (b, t), generator=torch.Generator().manual_seed(seed))


def _hf_pair(transformers, n_layer=2, n_head=4, n_embd=64, vocab=101, n_ctx=32, seed=0):
    torch.manual_seed(seed)
    hc = transformers.GPT2Config(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab, n_positions=n_ctx,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    hf = transformers.GPT2LMHeadModel(hc).eval()
    with torch.no_grad():  # non-trivial norms and biases, so that a swapped or missing one shows
        for name, p in hf.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.normal_(1.0, 0.2)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return hf, GPT.from_hf_gpt2(hf).eval()


# ---- Hugging Face parity ------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
def test_logits_loss_and_grads_match_hf_gpt2(transformers, fused):
    hf, ours = _hf_pair(transformers)
    if not fused:
        ours = GPT.from_hf_gpt2(hf, fused_attention=False).eval()
    idx = _ids(3, 32, 101)
    want = hf(idx, labels=idx)  # HF shifts the labels inside
    targets = torch.cat([idx[:, 1:], torch.full((3, 1), -100)], dim=1)
    logits, loss = ours(idx, targets)
    torch.testing.assert_close(logits, want.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(loss, want.loss, atol=1e-6, rtol=0)
    want.loss.backward()
    loss.backward()
    pairs = {
        "wte": (ours.wte.weight.grad, hf.transformer.wte.weight.grad),
        "c_fc": (ours.blocks[1].mlp.fc_in.weight.grad, hf.transformer.h[1].mlp.c_fc.weight.grad.T),
        "ln_1": (ours.blocks[0].ln_1.weight.grad, hf.transformer.h[0].ln_1.weight.grad),
        "q_proj": (
            ours.blocks[0].attn.q_proj.weight.grad,
            hf.transformer.h[0].attn.c_attn.weight.grad[:, :64].T,
        ),
    }
    for name, (g_ours, g_hf) in pairs.items():
        torch.testing.assert_close(g_ours, g_hf, atol=1e-5, rtol=1e-4, msg=name)


def test_full_gpt2_small_matches_hf_and_has_124m_parameters(transformers):
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    ours = GPT.from_hf_gpt2(hf).eval()
    assert ours.config == GPTConfig.gpt2()
    n_hf = sum(p.numel() for p in hf.parameters())
    assert ours.num_parameters() == n_hf == param_count(GPTConfig.gpt2()) == 124_439_808
    idx = _ids(1, 12, 50257)
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0], hf(idx).logits, atol=1e-5, rtol=0)


def test_hf_parity_fails_for_an_untransposed_conv1d_weight(transformers):
    """The comparison can fail: copying one Conv1D weight without the transpose is caught."""
    hf, ours = _hf_pair(transformers)
    with torch.no_grad():
        ours.blocks[0].attn.out_proj.weight.copy_(hf.transformer.h[0].attn.c_proj.weight)  # no .T
    idx = _ids(2, 16, 101)
    with torch.no_grad():
        assert (ours(idx)[0] - hf(idx).logits).abs().max() > 1e-3


# ---- parameters and FLOPs ---------------------------------------------------------------------------


@HYPO
@given(
    n_layer=st.integers(1, 3),
    n_head=st.sampled_from([1, 2, 4]),
    head_dim=st.sampled_from([2, 4, 8]),
    kv_div=st.sampled_from([1, 2, 4]),
    vocab=st.integers(2, 50),
    block=st.integers(1, 40),
    position=st.sampled_from(["learned", "sinusoidal", "rope", "alibi", "t5", "none"]),
    norm=st.sampled_from(["layernorm", "rmsnorm"]),
    norm_position=st.sampled_from(["pre", "post"]),
    ffn=st.sampled_from(["mlp", "swiglu"]),
    bias=st.booleans(),
    tie=st.booleans(),
)
def test_param_count_equals_sum_of_numel(
    n_layer, n_head, head_dim, kv_div, vocab, block, position, norm, norm_position, ffn, bias, tie
):
    cfg = GPTConfig(
        vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head, n_embd=n_head * head_dim,
        n_kv_head=max(1, n_head // kv_div), position=position, norm=norm, norm_position=norm_position,
        ffn=ffn, bias=bias, tie_embeddings=tie,
    )  # fmt: skip
    model = GPT(cfg, device="meta")
    assert param_count(cfg) == model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_gpt3_sizes_from_the_formula():
    gpt3 = GPTConfig(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288)
    n = param_count(gpt3)
    assert abs(n - 175e9) / 175e9 < 0.01  # "175B"
    assert abs(n - 174.6e9) < 0.05e9
    assert abs(param_count(dataclasses.replace(gpt3, n_layer=12)) - 22.4e9) < 0.05e9


@pytest.mark.parametrize("name", ["gpt2", "rope-gqa-swiglu-rmsnorm", "alibi"])
def test_flops_per_token_matches_flop_counter(name):
    cfg = dataclasses.replace(VARIANTS[name], fused_attention=False)  # explicit matmuls: all counted
    model = GPT(cfg)
    b, t = 2, cfg.block_size
    idx = _ids(b, t, cfg.vocab_size)
    with FlopCounterMode(display=False) as counter:
        model(idx, idx)[1].backward()
    assert counter.get_total_flops() == model.flops_per_token(t) * b * t
    c = cfg
    attention = 12 * c.n_layer * t * c.n_embd
    assert model.flops_per_token(t) == 6 * model.matmul_parameters() + attention


# ---- KV cache ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("prealloc", [True, False])
def test_cached_logits_equal_teacher_forced_logits(name, prealloc):
    torch.manual_seed(0)
    cfg = VARIANTS[name]
    model = GPT(cfg).eval()
    idx = _ids(2, cfg.block_size, cfg.vocab_size)
    with torch.no_grad():
        full = model(idx)[0]
        cache = model.new_kv_cache(2, cfg.block_size if prealloc else None)
        chunks = [model(idx[:, a:b], kv_cache=cache)[0] for a, b in ((0, 5), (5, 6), (6, 9), (9, 24))]
    assert cache.length == cfg.block_size
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-5, rtol=0)
    torch.testing.assert_close(incremental_logits(model, idx), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gpt2", "rope-gqa-swiglu-rmsnorm"])
def test_generate_with_and_without_cache(name):
    torch.manual_seed(1)
    cfg = VARIANTS[name]
    model = GPT(cfg).eval()
    prompt = _ids(2, 4, cfg.vocab_size)
    greedy = model.generate(prompt, 12)
    assert torch.equal(greedy, model.generate(prompt, 12, use_cache=False))
    # greedy = argmax of the teacher-forced logits of its own output
    with torch.no_grad():
        logits = model(greedy[:, :-1])[0]
    assert torch.equal(greedy[:, 4:], logits[:, 3:].argmax(-1))
    a = model.generate(prompt, 12, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(0))
    b = model.generate(
        prompt, 12, temperature=1.0, top_k=5, use_cache=False, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(a, b)
    assert torch.equal(model.generate(prompt, 0), prompt)
    with pytest.raises(ValueError, match="block_size"):
        model.generate(prompt, cfg.block_size)


def test_model_is_causal():
    model = GPT(VARIANTS["rope-gqa-swiglu-rmsnorm"]).eval()
    assert_causal(lambda ids: model(ids)[0], _ids(2, 10, 37), vocab_size=37)


# ---- pieces ----------------------------------------------------------------------------------------


def test_fused_norms_equal_companion_formulas():
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(0))
    for config in (GPTConfig.baby(n_embd=16, n_head=2), GPTConfig.llama_style(n_embd=16, n_head=2)):
        model = GPT(config)
        fused = model.blocks[0].ln_1
        with torch.no_grad():
            fused.weight.normal_(1.0, 0.3)
            if getattr(fused, "bias", None) is not None:
                fused.bias.normal_(0.0, 0.3)
        plain = (
            LayerNorm(16, config.norm_eps)
            if config.norm == "layernorm"
            else RMSNorm(16, config.norm_eps, elementwise_affine=True)
        )
        plain.load_state_dict(fused.state_dict())
        torch.testing.assert_close(fused(x), plain(x), atol=1e-6, rtol=0)


def test_fused_and_explicit_attention_agree():
    torch.manual_seed(0)
    cfg = VARIANTS["alibi"]
    a = GPT(cfg).eval()
    b = GPT(dataclasses.replace(cfg, fused_attention=False)).eval()
    b.load_state_dict(a.state_dict())
    idx = _ids(2, 24, 37)
    with torch.no_grad():
        torch.testing.assert_close(a(idx)[0], b(idx)[0], atol=1e-5, rtol=0)


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = dataclasses.replace(VARIANTS["gpt2"], dropout=0.1)
    torch.manual_seed(0)
    plain = GPT(cfg, dtype=torch.float64)
    ckpt = GPT(dataclasses.replace(cfg, gradient_checkpointing=True), dtype=torch.float64)
    ckpt.load_state_dict(plain.state_dict())
    idx = _ids(2, 24, 37)
    for model in (plain, ckpt):
        torch.manual_seed(3)  # same dropout masks; checkpoint() replays the RNG state on recompute
        model(idx, idx)[1].backward()
    for p, q in zip(plain.parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-12, rtol=0)


def test_initialization_scales():
    torch.manual_seed(0)
    model = GPT(GPTConfig.baby(n_layer=8, n_embd=256))
    std = model.blocks[0].mlp.fc_in.weight.std().item()
    residual = model.blocks[0].mlp.fc_out.weight.std().item()
    assert abs(std - 0.02) < 0.001
    assert abs(residual - 0.02 / 4) < 0.0005  # 0.02 / sqrt(2 * 8)
    assert model.lm_head.weight is model.wte.weight
    assert float(model.blocks[0].attn.q_proj.bias.detach().abs().max()) == 0.0


def test_untrained_loss_is_near_log_vocab():
    torch.manual_seed(0)
    model = GPT(GPTConfig.baby(vocab_size=65))
    idx = _ids(4, 64, 65)
    _, loss = model(idx, _ids(4, 64, 65, seed=1))
    assert abs(loss.item() - torch.log(torch.tensor(65.0)).item()) < 0.05


def test_config_round_trip_and_from_config():
    cfg = VARIANTS["rope-gqa-swiglu-rmsnorm"]
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    assert GPT.from_config(cfg.to_dict()).config == cfg
    assert GPT.from_config(cfg, n_layer=1).config.n_layer == 1
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPTConfig.from_dict({"n_layers": 3})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_embd": 30, "n_head": 4}, "not divisible by n_head"),
        ({"n_head": 4, "n_kv_head": 3}, "not divisible by n_kv_head"),
        ({"position": "xpos"}, "position"),
        ({"position": "learned", "rope_scaling": "linear"}, "only position='rope' is rescaled"),
        ({"position": "rope", "rope_scaling": "yarn"}, "rope_scaling"),
        ({"position": "rope", "rope_scaling_factor": 0.5}, "rope_scaling_factor"),
        ({"norm_position": "sandwich"}, "norm_position"),
        ({"dropout": 1.0}, "dropout"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"n_embd": 12, "n_head": 4, "position": "rope"}, "even head width"),
    ],
)
def test_bad_config_raises_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{"n_embd": 32, "n_head": 4, **kwargs})


def test_each_position_scheme_is_what_it_claims():
    """The sinusoidal table is added at RMS init_std, T5's bias is learned but starts at zero, "none"
    adds nothing, and a linearly rescaled RoPE at position s·p rotates like the plain one at p."""
    ids = _ids(2, 24, 37)
    models = {name: GPT(VARIANTS[name]).eval() for name in ("gpt2", "sinusoidal", "t5-bias", "no-positions")}
    base = models["no-positions"]
    for name in ("sinusoidal", "t5-bias"):  # same weights as the position-free model, positions added
        models[name].load_state_dict(base.state_dict(), strict=False)
    with torch.no_grad():
        plain, _ = base(ids)
        # at initialization T5's zero bias changes nothing; the sinusoidal table does
        torch.testing.assert_close(models["t5-bias"](ids)[0], plain, atol=0, rtol=0)
        assert (models["sinusoidal"](ids)[0] - plain).abs().max() > 1e-4
        models["t5-bias"].t5_bias.embedding.weight.normal_()
        assert (models["t5-bias"](ids)[0] - plain).abs().max() > 1e-4
    table = models["sinusoidal"].sinusoidal.encoding(24)
    rms = float((0.02 * math.sqrt(2.0) * table).pow(2).mean().sqrt())
    assert abs(rms - 0.02) < 1e-3
    assert param_count(VARIANTS["t5-bias"]) - param_count(VARIANTS["no-positions"]) == 24 * 4  # 24 buckets
    # the position modules are built where and how the model is
    for name in ("t5-bias", "sinusoidal"):
        on_meta = GPT(VARIANTS[name], device="meta", dtype=torch.float64)
        assert {t.device.type for t in [*on_meta.parameters(), *on_meta.buffers()]} == {"meta"}, name
        assert {t.dtype for t in on_meta.parameters()} == {torch.float64}, name
    plain_rope = GPT(VARIANTS["rope-gqa-swiglu-rmsnorm"]).rotary
    stretched = GPT(dataclasses.replace(VARIANTS["rope-gqa-swiglu-rmsnorm"], rope_scaling="linear",
                                        rope_scaling_factor=4.0)).rotary  # fmt: skip
    cos_p, _ = plain_rope.cos_sin(torch.arange(10), device="cpu")
    cos_sp, _ = stretched.cos_sin(4 * torch.arange(10), device="cpu")
    torch.testing.assert_close(cos_sp, cos_p, atol=1e-6, rtol=0)


def test_bad_inputs_raise_clear_errors():
    model = GPT(VARIANTS["gpt2"]).eval()
    with pytest.raises(TypeError, match="idx"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 37\)"):
        model(torch.tensor([[0, 37]]))
    with pytest.raises(ValueError, match="block_size=24"):
        model(_ids(1, 25, 37))
    with pytest.raises(ValueError, match="targets"):
        model(_ids(1, 5, 37), _ids(1, 4, 37))
    with pytest.raises(ValueError, match="kv_cache"):
        model(_ids(1, 5, 37), kv_cache=model.new_kv_cache(2))
    cache = model.new_kv_cache(1)
    model(_ids(1, 20, 37), kv_cache=cache)
    with pytest.raises(ValueError, match="exceed block_size"):
        model(_ids(1, 5, 37), kv_cache=cache)
    rope = GPT(VARIANTS["rope-gqa-swiglu-rmsnorm"]).eval()
    assert rope(_ids(1, 30, 37))[0].shape == (1, 30, 37)  # RoPE has no table to run out of


# ---- GPU -------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_bf16_autocast_close_to_fp32_on_cuda():
    torch.manual_seed(0)
    model = GPT(VARIANTS["rope-gqa-swiglu-rmsnorm"], device="cuda").eval()
    idx = _ids(2, 24, 37).cuda()
    with torch.no_grad():
        ref = model(idx)[0]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = model(idx)[0]
    torch.testing.assert_close(low.float(), ref, atol=2e-2, rtol=2e-2)


@pytest.mark.gpu
def test_compiled_model_matches_eager_on_cuda():
    torch.manual_seed(0)
    model = GPT(VARIANTS["gpt2"], device="cuda").eval()
    idx = _ids(2, 24, 37).cuda()
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(idx)[0], model(idx)[0], atol=1e-4, rtol=1e-4)
