"""Decoding (解码): turning next-token distributions into text.

A language model gives ``p(v | y_<t)`` for every token ``v`` of the vocabulary; a *decoding rule*
chooses the next token from it. This module has the Decoding chapter's search and generation; the
logit processors (temperature, top-k, top-p, min-p, repetition penalty) and the draw are in
:mod:`companion.sampling`.

* **search over a step function** (``step_fn(prefixes (N, t)) -> log-probs (N, V)``), the textbook
  algorithms with instrumented costs: :func:`greedy` and :func:`beam_search`;
* **generation with a model** that follows the interface of :class:`companion.models.gpt.GPT`
  (``model(idx (B, T), kv_cache=None) -> (logits (B, T, V), loss)``, ``model.new_kv_cache(B)``,
  ``model.config.block_size``): :func:`generate` (greedy or sampled, stop tokens, a per-step
  callback, with or without a KV cache), :func:`stream` (a generator of tokens) and
  :func:`beam_search_generate` (Hugging Face's beam-search semantics, with a reordered KV cache).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from companion._validate import (
    check_finite_number,
    check_positive_int,
    check_temperature,
    check_tensor,
    check_unit_fraction,
)
from companion.sampling import process_logits

__all__ = [
    "BeamStats",
    "beam_search",
    "beam_search_generate",
    "generate",
    "greedy",
    "stream",
]

NEG_INF = float("-inf")


# ------------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------------
# ------------------------------------------------------------------------------------------------
# search over a step function (the textbook algorithms, instrumented)
# ------------------------------------------------------------------------------------------------
StepFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BeamStats:
    """Cost counters of a search.

    Attributes:
        model_calls: calls of ``step_fn`` (one batched forward pass over all live beams per step).
        scored: candidate continuations scored (beams × V per step).
    """

    model_calls: int = 0
    scored: int = 0


def _call_step(step_fn: StepFn, prefixes: torch.Tensor) -> torch.Tensor:
    out = step_fn(prefixes)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != prefixes.shape[0]:
        raise ValueError(
            f"step_fn: expected a (N, V) tensor of log-probabilities for {prefixes.shape[0]} prefixes, "
            f"got {getattr(out, 'shape', type(out).__name__)}"
        )
    if bool(torch.isnan(out).any()):  # a NaN score would rank as -inf (or win ties) silently
        raise ValueError(f"step_fn: the log-probabilities of prefixes of length {prefixes.shape[1]} hold NaN")
    return out.double()


def greedy(step_fn: StepFn, bos: int, max_len: int, eos: int | None = None) -> list[int]:
    """Greedy decoding (贪心解码): ``y_t = argmax_v log p(v | y_<t)`` until ``eos`` or ``max_len`` tokens.

    Args:
        step_fn: maps prefixes ``(N, t)`` (int64, starting with ``bos``) to next-token
            log-probabilities ``(N, V)``.
        bos: the first token of every prefix (not part of the output).
        max_len: the most tokens to generate.
        eos: stop after emitting this token (it is included in the output).

    Returns:
        The generated token ids (without ``bos``).
    """
    max_len = check_positive_int("max_len", max_len)
    seq = [int(bos)]
    for _ in range(max_len):
        logp = _call_step(step_fn, torch.tensor([seq], dtype=torch.long))
        tok = int(logp[0].argmax())
        seq.append(tok)
        if eos is not None and tok == eos:
            break
    return seq[1:]


def beam_search(
    step_fn: StepFn,
    bos: int,
    K: int,
    max_len: int,
    length_penalty: float = 0.0,
    eos: int | None = None,
) -> tuple[list[list[int]], torch.Tensor, BeamStats]:
    """Beam search (束搜索) with beam size (束宽) ``K``, scored by total log-probability.

    The beam starts as ``K`` copies of ``[bos]``, one with score 0 and the others at ``-inf`` (so the
    first step does not pick the same token ``K`` times). Each step makes one batched call of
    ``step_fn`` on the ``K`` live prefixes and scores all ``K·V`` continuations; the ``K`` best live
    continuations survive. A continuation ending in ``eos`` is *finished*: it leaves the beam and is
    kept aside. After ``max_len`` steps (or when no live beam is left) the finished hypotheses and
    the live beams are ranked by ``score / len^α`` (``len`` = generated tokens, ``α`` =
    ``length_penalty``; 0 ranks by the raw sum of log-probabilities). Cost: ``max_len`` model calls and
    ``max_len·K·V`` scored candidates, i.e. ``O(T·K·V)`` selection work plus ``T`` batched forward
    passes. ``K = 1`` is greedy decoding.

    Args:
        step_fn: prefixes ``(N, t)`` → log-probabilities ``(N, V)``.
        bos: first token of every prefix (not returned).
        K: beam size.
        max_len: number of decoding steps (tokens generated per hypothesis at most).
        length_penalty: ``α`` of the length normalization ``score / len^α``.
        eos: token that finishes a hypothesis (None: no early finishing).

    Returns:
        ``(seqs, scores, stats)``: the ``K`` best hypotheses (token lists without ``bos``), best first,
        their normalized scores ``(K,)`` (float64), and the :class:`BeamStats`.
    """
    K = check_positive_int("K", K)
    max_len = check_positive_int("max_len", max_len)
    alpha = check_finite_number("length_penalty", length_penalty)
    stats = BeamStats()
    prefixes = torch.full((K, 1), int(bos), dtype=torch.long)
    scores = torch.full((K,), NEG_INF, dtype=torch.float64)
    scores[0] = 0.0
    finished: list[tuple[list[int], float]] = []
    for _ in range(max_len):
        logp = _call_step(step_fn, prefixes)  # (K, V): one batched forward pass
        stats.model_calls += 1
        v = logp.shape[1]
        stats.scored += prefixes.shape[0] * v
        cand = (scores[:, None] + logp).reshape(-1)  # (K·V,) total log-probabilities
        order = torch.argsort(cand, descending=True, stable=True)
        new_prefixes, new_scores = [], []
        for idx in order.tolist():
            if len(new_prefixes) == K:
                break
            s = float(cand[idx])  # -inf for continuations of the replicated copies: they keep K rows
            beam, tok = divmod(idx, v)
            seq = torch.cat([prefixes[beam], torch.tensor([tok])])
            if eos is not None and tok == eos and s > NEG_INF:
                finished.append((seq[1:].tolist(), s))
                continue
            new_prefixes.append(seq)
            new_scores.append(s)
        if not new_prefixes:
            break
        prefixes = torch.stack(new_prefixes)
        scores = torch.tensor(new_scores, dtype=torch.float64)
    pool = finished + [(p[1:].tolist(), float(s)) for p, s in zip(prefixes, scores, strict=True)]

    def normalized(item: tuple[list[int], float]) -> float:
        seq, s = item
        return s / (len(seq) ** alpha) if s > NEG_INF else NEG_INF

    pool.sort(key=normalized, reverse=True)  # stable: ties keep discovery order
    best = pool[:K]
    return [s for s, _ in best], torch.tensor([normalized(b) for b in best], dtype=torch.float64), stats


# ------------------------------------------------------------------------------------------------
# generation with a model
# ------------------------------------------------------------------------------------------------
def _check_model_inputs(model: Any, idx: torch.Tensor, max_new_tokens: int) -> tuple[torch.Tensor, int]:
    idx = check_tensor("idx", idx, ndim=(1, 2))
    if idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"idx: expected an integer tensor of token ids, got dtype {idx.dtype}")
    if idx.ndim == 1:
        idx = idx[None]
    if idx.shape[1] == 0:
        raise ValueError("idx: the prompt must contain at least one token")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: expected a non-negative int, got {max_new_tokens!r}")
    if not callable(model) or not hasattr(model, "config"):
        raise TypeError(
            f"model: expected a model with a .config (like companion GPT), got {type(model).__name__}"
        )
    return idx.long(), max_new_tokens


def _stop_set(stop_tokens: int | Iterable[int] | None) -> list[int]:
    if stop_tokens is None:
        return []
    if isinstance(stop_tokens, int):
        return [stop_tokens]
    return [int(s) for s in stop_tokens]


def _next_logits(model: Any, seqs: torch.Tensor, cache: Any, new: torch.Tensor) -> torch.Tensor:
    """Next-token logits ``(B, V)``: feed only ``new`` with a cache, else the whole (cropped) context.

    Raises:
        ValueError: if the model returns NaN logits (argmax would silently pick token 0).
    """
    if cache is not None:
        logits, _ = model(new, kv_cache=cache)
    else:
        block = getattr(model.config, "block_size", None)
        ctx = seqs if block is None else seqs[:, -block:]  # without a cache: crop to the context window
        logits, _ = model(ctx)
    last = logits[:, -1, :].float()
    if bool(torch.isnan(last).any()):
        rows = torch.isnan(last).any(dim=-1).nonzero().flatten().tolist()
        raise ValueError(
            f"model: the next-token logits of row(s) {rows} at position {seqs.shape[1]} contain NaN (NaN or "
            "inf in the weights or activations); no token can be chosen"
        )
    return last


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Decode with dropout off (``model.eval()``), and give the model back in the caller's mode."""
    was_training = getattr(model, "training", None)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        yield
    finally:
        if isinstance(model, torch.nn.Module) and was_training:
            model.train()


@torch.inference_mode()  # faster than no_grad (no version counters); results leave as plain tensors
def _decode_steps(
    model: Any,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None,
    repetition_penalty: float | None,
    stop_tokens: int | Iterable[int] | None,
    pad_token_id: int | None,
    generator: torch.Generator | None,
    use_cache: bool,
    min_new_tokens: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield the next tokens ``(B,)`` step by step (finished rows get ``pad_token_id``)."""
    idx, max_new_tokens = _check_model_inputs(model, idx, max_new_tokens)
    t = check_temperature(temperature, allow_zero=True)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if top_k is not None:
        check_positive_int("top_k", top_k)
    if top_p is not None:
        check_unit_fraction("top_p", top_p)
    if min_p is not None:
        check_unit_fraction("min_p", min_p)
    stops = _stop_set(stop_tokens)
    if isinstance(min_new_tokens, bool) or not isinstance(min_new_tokens, int) or min_new_tokens < 0:
        raise ValueError(f"min_new_tokens: expected a non-negative int, got {min_new_tokens!r}")
    if min_new_tokens and not stops:
        raise ValueError("min_new_tokens: only bans stop_tokens before that many tokens; pass stop_tokens")
    pad = pad_token_id if pad_token_id is not None else (stops[0] if stops else 0)
    b, t0 = idx.shape
    block = getattr(model.config, "block_size", None)
    cache = None
    if use_cache and max_new_tokens > 0:
        if block is not None and t0 + max_new_tokens - 1 > block and getattr(model, "wpe", True) is not None:
            raise ValueError(
                f"max_new_tokens: prompt ({t0}) + {max_new_tokens} new tokens exceed block_size={block}; "
                "use use_cache=False, which crops the context to the last block_size tokens"
            )
        # Preallocate: appending into fixed buffers avoids re-copying the whole cache every step.
        cache = model.new_kv_cache(b, max_len=t0 + max_new_tokens)
    seqs = idx
    done = torch.zeros(b, dtype=torch.bool, device=idx.device)
    stop_ids = torch.tensor(stops, device=idx.device)
    new = idx
    with _eval_mode(model):  # no dropout while decoding; the caller's mode afterwards
        for step in range(max_new_tokens):
            logits = _next_logits(model, seqs, cache, new)
            if step < min_new_tokens:  # Hugging Face's MinNewTokensLengthLogitsProcessor, applied first
                logits[:, stop_ids] = NEG_INF
            logits = process_logits(
                logits, seqs, temperature=1.0 if t == 0 else t, top_k=top_k, top_p=top_p, min_p=min_p,
                repetition_penalty=repetition_penalty,
            )  # fmt: skip
            if t == 0:
                nxt = logits.argmax(dim=-1)
            else:
                nxt = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)
            if stops:  # without stop tokens no row ever finishes: skip the bookkeeping
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                done = done | torch.isin(nxt, stop_ids)
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            new = nxt[:, None]
            yield nxt
            if stops and bool(done.all()):
                return


def generate(
    model: Any,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    stop_tokens: int | Iterable[int] | None = None,
    pad_token_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    min_new_tokens: int = 0,
) -> torch.Tensor:
    """Autoregressive generation: greedy (``temperature=0``) or sampled, with optional filters.

    With ``use_cache`` the prompt is run once (prefill) and every later step feeds only the newest
    token through the model's KV cache; without it every step re-runs the context. Both give the same
    tokens (tested). A row stops when it emits one of ``stop_tokens`` (the stop token is kept); the
    following positions are filled with ``pad_token_id`` (default: the first stop token), and the loop
    ends when every row has stopped or ``max_new_tokens`` were produced.

    Args:
        model: ``model(idx (B, T), kv_cache=None) -> (logits (B, T, V), _)`` with ``new_kv_cache``.
        idx: ``(B, T)`` or ``(T,)`` prompt ids.
        max_new_tokens: the most tokens to add.
        temperature: 0 for greedy, else sample from ``softmax(processed logits)``.
        top_k, top_p, min_p, repetition_penalty: see :func:`~companion.sampling.process_logits` (None: off).
        stop_tokens: an id or ids that end a row.
        pad_token_id: filler after a row has stopped.
        generator: a seeded ``torch.Generator`` for reproducible sampling.
        use_cache: decode with a KV cache.
        callback: called as ``callback(step, tokens (B,))`` after each step (streaming).
        min_new_tokens: the stop tokens' logits are −∞ for the first this many steps (Hugging Face's
            ``min_new_tokens``), so every row produces at least that many tokens.

    Returns:
        ``(B, T + n)`` ids, prompt included, ``n <= max_new_tokens``.
    """
    idx2, _ = _check_model_inputs(model, idx, max_new_tokens)
    out = [idx2]
    steps = _decode_steps(
        model, idx2, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
        repetition_penalty=repetition_penalty, stop_tokens=stop_tokens, pad_token_id=pad_token_id,
        generator=generator, use_cache=use_cache, min_new_tokens=min_new_tokens,
    )  # fmt: skip
    for step, nxt in enumerate(steps):
        nxt = nxt.clone()  # outside inference mode: an ordinary tensor the caller may use with autograd
        out.append(nxt[:, None])
        if callback is not None:
            callback(step, nxt)
    return torch.cat(out, dim=1)


def stream(model: Any, idx: torch.Tensor, max_new_tokens: int, **kwargs: Any) -> Iterator[int]:
    """Yield the generated token ids of a single prompt one at a time (same options as :func:`generate`).

    Args:
        model: as for :func:`generate`.
        idx: ``(T,)`` or ``(1, T)`` prompt ids.
        max_new_tokens: the most tokens to yield.
        **kwargs: the keyword options of :func:`generate` (not ``callback``).

    Yields:
        One int per step; a stop token is yielded and then the stream ends.
    """
    idx2, _ = _check_model_inputs(model, idx, max_new_tokens)
    if idx2.shape[0] != 1:
        raise ValueError(f"idx: stream() takes a single prompt, got batch size {idx2.shape[0]}")
    if "callback" in kwargs:
        raise TypeError("callback: not accepted by stream(); iterate over the tokens instead")
    defaults = dict(
        temperature=0.0, top_k=None, top_p=None, min_p=None, repetition_penalty=None, stop_tokens=None,
        pad_token_id=None, generator=None, use_cache=True, min_new_tokens=0,
    )  # fmt: skip
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"stream() got unexpected keyword arguments {sorted(unknown)}")
    defaults.update(kwargs)
    for nxt in _decode_steps(model, idx2, max_new_tokens, **defaults):
        yield int(nxt[0])


def _decodes_in_eval_mode(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn(model, ...)`` inside :func:`_eval_mode` (for the functions that return, not yield)."""

    @functools.wraps(fn)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
        with _eval_mode(model):
            return fn(model, *args, **kwargs)

    return wrapper


@_decodes_in_eval_mode
@torch.no_grad()
def beam_search_generate(
    model: Any,
    idx: torch.Tensor,
    num_beams: int,
    max_new_tokens: int,
    *,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    eos_token_id: int | Iterable[int] | None = None,
    use_cache: bool = True,
) -> tuple[torch.Tensor, float]:
    """Beam search with a model, reproducing Hugging Face ``generate(num_beams=K, do_sample=False)``.

    The semantics are those of ``transformers`` 5.x ``GenerationMixin._beam_search`` for one prompt:

    * the beams start as ``K`` copies of the prompt with scores ``[0, -1e9, …]``;
    * each step scores the ``K·V`` continuations by summed log-probability and keeps the top
      ``2K`` (``(1 + #eos)·K`` with several eos ids); the best ``K`` that did not just finish stay live;
    * a continuation among the top ``K`` that ends in an eos id, or reaches ``max_new_tokens``, is a
      finished hypothesis with score ``sum log p / L^α``, where ``L`` counts the generated tokens
      (eos included) and ``α = length_penalty``; the ``K`` best finished hypotheses are kept;
    * stopping: ``early_stopping=True`` stops once ``K`` hypotheses are finished; ``False`` stops when
      the best live beam, normalized at its *current* length, cannot beat the worst finished one;
      ``"never"`` uses the best length the live beam could reach (the canonical bound when ``α > 0``).

    With ``use_cache`` the KV cache rows are reordered to follow the surviving beams
    (:meth:`companion.nn.kv_cache.KVCache.reorder`).

    Args:
        model: as for :func:`generate`.
        idx: ``(T,)`` or ``(1, T)`` prompt.
        num_beams: ``K``.
        max_new_tokens: the most tokens to add.
        length_penalty: ``α``.
        early_stopping: ``True``, ``False`` or ``"never"``.
        eos_token_id: id(s) that finish a hypothesis.
        use_cache: decode with a KV cache.

    Returns:
        ``(ids (1, T + n), score)``: the best hypothesis with its prompt, and its normalized score.
    """
    idx, max_new_tokens = _check_model_inputs(model, idx, max_new_tokens)
    if idx.shape[0] != 1:
        raise ValueError(f"idx: beam_search_generate takes a single prompt, got batch size {idx.shape[0]}")
    K = check_positive_int("num_beams", num_beams)
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    alpha = check_finite_number("length_penalty", length_penalty)
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping: expected True, False or 'never', got {early_stopping!r}")
    eos = _stop_set(eos_token_id)
    dev = idx.device
    prompt_len = idx.shape[1]
    max_length = prompt_len + max_new_tokens
    keep = max(2, 1 + len(eos)) * K
    top_mask = torch.arange(keep, device=dev) < K
    fill = eos[0] if eos else -1
    running = torch.full((K, max_length), fill, dtype=torch.long, device=dev)
    running[:, :prompt_len] = idx
    finished = running.clone()
    run_scores = torch.zeros(K, device=dev)
    run_scores[1:] = -1e9  # only the first copy may expand at the first step
    fin_scores = torch.full((K,), -1e9, device=dev)
    fin_len = torch.full((K,), prompt_len, dtype=torch.long, device=dev)
    is_fin = torch.zeros(K, dtype=torch.bool, device=dev)
    heuristic_open = True
    cache = model.new_kv_cache(K, max_len=max_length) if use_cache else None
    new = running[:, :prompt_len]
    cur = prompt_len
    eos_t = torch.tensor(eos, dtype=torch.long, device=dev)
    while True:
        logits = _next_logits(model, running[:, :cur], cache, new)  # (K, V) float32
        logp = F.log_softmax(logits, dim=-1) + run_scores[:, None]
        v = logp.shape[1]
        top_lp, top_i = torch.topk(logp.reshape(-1), k=keep)
        parent, tok = top_i // v, top_i % v
        cand = running[parent].clone()
        cand[:, cur] = tok
        hits = torch.isin(tok, eos_t) if eos else torch.zeros_like(tok, dtype=torch.bool)
        hits = hits | (cur + 1 >= max_length)
        # live beams for the next step: the best K that did not just finish
        live = torch.topk(top_lp + hits.float() * -1e9, k=K).indices
        running, run_scores, run_parent = cand[live], (top_lp + hits.float() * -1e9)[live], parent[live]
        # finished hypotheses: length-normalized, only among the top K candidates
        s = top_lp / ((cur + 1 - prompt_len) ** alpha)
        if bool(is_fin.all()) and early_stopping is True:
            s = s + -1e9
        if not heuristic_open:
            s = s + -1e9
        s = s + (~(hits & top_mask)).float() * -1e9
        merged_scores = torch.cat([fin_scores, s])
        merged = torch.cat([finished, cand])
        merged_len = torch.cat([fin_len, torch.full((keep,), cur + 1, dtype=torch.long, device=dev)])
        merged_fin = torch.cat([is_fin, hits & top_mask])
        best = torch.topk(merged_scores, k=K).indices
        finished, fin_scores, fin_len, is_fin = (
            merged[best],
            merged_scores[best],
            merged_len[best],
            merged_fin[best],
        )
        if cache is not None:
            cache.reorder(run_parent)
        new = running[:, cur : cur + 1]
        cur += 1
        # HF's stopping heuristic (see the docstring)
        best_len = (
            (max_length - prompt_len) if (early_stopping == "never" and alpha > 0) else (cur - prompt_len)
        )
        best_running = run_scores[0] / (best_len**alpha)
        worst_finished = torch.where(is_fin, fin_scores.min(), torch.tensor(-1e9, device=dev))
        heuristic_open = heuristic_open and bool((best_running > worst_finished).any())
        exists_open = not (bool(is_fin.all()) and early_stopping is True)
        if not (heuristic_open and exists_open and not bool(hits.all())):
            break
    length = int(fin_len[0])
    return finished[:1, :length], float(fin_scores[0])
