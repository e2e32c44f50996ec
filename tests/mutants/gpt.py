"""Plausible wrong answers to the Training-a-GPT chapter's exercises: each must fail at least one check."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from companion.losses import lm_loss, perplexity
from companion.models.gpt import incremental_logits, param_count
from companion.optim import WarmupCosine
from companion.train.data import shift_targets

# --- gpt.parallel-vs-cached -----------------------------------------------------------------------


def _generate(model, ids, n, use_cache=True):
    return model.generate(ids, n, use_cache=use_cache)


def incremental_without_cache(model, ids):
    """Re-runs the whole prefix at every step instead of using the cache (right logits, no cache)."""
    with torch.no_grad():
        return torch.cat([model(ids[:, : t + 1])[0][:, -1:] for t in range(ids.shape[1])], dim=1)


def incremental_new_cache_each_step(model, ids):
    """A fresh cache per token: every token is treated as position 0."""
    with torch.no_grad():
        steps = [
            model(ids[:, t : t + 1], kv_cache=model.new_kv_cache(ids.shape[0]))[0]
            for t in range(ids.shape[1])
        ]
    return torch.cat(steps, dim=1)


def generate_prefix_every_step(model, ids, n, use_cache=True):
    """With a cache, feeds the whole sequence again each step: the prefix is cached twice."""
    if ids.shape[1] + n > model.config.block_size:
        raise ValueError("context window exceeded")
    cache = model.new_kv_cache(ids.shape[0]) if use_cache else None
    out = ids
    with torch.no_grad():
        for _ in range(n):
            if cache is not None:
                cache.reset()
            logits, _ = model(out, kv_cache=cache)
            out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out


def generate_off_by_one(model, ids, n, use_cache=True):
    """Takes the argmax at the second-to-last position."""
    if ids.shape[1] + n > model.config.block_size:
        raise ValueError("context window exceeded")
    out = ids
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(out)
            pos = -2 if out.shape[1] > 1 else -1
            out = torch.cat([out, logits[:, pos].argmax(-1, keepdim=True)], dim=1)
    return out


def generate_sliding(model, ids, n, use_cache=True):
    """Silently crops the context to block_size instead of raising."""
    out = ids
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(out[:, -model.config.block_size :])
            out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out


# --- gpt.lm-loss ----------------------------------------------------------------------------------


def lm_loss_over_all_positions(logits, targets, ignore_index=-100):
    """Divides the summed loss by B·T, counting ignored positions in the denominator."""
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore_index, reduction="sum"
    )
    return total / targets.numel()


def lm_loss_clamped_targets(logits, targets, ignore_index=-100):
    """Replaces ignored targets by token 0 instead of skipping them."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).clamp_min(0))


def perplexity_base_two(logits, targets, ignore_index=-100):
    """2 ** loss: the loss is in nats, not bits."""
    return 2.0 ** float(lm_loss(logits, targets, ignore_index))


def shift_targets_backwards(ids, ignore_index=-100):
    """Shifts the wrong way: targets[t] = ids[t - 1]."""
    targets = torch.full_like(ids, ignore_index)
    targets[..., 1:] = ids[..., :-1]
    return targets


def shift_targets_wraparound(ids, ignore_index=-100):
    """torch.roll: the last position's target wraps around to the first token."""
    return torch.roll(ids, -1, dims=-1)


# --- gpt.param-count ------------------------------------------------------------------------------


def param_count_head_counted_twice(cfg):
    """Adds V·d for the output layer even when it is tied to the embedding."""
    return param_count(cfg) + (cfg.vocab_size * cfg.n_embd if cfg.tie_embeddings else 0)


def param_count_approximation(cfg):
    """The textbook approximation 12·L·d² + (V + n_ctx)·d: no biases, no norms."""
    d = cfg.n_embd
    n = 12 * cfg.n_layer * d * d + (cfg.vocab_size + cfg.block_size) * d
    return n + (0 if cfg.tie_embeddings else cfg.vocab_size * d)


def param_count_no_positions(cfg):
    """Forgets the learned position table."""
    return param_count(cfg) - cfg.block_size * cfg.n_embd


def param_count_no_final_norm(cfg):
    """Forgets ln_f."""
    return param_count(cfg) - cfg.n_embd * (2 if cfg.bias else 1)


# --- gpt.lr-schedule ------------------------------------------------------------------------------


def schedule_without_half(step, warmup, total, lr_max, lr_min=0.0):
    """Cosine without the ½(1 + ·): goes below lr_min in the second half."""
    if warmup > total:
        raise ValueError("warmup > total")
    if step < warmup:
        return lr_max * step / warmup
    if step > total:
        return lr_min
    return lr_min + (lr_max - lr_min) * math.cos(math.pi * (step - warmup) / (total - warmup))


def schedule_warmup_off_by_one(step, warmup, total, lr_max, lr_min=0.0):
    """Warm-up (step + 1) / warmup: reaches lr_max one step early."""
    if step < warmup:
        return lr_max * (step + 1) / warmup
    return WarmupCosine(lr_max, warmup, total, lr_min).lr_at(step)


def schedule_no_clamp(step, warmup, total, lr_max, lr_min=0.0):
    """The cosine keeps going after total, rising again."""
    if warmup > total:
        raise ValueError("warmup > total")
    if step < warmup:
        return lr_max * step / warmup
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def schedule_cosine_over_total(step, warmup, total, lr_max, lr_min=0.0):
    """The cosine spans 0 … total instead of warmup … total."""
    if warmup > total:
        raise ValueError("warmup > total")
    if step < warmup:
        return lr_max * step / warmup
    if step > total:
        return lr_min
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * step / total))


MUTANTS = {
    "gpt.parallel-vs-cached": [
        (incremental_without_cache, _generate),
        (incremental_new_cache_each_step, _generate),
        (incremental_logits, generate_prefix_every_step),
        (incremental_logits, generate_off_by_one),
        (incremental_logits, generate_sliding),
    ],
    "gpt.lm-loss": [
        (lm_loss_over_all_positions, perplexity, shift_targets),
        (lm_loss_clamped_targets, perplexity, shift_targets),
        (lm_loss, perplexity_base_two, shift_targets),
        (lm_loss, perplexity, shift_targets_backwards),
        (lm_loss, perplexity, shift_targets_wraparound),
    ],
    "gpt.param-count": [
        param_count_head_counted_twice,
        param_count_approximation,
        param_count_no_positions,
        param_count_no_final_norm,
    ],
    "gpt.lr-schedule": [
        schedule_without_half,
        schedule_warmup_off_by_one,
        schedule_no_clamp,
        schedule_cosine_over_total,
    ],
}
