"""Tests of companion.generate: processors vs Hugging Face, sampling distributions (chi-square),
KV-cache generation vs the no-cache path, beam search vs HF ``generate`` and vs brute force."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from companion.generate import beam_search, beam_search_generate, generate, greedy, stream
from companion.models.gpt import GPT, GPTConfig
from companion.nn.kv_cache import KVCache
from companion.sampling import (
    apply_repetition_penalty,
    apply_temperature,
    min_p_filter,
    process_logits,
    sample,
    top_k_filter,
    top_p_filter,
)

# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_and_ours():
    """A small random GPT-2 (weights scaled ×3 so the distributions are peaked and eos gets chosen) and
    our GPT with the same weights."""
    _ = torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
    )
    hf = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.mul_(3)
    return hf, GPT.from_hf_gpt2(hf).eval()


@pytest.fixture(scope="module")
def small_gpt():
    _ = torch.manual_seed(1)
    return GPT(GPTConfig(vocab_size=40, block_size=96, n_layer=2, n_head=2, n_embd=32, dropout=0.0)).eval()


def _logits(rows=64, v=100, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, v, generator=g, dtype=dtype) * 2


# --------------------------------------------------------------------------------------------------
# logit processors vs Hugging Face
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5])
def test_temperature_matches_hf(t):
    z = _logits()
    assert torch.equal(apply_temperature(z, t), TemperatureLogitsWarper(t)(None, z))


@pytest.mark.parametrize("k", [1, 5, 37, 100, 500])
def test_top_k_matches_hf(k):
    z = _logits(seed=k)
    assert torch.equal(top_k_filter(z, k), TopKLogitsWarper(k)(None, z))


def test_top_k_keeps_ties_like_hf():
    z = torch.tensor([[3.0, 2.0, 2.0, 2.0, 1.0]])
    ours = top_k_filter(z, 2)
    assert torch.equal(ours, TopKLogitsWarper(2)(None, z))
    assert int(torch.isfinite(ours).sum()) == 4  # the three tied at the 2nd value all stay


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p_matches_hf(p):
    z = _logits(seed=int(p * 100))
    assert torch.equal(top_p_filter(z, p), TopPLogitsWarper(p)(None, z))


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_min_p_matches_hf(p):
    z = _logits(seed=3)
    assert torch.equal(torch.isfinite(min_p_filter(z, p)), torch.isfinite(MinPLogitsWarper(p)(None, z)))


@pytest.mark.parametrize("penalty", [0.7, 1.3, 2.0])
def test_repetition_penalty_matches_hf(penalty):
    z = _logits(rows=4, v=30)
    ids = torch.randint(0, 30, (4, 12), generator=torch.Generator().manual_seed(1))
    ours = apply_repetition_penalty(z, ids, penalty)
    assert torch.equal(ours, RepetitionPenaltyLogitsProcessor(penalty)(ids, z.clone()))


def test_process_logits_matches_hf_chain():
    z = _logits(rows=8, v=60, dtype=torch.float32)
    ids = torch.randint(0, 60, (8, 7), generator=torch.Generator().manual_seed(2))
    ref = z.clone()
    for proc in (
        RepetitionPenaltyLogitsProcessor(1.4),
        TemperatureLogitsWarper(0.7),
        TopKLogitsWarper(20),
        TopPLogitsWarper(0.8),
    ):
        ref = proc(ids, ref)
    ours = process_logits(z, ids, temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.4)
    assert torch.equal(ours, ref)


def test_top_p_example_from_the_chapter():
    p = torch.tensor([0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.03], dtype=torch.float64)
    kept = torch.isfinite(top_p_filter(p.log(), 0.9))
    assert kept.tolist() == [True] * 5 + [False] * 2
    assert int((p > 0.9).sum()) == 0  # a per-token threshold would keep nothing


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-8, 8, allow_nan=False), min_size=2, max_size=30),
    st.floats(0.01, 0.99),
)
def test_top_p_is_the_smallest_prefix_reaching_p(values, p):
    z = torch.tensor(values, dtype=torch.float64)
    probs = z.softmax(-1)
    kept = torch.isfinite(top_p_filter(z, p))
    assert kept.any()
    kept_probs = probs[kept]
    assert float(kept_probs.sum()) >= p - 1e-12 or bool(kept.all())
    # dropping the least likely kept token falls below p: the set is minimal
    assert float(kept_probs.sum() - kept_probs.min()) < p + 1e-12
    # it is a prefix of the sorted order: every kept token is at least as likely as every removed one
    if (~kept).any():
        assert float(kept_probs.min()) >= float(probs[~kept].max())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=20), st.integers(1, 25))
def test_top_k_keeps_at_least_min_k_v(values, k):
    z = torch.tensor(values)
    kept = torch.isfinite(top_k_filter(z, k))
    assert int(kept.sum()) >= min(k, len(values))
    assert float(z[kept].min()) >= float(z[~kept].max()) if (~kept).any() else True


def test_temperature_on_probabilities_is_a_no_op():
    p = _logits(rows=1).softmax(-1)
    assert torch.allclose((p / 3.0) / (p / 3.0).sum(), p, atol=1e-15)
    assert not torch.allclose(apply_temperature(p.log(), 3.0).softmax(-1), p, atol=1e-3)


@pytest.mark.parametrize(
    ("fn", "arg", "name"),
    [
        (apply_temperature, 0.0, "temperature"),
        (apply_temperature, -1.0, "temperature"),
        (top_k_filter, 0, "k"),
        (top_k_filter, 2.5, "k"),
        (top_p_filter, 0.0, "p"),
        (top_p_filter, 1.5, "p"),
        (min_p_filter, 0.0, "p_min"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(fn, arg, name):
    with pytest.raises(ValueError, match=name):
        fn(_logits(rows=1), arg)


def test_bad_types_raise():
    with pytest.raises(TypeError, match="logits"):
        top_k_filter([1.0, 2.0], 1)
    with pytest.raises(TypeError, match="rng"):
        sample(_logits(rows=1), rng=0)
    with pytest.raises(ValueError, match="penalty"):
        apply_repetition_penalty(_logits(rows=1), torch.zeros(1, 2, dtype=torch.long), 0.0)


# --------------------------------------------------------------------------------------------------
# sampling distributions: chi-square on many seeded draws
# --------------------------------------------------------------------------------------------------


def _draws(logits, n, **kw):
    g = torch.Generator().manual_seed(1234)
    rows = logits.expand(n, -1)
    return torch.bincount(sample(rows, g, **kw), minlength=logits.shape[-1]).double()


@pytest.mark.parametrize(
    "kw",
    [
        {"temperature": 1.0},
        {"temperature": 0.6},
        {"temperature": 1.0, "top_k": 4},
        {"temperature": 1.5, "top_p": 0.8},
    ],
)
def test_sampling_distribution_chi_square(kw):
    z = torch.tensor([2.0, 1.5, 1.0, 0.4, 0.0, -0.5, -1.0, -2.0])
    n = 40_000
    counts = _draws(z, n, **kw)
    target = process_logits(
        z[None], temperature=kw["temperature"], top_k=kw.get("top_k"), top_p=kw.get("top_p")
    )
    probs = target.double().softmax(-1)[0]
    support = probs > 0
    assert counts[~support].sum() == 0  # filtered tokens are never drawn
    right = probs[support] / probs[support].sum()
    _, p_right = chisquare(counts[support], right * n)
    assert p_right > 1e-3, p_right
    # power: a 25 % wrong temperature (same filters) is rejected
    near = process_logits(
        z[None], temperature=kw["temperature"] * 1.25, top_k=kw.get("top_k"), top_p=kw.get("top_p")
    )
    wrong = near.double().softmax(-1)[0][support] + 1e-12
    _, p_wrong = chisquare(counts[support], wrong / wrong.sum() * n)
    assert p_wrong < 1e-6, p_wrong


def test_temperature_zero_and_tiny_p_are_argmax():
    z = _logits(rows=16, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample(z, g, temperature=0.0), z.argmax(-1))
    assert torch.equal(sample(z, g, temperature=1.0, top_p=1e-6), z.argmax(-1))
    assert torch.equal(sample(z, g, temperature=1.0, top_k=1), z.argmax(-1))


def test_seeded_generator_is_reproducible():
    z = _logits(rows=32, dtype=torch.float32)
    a = sample(z, torch.Generator().manual_seed(7), temperature=1.0)
    b = sample(z, torch.Generator().manual_seed(7), temperature=1.0)
    assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------------
# generation with a model: cache vs no cache, stop tokens, streaming
# --------------------------------------------------------------------------------------------------


def test_cache_equals_no_cache_greedy_and_sampled(small_gpt):
    prompt = torch.randint(0, 40, (3, 6), generator=torch.Generator().manual_seed(0))
    a = generate(small_gpt, prompt, 40, use_cache=True)
    b = generate(small_gpt, prompt, 40, use_cache=False)
    assert torch.equal(a, b)
    kw = {"temperature": 0.9, "top_k": 20, "top_p": 0.95}
    s1 = generate(small_gpt, prompt, 30, generator=torch.Generator().manual_seed(3), use_cache=True, **kw)
    s2 = generate(small_gpt, prompt, 30, generator=torch.Generator().manual_seed(3), use_cache=False, **kw)
    assert torch.equal(s1, s2)


def test_cached_logits_match_full_forward(small_gpt):
    seq = generate(small_gpt, torch.tensor([[1, 2, 3]]), 50)
    with torch.no_grad():
        full, _ = small_gpt(seq)
        cache = small_gpt.new_kv_cache(1)
        steps = [small_gpt(seq[:, :3], kv_cache=cache)[0]]
        steps += [small_gpt(seq[:, t : t + 1], kv_cache=cache)[0] for t in range(3, seq.shape[1])]
    inc = torch.cat(steps, dim=1)
    assert (inc - full).abs().max() <= 1e-5


def test_greedy_generate_matches_hf(hf_and_ours):
    hf, ours = hf_and_ours
    for seed in range(3):
        prompt = torch.randint(1, 50, (1, 5), generator=torch.Generator().manual_seed(seed))
        ref = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=20,
            pad_token_id=0,
            eos_token_id=None,
        )
        assert torch.equal(generate(ours, prompt, 20), ref)


def test_sampling_generate_matches_hf_on_the_same_global_seed(hf_and_ours):
    hf, ours = hf_and_ours
    prompt = torch.randint(1, 50, (2, 4), generator=torch.Generator().manual_seed(5))
    kw = {"temperature": 0.8, "top_k": 10, "top_p": 0.9}
    _ = torch.manual_seed(11)
    ref = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        do_sample=True,
        max_new_tokens=15,
        pad_token_id=0,
        eos_token_id=None,
        **kw,
    )
    _ = torch.manual_seed(11)
    assert torch.equal(generate(ours, prompt, 15, **kw), ref)


def test_stop_tokens_and_padding(small_gpt):
    prompt = torch.randint(0, 40, (4, 3), generator=torch.Generator().manual_seed(4))
    free = generate(small_gpt, prompt, 30)
    stop = int(free[0, 3 + 2])  # the third token row 0 produces
    out = generate(small_gpt, prompt, 30, stop_tokens=[stop], pad_token_id=39)
    for row in range(4):
        gen = out[row, 3:].tolist()
        if stop in gen:
            i = gen.index(stop)
            assert gen[: i + 1] == free[row, 3 : 3 + i + 1].tolist()
            assert all(t == 39 for t in gen[i + 1 :])
        else:
            assert gen == free[row, 3 : 3 + len(gen)].tolist()
    assert out[0, 3:].tolist().index(stop) <= 2
    single = generate(small_gpt, prompt[:1], 30, stop_tokens=stop)
    assert single.shape[1] - 3 == out[0, 3:].tolist().index(stop) + 1  # ends right after the stop token


def test_stream_and_callback_yield_the_same_tokens(small_gpt):
    prompt = torch.tensor([5, 6, 7])
    full = generate(small_gpt, prompt, 25, temperature=1.0, generator=torch.Generator().manual_seed(2))
    streamed = list(
        stream(small_gpt, prompt, 25, temperature=1.0, generator=torch.Generator().manual_seed(2))
    )
    assert streamed == full[0, 3:].tolist()
    seen = []
    generate(small_gpt, prompt, 10, callback=lambda step, tok: seen.append((step, int(tok[0]))))
    assert [s for s, _ in seen] == list(range(10))
    stop = streamed[4]
    assert (
        list(
            stream(
                small_gpt,
                prompt,
                25,
                stop_tokens=stop,
                temperature=1.0,
                generator=torch.Generator().manual_seed(2),
            )
        )[-1]
        == stop
    )


def test_generate_argument_errors(small_gpt):
    prompt = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="temperature"):
        generate(small_gpt, prompt, 3, temperature=-0.5)
    with pytest.raises(ValueError, match="top_p"):
        generate(small_gpt, prompt, 3, top_p=0.0)
    with pytest.raises(ValueError, match="top_k"):
        generate(small_gpt, prompt, 3, top_k=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(small_gpt, prompt, -1)
    with pytest.raises(TypeError, match="idx"):
        generate(small_gpt, torch.tensor([[1.0, 2.0]]), 3)
    with pytest.raises(ValueError, match="block_size"):
        generate(small_gpt, prompt, 200)
    assert generate(small_gpt, prompt, 200, use_cache=False).shape == (1, 202)  # crops the context instead


def test_kv_cache_reorder():
    cache = KVCache(n_layers=2, batch_size=3, n_kv_heads=1, head_dim=2)
    k = torch.arange(3.0)[:, None, None, None].expand(3, 1, 4, 2).clone()
    for layer in range(2):
        cache.update(layer, k, -k)
    cache.reorder(torch.tensor([2, 2, 0]))
    kk, vv = cache.get(1)
    assert kk[:, 0, 0, 0].tolist() == [2.0, 2.0, 0.0] and vv[:, 0, 0, 0].tolist() == [-2.0, -2.0, 0.0]
    with pytest.raises(ValueError, match="index"):
        cache.reorder(torch.tensor([3]))


# --------------------------------------------------------------------------------------------------
# beam search
# --------------------------------------------------------------------------------------------------

HF_BEAM_CASES = [
    (3, 1.0, False),
    (4, 0.0, True),
    (4, 2.0, "never"),
    (2, -1.0, False),
    (5, 1.0, False),
    (3, 0.5, True),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_generate_matches_hf(hf_and_ours, seed):
    hf, ours = hf_and_ours
    prompt = torch.randint(1, 50, (1, 5), generator=torch.Generator().manual_seed(seed))
    free = generate(ours, prompt, 12)[0, 5:].tolist()
    eos = Counter(free).most_common(1)[0][0]  # a token the model likes, so hypotheses do finish
    for k, lp, es in HF_BEAM_CASES:
        ref = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), num_beams=k, do_sample=False, max_new_tokens=12,
            length_penalty=lp, early_stopping=es, eos_token_id=eos, pad_token_id=eos,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
        ours_ids, score = beam_search_generate(
            ours, prompt, k, 12, length_penalty=lp, early_stopping=es, eos_token_id=eos
        )
        assert torch.equal(ours_ids, ref.sequences), (k, lp, es)
        assert abs(score - float(ref.sequences_scores[0])) <= 1e-4
        no_cache, _ = beam_search_generate(
            ours, prompt, k, 12, length_penalty=lp, early_stopping=es, eos_token_id=eos, use_cache=False
        )
        assert torch.equal(no_cache, ours_ids)


def test_beam_search_hf_cases_include_finished_hypotheses(hf_and_ours):
    """Some compared settings end on eos before max_new_tokens (else the eos logic would be untested)."""
    _, ours = hf_and_ours
    finished_early = 0
    for seed in range(3):
        prompt = torch.randint(1, 50, (1, 5), generator=torch.Generator().manual_seed(seed))
        eos = Counter(generate(ours, prompt, 12)[0, 5:].tolist()).most_common(1)[0][0]
        for k, lp, es in HF_BEAM_CASES:
            ids, _ = beam_search_generate(
                ours, prompt, k, 12, length_penalty=lp, early_stopping=es, eos_token_id=eos
            )
            finished_early += ids.shape[1] < 17
    assert finished_early >= 1


def _toy_step(v=3, seed=0):
    """A toy 'model': next-token log-probs depend on the whole prefix (hashed), V = v."""
    table: dict[tuple[int, ...], torch.Tensor] = {}

    def step(prefixes: torch.Tensor) -> torch.Tensor:
        out = []
        for row in prefixes.tolist():
            key = tuple(row)
            if key not in table:
                g = torch.Generator().manual_seed(hash(key) % (2**31) + seed)
                table[key] = torch.log_softmax(torch.randn(v, generator=g, dtype=torch.float64) * 1.5, -1)
            out.append(table[key])
        return torch.stack(out)

    return step


@pytest.mark.parametrize("seed", range(4))
def test_toy_beam_search_full_width_is_brute_force_optimum(seed):
    step = _toy_step(seed=seed)
    best, best_score = None, -float("inf")
    for seq in itertools.product(range(3), repeat=3):
        s, prefix = 0.0, [0]
        for tok in seq:
            s += float(step(torch.tensor([prefix]))[0, tok])
            prefix.append(tok)
        if s > best_score:
            best, best_score = list(seq), s
    seqs, scores, stats = beam_search(step, bos=0, K=27, max_len=3)
    assert seqs[0] == best and abs(float(scores[0]) - best_score) < 1e-12
    assert stats.model_calls == 3 and stats.scored == 3 * 27 * 3


@pytest.mark.parametrize("seed", range(3))
def test_toy_beam_k1_is_greedy(seed):
    step = _toy_step(v=5, seed=seed)
    seqs, _, stats = beam_search(step, bos=0, K=1, max_len=6)
    assert seqs[0] == greedy(step, 0, 6)
    assert stats.model_calls == 6 and stats.scored == 6 * 5


def test_toy_beam_keeps_finished_hypotheses_and_length_penalty():
    # V = 3, eos = 2. From bos: eos has p = 0.5 (finishes at once), token 0/1 p = 0.25 each, then
    # every continuation is certain to take token 0. Without a length penalty the short hypothesis wins.
    def step(prefixes):
        rows = []
        for row in prefixes.tolist():
            rows.append([0.25, 0.25, 0.5] if len(row) == 1 else [1.0 - 2e-9, 1e-9, 1e-9])
        return torch.tensor(rows, dtype=torch.float64).log()

    seqs, scores, _ = beam_search(step, bos=9, K=2, max_len=4, eos=2)
    assert seqs[0] == [2]  # the finished hypothesis was kept and wins on total log-probability
    assert abs(float(scores[0]) - math.log(0.5)) < 1e-9
    # with alpha = 1 the scores are divided by the length: log 0.25 / 4 > log 0.5 / 1, the long one wins
    seqs_lp, scores_lp, _ = beam_search(step, bos=9, K=2, max_len=4, eos=2, length_penalty=1.0)
    assert len(seqs_lp[0]) == 4 and seqs_lp[0][0] in (0, 1)
    assert abs(float(scores_lp[0]) - math.log(0.25) / 4) < 1e-6
    wide, _, _ = beam_search(step, bos=9, K=3, max_len=4, eos=2, length_penalty=1.0)
    assert wide[2] == [2]  # the finished short hypothesis is kept and ranked third


def test_beam_search_errors():
    step = _toy_step()
    with pytest.raises(ValueError, match="K"):
        beam_search(step, 0, 0, 3)
    with pytest.raises(ValueError, match="max_len"):
        greedy(step, 0, 0)
    with pytest.raises(ValueError, match="step_fn"):
        greedy(lambda p: torch.zeros(3), 0, 2)


def test_generated_ids_are_ordinary_tensors_usable_for_training(small_gpt):
    """Decoding runs under torch.inference_mode; its output must still work with autograd."""
    out = generate(small_gpt, torch.tensor([[1, 2, 3]]), 5)
    assert not out.is_inference()
    seen = []
    generate(small_gpt, torch.tensor([[1, 2, 3]]), 3, callback=lambda step, t: seen.append(t.is_inference()))
    assert seen == [False, False, False]
    model = GPT(small_gpt.config).train()
    loss = model(out[:, :-1], out[:, 1:])[1]
    loss.backward()
    assert model.wte.weight.grad is not None


def test_decoding_leaves_no_inference_tensors_in_the_model():
    """RoPE's cos/sin cache first grows during decoding here; a later compiled training step saves
    it for backward, which an inference-mode tensor would not allow."""
    _ = torch.manual_seed(0)
    config = GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=16, position="rope")
    model = GPT(config).eval()
    generate(model, torch.tensor([[1, 2]]), 4)
    buffers = [b for b in model.buffers() if b.numel()]
    assert buffers and not any(b.is_inference() for b in buffers)
    model.train()
    step = torch.compile(lambda x: model(x[:, :-1], x[:, 1:])[1], backend="aot_eager")
    step(torch.randint(0, 40, (2, 9))).backward()
    assert all(p.grad is not None for p in model.parameters())


# --------------------------------------------------------------------------------------------------
# nothing silently wrong: training mode, NaN
# --------------------------------------------------------------------------------------------------


def test_decoding_a_model_left_in_training_mode_is_deterministic_and_restores_the_mode():
    """Before: greedy decoding after training with dropout was random (the model stayed in train mode)."""
    _ = torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=40, block_size=64, n_layer=2, n_head=2, n_embd=32, dropout=0.5))
    prompt = torch.tensor([[1, 2, 3]])
    model.eval()
    want = generate(model, prompt, 12)
    want_beam = beam_search_generate(model, prompt, 3, 8)[0]
    model.train()
    for _ in range(3):
        assert torch.equal(generate(model, prompt, 12), want)
        assert torch.equal(torch.tensor(list(stream(model, prompt, 12)))[None], want[:, 3:])
        assert torch.equal(beam_search_generate(model, prompt, 3, 8)[0], want_beam)
        assert model.training  # handed back in the caller's mode
    model.eval()
    generate(model, prompt, 2)
    assert not model.training
    model.train()
    assert torch.equal(model.generate(prompt, 12), want)  # GPT's own minimal decoder too


def test_nan_logits_raise_instead_of_choosing_token_zero(small_gpt):
    """Before: NaN logits became argmax 0 in generate, and NaN log-probs became -inf beam scores."""
    import copy

    broken = copy.deepcopy(small_gpt)
    with torch.no_grad():
        broken.lm_head.weight[5, 0] = float("nan")
    prompt = torch.tensor([[1, 2, 3]])
    for call in (
        lambda: generate(broken, prompt, 4),
        lambda: generate(broken, prompt, 4, temperature=1.0, use_cache=False),
        lambda: beam_search_generate(broken, prompt, 2, 4),
        lambda: broken.generate(prompt, 4),
    ):
        with pytest.raises(ValueError, match="NaN"):
            call()

    def nan_step(prefixes):
        out = torch.log_softmax(torch.zeros(prefixes.shape[0], 5), dim=-1)
        out[:, 2] = float("nan")
        return out

    with pytest.raises(ValueError, match=r"step_fn: .* NaN"):
        greedy(nan_step, bos=0, max_len=3)
    with pytest.raises(ValueError, match=r"step_fn: .* NaN"):
        beam_search(nan_step, 0, 2, 3)


def test_min_new_tokens_bans_the_stop_tokens_until_then():
    """A model that always prefers token 0 stops at once; with min_new_tokens it runs that long first
    (Hugging Face's ``min_new_tokens``; tests/test_llama.py compares 40 tokens with transformers')."""

    class PrefersZero(torch.nn.Module):
        config = type("C", (), {"block_size": 64})()

        def forward(self, idx, targets=None, kv_cache=None):
            logits = torch.zeros(idx.shape[0], idx.shape[1], 5)
            logits[..., 0] = 10.0
            logits[..., 3] = 5.0
            return logits, None

    model, prompt = PrefersZero(), torch.tensor([[1, 2]])
    assert generate(model, prompt, 6, stop_tokens=[0], use_cache=False).tolist() == [[1, 2, 0]]
    out = generate(model, prompt, 6, stop_tokens=[0], use_cache=False, min_new_tokens=3)
    assert out.tolist() == [[1, 2, 3, 3, 3, 0]]
    with pytest.raises(ValueError, match="min_new_tokens"):
        generate(model, prompt, 4, min_new_tokens=2)
    with pytest.raises(ValueError, match="min_new_tokens"):
        generate(model, prompt, 4, stop_tokens=[0], min_new_tokens=-1)
