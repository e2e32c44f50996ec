"""Length extrapolation (长度外推): train a tiny causal LM at one context length, evaluate it at longer ones.

The Positional encoding chapter trains the same small character-level language model with each
positional scheme of :mod:`companion.nn.positional` at a short context and measures its perplexity on
held-out text at 1×, 2×, 4× and 8× that context. Everything is seeded, runs on the CPU in minutes, and
scales up on a GPU by changing :class:`ExtrapolationConfig`.

* :class:`TinyCausalLM` — a Pre-LN decoder-only Transformer whose positional scheme is a constructor
  argument: ``"none"``, ``"sinusoidal"``, ``"learned"``, ``"rope"``, ``"alibi"`` or ``"t5"``.
* :func:`train_lm` — AdamW on random windows of a token stream.
* :func:`length_extrapolation` — perplexity at each evaluation length, on the same held-out tokens,
  with ``None`` where the model cannot run (a learned table past its last row).
* :func:`run_length_extrapolation` — the whole experiment, returning a JSON-ready dict that records its
  configuration and a hash of it (the script ``experiments/length_extrapolation.py`` writes it to disk).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from companion._validate import check_positive_int, check_tensor
from companion.files import config_hash
from companion.nn.attention import merge_heads, split_heads
from companion.nn.positional import (
    ALiBi,
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    T5RelativeBias,
)

__all__ = [
    "SCHEMES",
    "ExtrapolationConfig",
    "TinyCausalLM",
    "char_ids",
    "length_extrapolation",
    "run_length_extrapolation",
    "train_lm",
]

SCHEMES = ("none", "sinusoidal", "learned", "rope", "alibi", "t5")


def char_ids(text: str, vocab: Sequence[str] | None = None) -> tuple[torch.Tensor, list[str]]:
    """Character-level ids of ``text``: ``(ids (N,) long, vocab)`` with ``vocab`` the sorted characters.

    Pass ``vocab`` to encode with an existing vocabulary (an unknown character raises ``ValueError``).
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    vocab = sorted(set(text)) if vocab is None else list(vocab)
    index = {ch: i for i, ch in enumerate(vocab)}
    try:
        ids = [index[ch] for ch in text]
    except KeyError as exc:
        raise ValueError(f"text: character {exc.args[0]!r} is not in the vocabulary") from None
    return torch.tensor(ids, dtype=torch.long), vocab


class _Block(nn.Module):
    """Pre-LN block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``, with an optional score bias or RoPE."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(
        self, x: torch.Tensor, rope: RotaryEmbedding | None, bias: torch.Tensor | None
    ) -> torch.Tensor:
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))  # (B, H, T, D)
        if rope is not None:  # rotate queries and keys, never values
            q, k = rope(q), rope(k)
        if bias is None:
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # additive bias (ALiBi / T5) plus the causal mask as -inf
            t = x.shape[1]
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.masked_fill(future, float("-inf")))
        x = x + self.out(merge_heads(att))
        return x + self.mlp(self.ln2(x))


class TinyCausalLM(nn.Module):
    """A small decoder-only Transformer LM whose positional scheme is chosen by name.

    Args:
        vocab_size: number of token ids ``V``.
        positional: ``"none"`` (no positions; causal masking alone), ``"sinusoidal"`` or ``"learned"``
            (added to the token embeddings), ``"rope"`` (queries and keys rotated in every layer),
            ``"alibi"`` or ``"t5"`` (a bias added to every layer's scores; T5's is learned and shared).
        d_model, n_layers, n_heads: width ``d``, depth and heads; the MLP has width ``4d``.
        max_len: the training length: rows of the learned table (``"learned"``; longer inputs raise
            ``ValueError``) and T5's ``max_distance`` (``"t5"``).
        rope_base, rope_scaling, rope_scaling_factor: passed to
            :class:`~companion.nn.positional.RotaryEmbedding`.

    ``forward(ids (B, T)) -> logits (B, T, V)``.
    """

    def __init__(
        self,
        vocab_size: int,
        positional: str = "rope",
        *,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        max_len: int = 64,
        rope_base: float = 10000.0,
        rope_scaling: str | None = None,
        rope_scaling_factor: float = 1.0,
    ) -> None:
        super().__init__()
        if positional not in SCHEMES:
            raise ValueError(f"positional: expected one of {SCHEMES}, got {positional!r}")
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("n_layers", n_layers)
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.positional = positional
        self.vocab_size, self.d_model, self.n_heads = vocab_size, d_model, n_heads
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.abs_pos: nn.Module | None = None
        self.rope: RotaryEmbedding | None = None
        self.score_bias: nn.Module | None = None
        if positional == "sinusoidal":
            # Token embeddings start at std 0.02; scale the ±1 table down to the same size, otherwise
            # the positions swamp the characters at initialization.
            self.abs_pos = SinusoidalPositionalEncoding(d_model)
            self.abs_scale = 0.02 * math.sqrt(2.0)
        elif positional == "learned":
            self.abs_pos = LearnedPositionalEmbedding(max_len, d_model)
        elif positional == "rope":
            self.set_rope(rope_base, rope_scaling, rope_scaling_factor)
        elif positional == "alibi":
            self.score_bias = ALiBi(n_heads)
        elif positional == "t5":
            # Causal buckets; max_distance = max_len so that every bucket is seen in training (T5's
            # default 128 would leave the buckets for distances beyond the training length untrained).
            buckets = min(32, max_len)  # keeps the n_b/2 exact buckets below max_distance
            self.score_bias = T5RelativeBias(
                n_heads, bidirectional=False, num_buckets=buckets, max_distance=max_len
            )
        self.blocks = nn.ModuleList(_Block(d_model, n_heads, 4 * d_model) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def set_rope(
        self, base: float = 10000.0, scaling: str | None = None, scaling_factor: float = 1.0
    ) -> None:
        """Replace the rotary embedding (same weights elsewhere): e.g. position interpolation at test time."""
        if self.positional != "rope":
            raise ValueError(f"set_rope: the model uses {self.positional!r} positions, not 'rope'")
        self.rope = RotaryEmbedding(
            self.d_model // self.n_heads, base=base, scaling=scaling, scaling_factor=scaling_factor
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Args: ``ids`` ``(B, T)`` long. Returns logits ``(B, T, V)``.

        Raises:
            ValueError: for a learned table shorter than ``T``.
        """
        check_tensor("ids", ids, ndim=2)
        x = self.embed(ids)
        if isinstance(self.abs_pos, SinusoidalPositionalEncoding):
            x = x + self.abs_scale * self.abs_pos.encoding(ids.shape[1]).to(x.dtype)
        elif self.abs_pos is not None:
            x = self.abs_pos(x)
        bias = None
        if self.score_bias is not None:
            bias = self.score_bias.bias(ids.shape[1], ids.shape[1]).to(device=x.device, dtype=x.dtype)
        for block in self.blocks:
            x = block(x, self.rope, bias)
        return self.head(self.ln_f(x))


def train_lm(
    model: nn.Module,
    ids: torch.Tensor,
    *,
    context: int,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    warmup: int = 20,
    generator: torch.Generator | None = None,
    log_every: int = 0,
) -> list[float]:
    """Train ``model`` (ids → logits) with AdamW on random windows of ``ids``; return the loss curve.

    Each step draws ``batch_size`` windows of ``context + 1`` tokens (inputs and next-token targets)
    from ``generator``. The learning rate warms up linearly for ``warmup`` steps, then decays with a
    cosine to 10% of ``lr``; gradients are clipped at norm 1.

    Args:
        model: maps ``(B, T)`` ids to ``(B, T, V)`` logits.
        ids: ``(N,)`` training token stream.
        context: training length ``T``.
        steps, batch_size, lr, warmup: optimisation settings.
        generator: for the window positions (seed it for a repeatable run).
        log_every: print the mean loss every this many steps (0: silent).
    """
    check_tensor("ids", ids, ndim=1)
    check_positive_int("context", context)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if ids.numel() <= context + 1:
        raise ValueError(f"ids: need more than context + 1 = {context + 1} tokens, got {ids.numel()}")
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    offsets = torch.arange(context + 1)
    losses: list[float] = []
    model.train()
    for step in range(steps):
        warm = (step + 1) / warmup if step < warmup else 1.0
        progress = max(0.0, (step - warmup) / max(1, steps - warmup))
        for group in opt.param_groups:
            group["lr"] = lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        starts = torch.randint(0, ids.numel() - context - 1, (batch_size,), generator=generator)
        batch = ids[starts[:, None] + offsets].to(device)  # (B, T + 1)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1:>5}: loss {sum(losses[-log_every:]) / log_every:.3f}")
    model.eval()
    return losses


@torch.no_grad()
def length_extrapolation(
    model: Callable[[torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    eval_lens: Sequence[int],
    *,
    batch_size: int = 8,
) -> dict[int, float | None]:
    """Perplexity of a causal LM at each evaluation length, on the same held-out tokens.

    For each ``L``, the stream is cut into ``n = (N − 1) // L`` consecutive windows: window ``w``
    feeds ``ids[wL : wL + L]`` and predicts ``ids[wL + 1 : wL + L + 1]``. The perplexity is
    ``exp`` of the mean next-token cross-entropy over *all* ``n·L`` predictions (every position of
    every window, as in the ALiBi paper's non-overlapping evaluation). When ``L`` divides ``N − 1``,
    every length predicts exactly the same tokens; only the context available to each differs.

    Args:
        model: maps ``(B, L)`` ids to ``(B, L, V)`` logits; it is put in ``eval()`` mode (no
            dropout). A model that raises ``ValueError`` for a length it does not support (a learned
            position table shorter than ``L``) gets ``None`` for that length.
        ids: ``(N,)`` held-out token ids.
        eval_lens: the lengths ``L`` to evaluate.
        batch_size: windows per forward pass (memory only; results do not depend on it).

    Returns:
        ``{L: perplexity or None}`` in the order of ``eval_lens``.
    """
    check_tensor("ids", ids, ndim=1)
    lens = [check_positive_int("eval_lens", int(L)) for L in eval_lens]
    if isinstance(model, nn.Module):
        model.eval()
    results: dict[int, float | None] = {}
    for L in lens:
        n = (ids.numel() - 1) // L
        if n < 1:
            raise ValueError(f"ids: {ids.numel()} tokens are too few for one window of length {L} + 1")
        windows = ids[: n * L + 1]
        inputs = windows[:-1].reshape(n, L)
        targets = windows[1:].reshape(n, L)
        total, count = 0.0, 0
        try:
            for s in range(0, n, batch_size):
                logits = model(inputs[s : s + batch_size])
                nll = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).double(),
                    targets[s : s + batch_size].reshape(-1).to(logits.device),
                    reduction="sum",
                )
                total += nll.item()
                count += targets[s : s + batch_size].numel()
        except ValueError:  # the model cannot represent positions this far: unsupported, not a crash
            results[L] = None
            continue
        results[L] = math.exp(total / count)
    return results


@dataclass(frozen=True)
class ExtrapolationConfig:
    """Everything that determines the experiment's numbers (hashed into the results file)."""

    schemes: tuple[str, ...] = ("sinusoidal", "learned", "rope", "alibi", "t5")
    train_len: int = 64
    eval_lens: tuple[int, ...] = (64, 128, 256, 512)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 30
    val_fraction: float = 0.1
    eval_tokens: int = 16384
    rope_variants: tuple[str, ...] = ("linear", "ntk")  # RoPE re-evaluated with these scalings
    finetune_len: int = 512  # RoPE fine-tuned briefly at this length, with and without interpolation
    finetune_steps: int = 100
    finetune_batch_size: int = 4
    finetune_lr: float = 1e-3
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _rope_variants(
    model: TinyCausalLM,
    config: ExtrapolationConfig,
    train_ids: torch.Tensor,
    eval_ids: torch.Tensor,
    device: str | torch.device,
    log: bool,
) -> dict[str, dict[str, float | None]]:
    """The trained RoPE model re-evaluated with rescaled positions, and briefly fine-tuned at length."""
    out: dict[str, dict[str, float | None]] = {}
    for variant in config.rope_variants:  # same weights, no training: factor s = L / train_len
        row: dict[str, float | None] = {}
        for L in config.eval_lens:
            model.set_rope(scaling=variant, scaling_factor=max(1.0, L / config.train_len))
            model.to(device)
            p = length_extrapolation(model, eval_ids, [L])[L]
            row[str(L)] = None if p is None else round(p, 6)
        out[f"rope+{variant}"] = row
    model.set_rope()
    model.to(device)
    if config.finetune_steps:
        factor = config.finetune_len / config.train_len
        for name, scaling in (("rope+ft", None), ("rope+linear+ft", "linear")):
            tuned = copy.deepcopy(model)
            tuned.set_rope(scaling=scaling, scaling_factor=factor if scaling else 1.0)
            tuned.to(device)
            train_lm(
                tuned,
                train_ids,
                context=config.finetune_len,
                steps=config.finetune_steps,
                batch_size=config.finetune_batch_size,
                lr=config.finetune_lr,
                warmup=10,
                generator=torch.Generator().manual_seed(config.seed + 1),
            )
            ppl = length_extrapolation(tuned, eval_ids, config.eval_lens)
            out[name] = {str(L): (None if p is None else round(p, 6)) for L, p in ppl.items()}
    if log:
        for name, row in out.items():
            print(name, row, flush=True)
    return out


def run_length_extrapolation(
    config: ExtrapolationConfig, text: str, *, device: str | torch.device = "cpu", log: bool = False
) -> dict[str, Any]:
    """Train one model per scheme at ``train_len`` and evaluate perplexity at every ``eval_lens``.

    The text is encoded per character; the last ``val_fraction`` is held out and its first
    ``eval_tokens + 1`` tokens are the evaluation stream. Each scheme trains from the same seed (same
    initial token embeddings where shapes agree, same batches). RoPE is also re-evaluated, with the
    same weights and no fine-tuning, under each of ``rope_variants`` with factor ``L / train_len``
    (``"rope+linear"``, ``"rope+ntk"``), and after ``finetune_steps`` more steps at ``finetune_len``
    with position interpolation by ``finetune_len / train_len`` (``"rope+linear+ft"``) and, as a
    control, without it (``"rope+ft"``).

    Returns:
        ``{"config", "config_hash", "vocab_size", "final_train_loss", "perplexity"}`` where
        ``perplexity[name][str(L)]`` is a float or None (unsupported length), and ``name`` is a
        scheme or one of the RoPE variants above.
    """
    ids, vocab = char_ids(text)
    n_val = int(len(ids) * config.val_fraction)
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]
    eval_ids = val_ids[: config.eval_tokens + 1]
    perplexity: dict[str, dict[str, float | None]] = {}
    final_loss: dict[str, float] = {}
    for scheme in config.schemes:
        torch.manual_seed(config.seed)
        model = TinyCausalLM(
            len(vocab),
            scheme,
            d_model=config.d_model,
            n_layers=config.n_layers,
            n_heads=config.n_heads,
            max_len=config.train_len,
        ).to(device)
        gen = torch.Generator().manual_seed(config.seed)
        losses = train_lm(
            model,
            train_ids,
            context=config.train_len,
            steps=config.steps,
            batch_size=config.batch_size,
            lr=config.lr,
            warmup=config.warmup,
            generator=gen,
        )
        final_loss[scheme] = round(sum(losses[-50:]) / len(losses[-50:]), 6)
        ppl = length_extrapolation(model, eval_ids, config.eval_lens)
        perplexity[scheme] = {str(L): (None if p is None else round(p, 6)) for L, p in ppl.items()}
        if log:
            print(scheme, final_loss[scheme], perplexity[scheme], flush=True)
        if scheme == "rope":
            perplexity.update(_rope_variants(model, config, train_ids, eval_ids, device, log))
    cfg = config.to_dict()
    return {
        "config": cfg,
        "config_hash": config_hash(cfg),
        "vocab_size": len(vocab),
        "final_train_loss": final_loss,
        "perplexity": perplexity,
    }
