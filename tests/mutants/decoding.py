"""Plausible wrong answers to the Decoding chapter's exercises: each must fail at least one check."""

from __future__ import annotations

import torch

from companion.generate import BeamStats, beam_search, greedy
from companion.sampling import apply_temperature, sample, top_k_filter, top_p_filter

NEG_INF = float("-inf")

# --- decoding.sampling-filters ----------------------------------------------------------------------


def top_p_threshold(logits, p):
    """M14.1: keeps the tokens whose own probability exceeds p (plus the top one)."""
    probs = logits.softmax(-1)
    keep = (probs > p) | (probs == probs.amax(-1, keepdim=True))
    return logits.masked_fill(~keep, NEG_INF)


def top_p_without_crossing_token(logits, p):
    """Keeps only tokens whose cumulative probability (including themselves) is <= p."""
    s, order = torch.sort(logits, -1, descending=True)
    cum = s.softmax(-1).cumsum(-1)
    remove = cum > p
    remove[..., 0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), NEG_INF)


def temperature_on_probabilities(logits, t):
    """M14.2: divides probabilities by T and renormalizes (a no-op), returned as log-probs."""
    p = logits.softmax(-1) / t
    return (p / p.sum(-1, keepdim=True)).log()


def top_k_breaking_ties(logits, k):
    """Keeps exactly k tokens (ties at the k-th value broken by index)."""
    idx = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).indices
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, idx, True)
    return logits.masked_fill(~keep, NEG_INF)


def sample_temperature_after_top_p(logits, rng, t, k, p):
    """M14.2: filters first, then applies temperature."""
    flat = logits.reshape(-1, logits.shape[-1])
    if t == 0:
        return flat.argmax(-1).reshape(logits.shape[:-1])
    z = flat
    if k is not None:
        z = top_k_filter(z, k)
    if p is not None:
        z = top_p_filter(z, p)
    z = z / t
    return torch.multinomial(z.float().softmax(-1), 1, generator=rng).squeeze(-1).reshape(logits.shape[:-1])


def sample_ignoring_temperature(logits, rng, t, k, p):
    """Samples from softmax(z) whatever T is (except the argmax at T = 0)."""
    return sample(logits, rng, 0.0 if t == 0 else 1.0, k, p)


# --- decoding.greedy -------------------------------------------------------------------------------


def greedy_ignores_eos(step_fn, bos, max_len, eos=None):
    """Never stops early."""
    return greedy(step_fn, bos, max_len)


def greedy_drops_eos(step_fn, bos, max_len, eos=None):
    """Stops at eos but does not return it."""
    out = greedy(step_fn, bos, max_len, eos)
    return out[:-1] if eos is not None and out and out[-1] == eos else out


def greedy_last_prefix_token_only(step_fn, bos, max_len, eos=None):
    """Feeds only the last token to the model (forgets the context)."""
    seq = [bos]
    for _ in range(max_len):
        tok = int(step_fn(torch.tensor([[seq[-1]]]))[0].argmax())
        seq.append(tok)
        if eos is not None and tok == eos:
            break
    return seq[1:]


def greedy_one_short(step_fn, bos, max_len, eos=None):
    """Off by one: generates max_len - 1 tokens."""
    return greedy(step_fn, bos, max_len, eos)[: max_len - 1]


# --- decoding.beam-search --------------------------------------------------------------------------


def beam_all_copies_at_zero(step_fn, bos, K, max_len, length_penalty=0.0, eos=None):
    """Starts every copy of the beam at score 0: the K copies expand identically (duplicates)."""
    prefixes = torch.full((K, 1), bos, dtype=torch.long)
    scores = torch.zeros(K, dtype=torch.float64)
    stats = BeamStats()
    for _ in range(max_len):
        logp = step_fn(prefixes).double()
        stats.model_calls += 1
        stats.scored += logp.numel()
        cand = (scores[:, None] + logp).reshape(-1)
        top = torch.topk(cand, K)
        beam, tok = top.indices // logp.shape[1], top.indices % logp.shape[1]
        prefixes = torch.cat([prefixes[beam], tok[:, None]], 1)
        scores = top.values
    return [p[1:].tolist() for p in prefixes], scores, stats


def beam_one_call_per_beam(step_fn, bos, K, max_len, length_penalty=0.0, eos=None):
    """Right answer, but calls the model once per beam (K·T calls instead of T batched ones)."""
    calls = {"n": 0}

    def counted(prefixes):
        calls["n"] += prefixes.shape[0]
        return torch.cat([step_fn(prefixes[i : i + 1]) for i in range(prefixes.shape[0])])

    seqs, scores, stats = beam_search(counted, bos, K, max_len, length_penalty, eos)
    stats.model_calls = calls["n"]
    return seqs, scores, stats


def beam_drops_finished(step_fn, bos, K, max_len, length_penalty=0.0, eos=None):
    """Ignores eos: finished hypotheses are never set aside, so a short complete answer is lost."""
    return beam_search(step_fn, bos, K, max_len, length_penalty, None)


def beam_scored_k_squared(step_fn, bos, K, max_len, length_penalty=0.0, eos=None):
    """M14.3: reports K²·T scored candidates (counting only the per-beam top-K bookkeeping)."""
    seqs, scores, stats = beam_search(step_fn, bos, K, max_len, length_penalty, eos)
    stats.scored = max_len * K * K
    return seqs, scores, stats


MUTANTS = {
    "decoding.sampling-filters": [
        (apply_temperature, top_k_filter, top_p_threshold, sample),
        (apply_temperature, top_k_filter, top_p_without_crossing_token, sample),
        (temperature_on_probabilities, top_k_filter, top_p_filter, sample),
        (apply_temperature, top_k_breaking_ties, top_p_filter, sample),
        (apply_temperature, top_k_filter, top_p_filter, sample_temperature_after_top_p),
        (apply_temperature, top_k_filter, top_p_filter, sample_ignoring_temperature),
    ],
    "decoding.greedy": [
        greedy_ignores_eos,
        greedy_drops_eos,
        greedy_last_prefix_token_only,
        greedy_one_short,
    ],
    "decoding.beam-search": [
        beam_all_copies_at_zero,
        beam_one_call_per_beam,
        beam_drops_finished,
        beam_scored_k_squared,
    ],
}
