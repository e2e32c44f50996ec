"""Exercises of the Decoding chapter (``notebooks/transformer/decoding.ipynb``).

The filters are compared with Hugging Face's logits warpers and with the chapter's worked example;
sampling is checked on seeded draws; greedy and beam search run on toy "models" (step functions)
whose optimum is found by brute-force enumeration.
"""

from __future__ import annotations

import itertools

import torch

from companion.generate import beam_search, greedy
from companion.grading.checks import as_number, expect, expect_close
from companion.grading.registry import Exercise, register
from companion.sampling import apply_temperature, sample, top_k_filter, top_p_filter

EXAMPLE = torch.tensor([0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.03], dtype=torch.float64)

# --------------------------------------------------------------------------------------------------
# decoding.sampling-filters
# --------------------------------------------------------------------------------------------------

FILTERS = register(
    Exercise(
        id="decoding.sampling-filters",
        title="Temperature, top-k, top-p and sampling",
        names=("apply_temperature", "top_k_filter", "top_p_filter", "sample"),
        references=(apply_temperature, top_k_filter, top_p_filter, sample),
        signature='''def apply_temperature(logits, T):
    """logits (..., V) divided by T > 0."""

def top_k_filter(logits, k):
    """Keep the k largest logits of each row (every logit tied with the k-th largest too), others -inf."""

def top_p_filter(logits, p):
    """Keep the smallest set of most probable tokens whose probability sums to >= p; others -inf.
    The most probable token is always kept."""

def sample(logits, rng, T, k, p):
    """One token per row of logits (V,) or (B, V): T == 0 -> argmax; else apply temperature first,
    then top-k (k None = off), then top-p (p None = off); draw with torch.multinomial(generator=rng)."""''',
        hint="top-p: sort descending, keep a token while the mass *before* it is < p; T divides logits.",
    )
)


def _rand_logits(rows=16, v=50, seed=0):
    return torch.randn(rows, v, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


def _kept(x):
    return torch.isfinite(x)


@FILTERS.check(
    "the chapter's example: the p = 0.9 nucleus of [0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.03] is 5 tokens"
)
def _example(apply_temperature, top_k_filter, top_p_filter, sample):
    kept = _kept(top_p_filter(EXAMPLE.log(), 0.9))
    expect(
        kept.tolist() == [True] * 5 + [False] * 2, f"expected the first 5 tokens kept, got {kept.tolist()}"
    )
    kept = _kept(top_p_filter(EXAMPLE.log(), 0.45))
    expect(
        kept.tolist() == [True] + [False] * 6, f"p = 0.45: expected only the top token, got {kept.tolist()}"
    )


@FILTERS.check("temperature, top-k and top-p equal Hugging Face's warpers (kept sets and values)")
def _vs_hf(apply_temperature, top_k_filter, top_p_filter, sample):
    # Imported here, not at module level: importing transformers is slow and prints a tqdm warning in
    # notebooks, and every chapter's grader imports this module.
    from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    z = _rand_logits()
    for t in (0.5, 2.0):
        expect_close(
            apply_temperature(z, t), TemperatureLogitsWarper(t)(None, z), f"temperature {t}", atol=1e-12
        )
    for k in (1, 3, 10):
        got, ref = top_k_filter(z, k), TopKLogitsWarper(k)(None, z)
        expect(torch.equal(_kept(got), _kept(ref)), f"top-k k={k}: kept set differs from TopKLogitsWarper")
        expect_close(got[_kept(ref)], z[_kept(ref)], f"top-k k={k} kept logits", atol=0)
    for p in (0.3, 0.75, 0.95):
        got, ref = top_p_filter(z, p), TopPLogitsWarper(p)(None, z)
        expect(torch.equal(_kept(got), _kept(ref)), f"top-p p={p}: kept set differs from TopPLogitsWarper")


@FILTERS.check("ties at the k-th logit are all kept")
def _ties(apply_temperature, top_k_filter, top_p_filter, sample):
    z = torch.tensor([[3.0, 2.0, 2.0, 2.0, 1.0]])
    n = int(_kept(top_k_filter(z, 2)).sum())
    expect(n == 4, f"k=2 on [3, 2, 2, 2, 1]: expected 4 kept (ties with the 2nd value stay), got {n}")


@FILTERS.check("at least one token is always kept; p -> 0 and T -> 0 reduce to argmax")
def _argmax(apply_temperature, top_k_filter, top_p_filter, sample):
    z = _rand_logits(rows=8).float()
    kept = _kept(top_p_filter(z, 1e-9))
    expect(bool((kept.sum(-1) == 1).all()), "top-p with a tiny p must keep exactly the top token of each row")
    expect(bool(kept[torch.arange(8), z.argmax(-1)].all()), "top-p with a tiny p must keep the argmax")
    g = torch.Generator().manual_seed(0)
    expect(
        torch.equal(sample(z, g, 0.0, None, None), z.argmax(-1)), "sample with T = 0 must return the argmax"
    )
    expect(
        torch.equal(sample(z, g, 1.0, None, 1e-9), z.argmax(-1)), "sample with p -> 0 must return the argmax"
    )


@FILTERS.check("dividing probabilities by T is a no-op, dividing logits is not")
def _no_op(apply_temperature, top_k_filter, top_p_filter, sample):
    z = _rand_logits(rows=1)
    p = z.softmax(-1)
    expect_close((p / 2.0) / (p / 2.0).sum(), p, "(p/T)/sum", atol=1e-15)
    sharp = apply_temperature(z, 0.5).softmax(-1)
    expect_close(sharp, (z / 0.5).softmax(-1), "softmax(apply_temperature(z, 0.5))", atol=1e-12)


@FILTERS.check("sample applies temperature before top-p (T = 3, p = 0.6 on [0.6, 0.3, 0.1] keeps 2 tokens)")
def _order(apply_temperature, top_k_filter, top_p_filter, sample):
    z = torch.tensor([0.6, 0.3, 0.1]).log().expand(4000, 3)
    counts = torch.bincount(sample(z, torch.Generator().manual_seed(1), 3.0, None, 0.6), minlength=3)
    expect(int(counts[2]) == 0, f"token 2 is outside the nucleus but was drawn {int(counts[2])} times")
    expect(
        int(counts[1]) > 1000, f"token 1 is in the T=3 nucleus (p≈0.44) but was drawn {int(counts[1])} / 4000"
    )


@FILTERS.check("sample draws from softmax(z/T) with the given generator (frequencies within 4 sigma)")
def _freq(apply_temperature, top_k_filter, top_p_filter, sample):
    z = torch.tensor([1.0, 0.5, 0.0, -1.0]).expand(20000, 4)
    a = sample(z, torch.Generator().manual_seed(3), 0.7, None, None)
    b = sample(z, torch.Generator().manual_seed(3), 0.7, None, None)
    expect(torch.equal(a, b), "the same seeded generator must give the same draws")
    freq = torch.bincount(a, minlength=4).double() / 20000
    target = (z[0].double() / 0.7).softmax(-1)
    sigma = (target * (1 - target) / 20000).sqrt()
    expect(
        bool(((freq - target).abs() <= 4 * sigma).all()), f"frequencies {freq.tolist()} vs {target.tolist()}"
    )


# --------------------------------------------------------------------------------------------------
# toy models for greedy and beam search
# --------------------------------------------------------------------------------------------------


def toy_step(v: int = 3, seed: int = 0):
    """A toy model: next-token log-probabilities ``(N, V)`` that depend on the whole prefix."""
    table: dict[tuple[int, ...], torch.Tensor] = {}

    def step(prefixes: torch.Tensor) -> torch.Tensor:
        rows = []
        for row in prefixes.tolist():
            key = tuple(row)
            if key not in table:
                g = torch.Generator().manual_seed(
                    (sum((i + 1) * 31**j for j, i in enumerate(key)) + seed) % 2**31
                )
                table[key] = torch.log_softmax(torch.randn(v, generator=g, dtype=torch.float64) * 1.5, -1)
            rows.append(table[key])
        return torch.stack(rows)

    return step


def _chain_argmax(step, bos, n, eos=None):
    seq = [bos]
    for _ in range(n):
        tok = int(step(torch.tensor([seq]))[0].argmax())
        seq.append(tok)
        if tok == eos:
            break
    return seq[1:]


GREEDY = register(
    Exercise(
        id="decoding.greedy",
        title="Greedy decoding",
        names=("greedy",),
        references=(greedy,),
        signature='''def greedy(step_fn, bos, max_len, eos=None):
    """step_fn(prefixes LongTensor (N, t)) -> log-probs (N, V). Start from [bos]; append the argmax
    token max_len times, stopping right after eos. Return the generated ids (list of int, no bos)."""''',
        hint="call step_fn on the (1, t) prefix, take argmax of row 0, append, stop after eos.",
    )
)


@GREEDY.check("follows the argmax chain on toy models (V = 5, 8 steps)")
def _greedy_chain(greedy):
    for seed in range(3):
        step = toy_step(5, seed)
        got = greedy(step, 0, 8)
        expect(
            list(got) == _chain_argmax(step, 0, 8),
            f"seed {seed}: got {got}, expected {_chain_argmax(step, 0, 8)}",
        )


@GREEDY.check("stops right after eos and returns it")
def _greedy_eos(greedy):
    step = toy_step(5, 1)
    free = _chain_argmax(step, 0, 8)
    eos = free[2]
    got = list(greedy(step, 0, 8, eos=eos))
    expect(
        got == free[: free.index(eos) + 1],
        f"with eos={eos}: expected {free[: free.index(eos) + 1]}, got {got}",
    )


@GREEDY.check("equals beam search with K = 1")
def _greedy_beam(greedy):
    step = toy_step(4, 7)
    seqs, _, _ = beam_search(step, 0, 1, 6)
    expect(list(greedy(step, 0, 6)) == seqs[0], f"greedy {greedy(step, 0, 6)} vs beam K=1 {seqs[0]}")


@GREEDY.check("equals Hugging Face greedy ids of a small random GPT-2")
def _greedy_hf(greedy):
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng():
        _ = torch.manual_seed(0)
        hf = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=30, n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
            )
        ).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.mul_(3)  # peaked distributions: no near-ties

    @torch.no_grad()
    def step(prefixes):
        return torch.log_softmax(hf(prefixes).logits[:, -1].double(), -1)

    ref = hf.generate(
        torch.tensor([[5]]), attention_mask=torch.ones(1, 1, dtype=torch.long), do_sample=False,
        max_new_tokens=10, pad_token_id=0, eos_token_id=None,
    )  # fmt: skip
    got = list(greedy(step, 5, 10))
    expect(got == ref[0, 1:].tolist(), f"expected {ref[0, 1:].tolist()}, got {got}")


# --------------------------------------------------------------------------------------------------
# decoding.beam-search
# --------------------------------------------------------------------------------------------------

BEAM = register(
    Exercise(
        id="decoding.beam-search",
        title="Beam search with instrumented cost",
        names=("beam_search",),
        references=(beam_search,),
        signature='''def beam_search(step_fn, bos, K, max_len, length_penalty=0.0, eos=None):
    """Start from K copies of [bos] with scores [0, -inf, ...]. Each step: ONE call of step_fn on the
    (K, t) beam, score all K*V continuations (sum of log-probs), keep the K best live ones; a
    continuation ending in eos is finished and set aside. At the end rank finished + live by
    score / len**length_penalty (len = generated tokens). Return (seqs, scores, stats): the K best
    token lists (no bos), best first; their normalized scores (tensor (K,)); stats with
    .model_calls and .scored (candidates scored)."""''',
        hint="flatten the (K, V) matrix of scores, take the top K, recover beam = i // V and token = i % V.",
    )
)


def _brute(step, v, t):
    best, best_s = None, -float("inf")
    for seq in itertools.product(range(v), repeat=t):
        s = sum(float(step(torch.tensor([[0, *seq[:i]]]))[0, tok]) for i, tok in enumerate(seq))
        if s > best_s:
            best, best_s = list(seq), s
    return best, best_s


@BEAM.check("K = V^T on a toy model (V = 3, T = 3) returns the brute-force optimum, and K distinct sequences")
def _beam_brute(beam_search):
    for seed in range(2):
        step = toy_step(3, seed)
        best, best_s = _brute(step, 3, 3)
        seqs, scores, _ = beam_search(step, 0, 27, 3)
        expect(list(seqs[0]) == best, f"seed {seed}: expected {best}, got {seqs[0]}")
        top = as_number(scores[0], "the best beam's score")
        expect(abs(top - best_s) < 1e-9, f"best score {top:.6f} vs {best_s:.6f}")
        distinct = {tuple(s) for s in seqs}
        expect(len(distinct) == 27, f"expected 27 distinct hypotheses, got {len(distinct)}")


@BEAM.check("K = 1 equals greedy")
def _beam_k1(beam_search):
    step = toy_step(5, 3)
    seqs, _, _ = beam_search(step, 0, 1, 6)
    expect(
        list(seqs[0]) == _chain_argmax(step, 0, 6), f"K=1 gave {seqs[0]}, greedy {_chain_argmax(step, 0, 6)}"
    )


@BEAM.check("stats: model_calls = T (batched over K) and scored = T*K*V")
def _beam_stats(beam_search):
    step = toy_step(4, 0)
    for k in (1, 2, 3):
        _, _, stats = beam_search(step, 0, k, 5)
        expect(stats.model_calls == 5, f"K={k}: expected 5 model calls, got {stats.model_calls}")
        expect(
            stats.scored == 5 * k * 4, f"K={k}: expected {5 * k * 4} scored candidates, got {stats.scored}"
        )


def _eos_step(prefixes):
    # bos -> eos (id 2) with p 0.5, tokens 0/1 with 0.25; afterwards token 0 is (almost) certain.
    rows = [[0.25, 0.25, 0.5] if len(r) == 1 else [1 - 2e-9, 1e-9, 1e-9] for r in prefixes.tolist()]
    return torch.tensor(rows, dtype=torch.float64).log()


@BEAM.check("finished hypotheses are kept, and length_penalty divides scores by len^alpha")
def _beam_finished(beam_search):
    seqs, scores, _ = beam_search(_eos_step, 9, 2, 4, 0.0, 2)
    expect(list(seqs[0]) == [2], f"alpha = 0: the finished [eos] (log p = log 0.5) must win, got {seqs[0]}")
    seqs, scores, _ = beam_search(_eos_step, 9, 2, 4, 1.0, 2)
    expect(
        len(seqs[0]) == 4,
        f"alpha = 1: log(0.25)/4 beats log(0.5)/1, expected a 4-token winner, got {seqs[0]}",
    )
    expect_close(
        torch.as_tensor(scores[0], dtype=torch.float64),
        torch.tensor(0.25).double().log() / 4,
        "score",
        atol=1e-6,
    )
