"""Exercises of the Training-a-GPT chapter (``notebooks/transformer/gpt.ipynb``).

References: the model's own teacher-forced forward pass (for cached decoding), ``F.cross_entropy``,
``sum(p.numel())`` of the companion GPT, the published GPT-2/GPT-3 sizes, and
``torch.optim.lr_scheduler.CosineAnnealingLR``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from companion.grading.checks import as_number, expect, expect_close, expect_raises, expect_tensor
from companion.grading.registry import Exercise, register
from companion.losses import lm_loss, perplexity
from companion.models.gpt import GPT, GPTConfig, incremental_logits, param_count
from companion.optim import WarmupCosine
from companion.train.data import shift_targets

# --------------------------------------------------------------------------------------------------
# gpt.parallel-vs-cached
# --------------------------------------------------------------------------------------------------


def _reference_generate(model, ids, n, use_cache=True):
    return model.generate(ids, n, use_cache=use_cache)


PARALLEL = register(
    Exercise(
        id="gpt.parallel-vs-cached",
        title="Teacher-forced logits in one pass equal step-by-step decoding with a KV cache",
        names=("incremental_logits", "generate"),
        references=(incremental_logits, _reference_generate),
        signature='''def incremental_logits(model, ids):
    """Logits (B, T, V) computed one token at a time: make cache = model.new_kv_cache(B) and call
    model(ids[:, t:t+1], kv_cache=cache) for t = 0 … T-1 (the model returns (logits, loss)).
    Must equal model(ids)[0], the teacher-forced logits of one parallel pass (atol 1e-5)."""

def generate(model, ids, n, use_cache=True):
    """Greedy decoding: append n tokens, each the argmax of the last position's logits.
    use_cache=True: run the prompt once, then feed only the newest token with a KV cache;
    use_cache=False: re-run the whole sequence every step. Both give the same tokens.
    Returns (B, T + n). Raises ValueError if T + n > model.config.block_size (no sliding)."""''',
        hint="the cache remembers the positions: after the prompt, feed only the last token, "
        "never the prefix again.",
    )
)


class _Spy(GPT):
    """A GPT that records the shape of every input and whether a cache came with it."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.calls: list[tuple[int, bool]] = []

    def forward(self, idx, targets=None, *, kv_cache=None):
        self.calls.append((idx.shape[1], kv_cache is not None))
        return super().forward(idx, targets, kv_cache=kv_cache)


_CONFIGS = {
    "GPT-2 style (learned positions)": GPTConfig(
        vocab_size=31, block_size=20, n_layer=2, n_head=2, n_embd=16
    ),
    "Llama style (RoPE, GQA, RMSNorm, SwiGLU)": GPTConfig.llama_style(
        vocab_size=31, block_size=20, n_layer=2, n_head=4, n_kv_head=2, n_embd=16
    ),
}


def _model(name: str, spy: bool = False) -> GPT:
    torch.manual_seed(0)
    model = (_Spy if spy else GPT)(_CONFIGS[name]).eval()
    with torch.no_grad():  # larger weights than GPT-2's init, so that greedy choices are not ties
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(20.0)
    return model


def _ids(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 31, (b, t), generator=torch.Generator().manual_seed(seed))


@PARALLEL.check("incremental_logits equals the teacher-forced logits (atol 1e-5), two architectures")
def _par_equal(incremental, generate):
    for name in _CONFIGS:
        model, ids = _model(name), _ids(2, 20)
        with torch.no_grad():
            want = model(ids)[0]
        expect_close(incremental(model, ids), want, f"{name}: logits", atol=1e-5)


@PARALLEL.check("incremental_logits feeds one token per call, with a KV cache")
def _par_spy(incremental, generate):
    model = _model("GPT-2 style (learned positions)", spy=True)
    incremental(model, _ids(1, 6))
    expect(
        model.calls == [(1, True)] * 6,
        f"expected 6 calls of one token each with kv_cache, got (tokens, cached) = {model.calls}",
    )


@PARALLEL.check("generate: the same tokens with and without the cache, equal to greedy argmax")
def _par_generate(incremental, generate):
    for name in _CONFIGS:
        model, prompt = _model(name), _ids(2, 3, seed=1)
        cached = expect_tensor(
            generate(model, prompt, 9, use_cache=True), "generate(use_cache=True)", shape=(2, 12)
        )
        plain = expect_tensor(
            generate(model, prompt, 9, use_cache=False), "generate(use_cache=False)", shape=(2, 12)
        )
        expect(torch.equal(cached, plain), f"{name}: cached {cached.tolist()} != uncached {plain.tolist()}")
        expect(torch.equal(cached[:, :3], prompt), f"{name}: the output must start with the prompt")
        with torch.no_grad():
            logits = model(cached[:, :-1])[0]
        expect(
            torch.equal(cached[:, 3:], logits[:, 2:].argmax(-1)),
            f"{name}: each new token must be the argmax of the logits at the previous position",
        )


@PARALLEL.check("generate(use_cache=True) runs the prompt once, then one token per step")
def _par_generate_spy(incremental, generate):
    model = _model("GPT-2 style (learned positions)", spy=True)
    generate(model, _ids(1, 4), 3, use_cache=True)
    expect(
        model.calls[0] == (4, True) and model.calls[1:] == [(1, True)] * 2,
        f"expected calls (4, cached) then (1, cached) × 2, got (tokens, cached) = {model.calls}",
    )
    model.calls.clear()
    generate(model, _ids(1, 4), 3, use_cache=False)
    expect(
        [c[0] for c in model.calls] == [4, 5, 6],
        f"use_cache=False should re-run 4, 5, 6 tokens, got {[c[0] for c in model.calls]}",
    )


@PARALLEL.check("exceeding the context window raises ValueError; n = 0 returns the prompt")
def _par_context(incremental, generate):
    model, prompt = _model("GPT-2 style (learned positions)"), _ids(1, 15)
    expect_raises(
        ValueError, lambda: generate(model, prompt, 6), "generate(model, 15 tokens, 6) with block_size 20"
    )
    out = generate(model, prompt, 0)
    expect(torch.equal(out, prompt), "generate(model, ids, 0) must return ids unchanged")
    out = expect_tensor(generate(model, prompt, 5), "generate(model, 15 tokens, 5)", shape=(1, 20))


# --------------------------------------------------------------------------------------------------
# gpt.lm-loss
# --------------------------------------------------------------------------------------------------

LM_LOSS = register(
    Exercise(
        id="gpt.lm-loss",
        title="The language-model loss, perplexity and next-token targets",
        names=("lm_loss", "perplexity", "shift_targets"),
        references=(lm_loss, perplexity, shift_targets),
        signature='''def lm_loss(logits, targets, ignore_index=-100):
    """Mean cross-entropy over positions whose target != ignore_index.
    logits (B, T, V) float; targets (B, T) int64. Returns a scalar tensor (differentiable)."""

def perplexity(logits, targets, ignore_index=-100):
    """exp of the mean loss (in nats) over the positions whose target != ignore_index; a scalar."""

def shift_targets(ids, ignore_index=-100):
    """Next-token targets (B, T): targets[:, t] = ids[:, t + 1]; the last position has none
    and gets ignore_index."""''',
        hint="flatten (B, T, V) to (B·T, V); average only over the counted positions; perplexity is "
        "exp of that loss (nats), not 2**.",
    )
)


def _logits(seed: int = 0, b: int = 3, t: int = 6, v: int = 7, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(b, t, v, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@LM_LOSS.check("lm_loss matches F.cross_entropy with ignored positions (float64, 1e-10)")
def _lm_ce(loss_fn, ppl, shift):
    logits = _logits()
    targets = torch.randint(0, 7, (3, 6), generator=torch.Generator().manual_seed(1))
    targets[0, 2:] = -100
    targets[2, 0] = -100
    got = loss_fn(logits, targets)
    want = F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), ignore_index=-100)
    expect_close(torch.as_tensor(got).reshape(()), want, "loss", atol=1e-10)
    targets0 = targets.masked_fill(targets == -100, 0)  # ignore_index=0: class 0 is skipped
    got0 = loss_fn(logits, targets0, ignore_index=0)
    want0 = F.cross_entropy(logits.reshape(-1, 7), targets0.reshape(-1), ignore_index=0)
    expect_close(torch.as_tensor(got0).reshape(()), want0, "loss with ignore_index=0", atol=1e-10)


@LM_LOSS.check("uniform logits give log V and perplexity V; perplexity = exp(loss) in general")
def _lm_uniform(loss_fn, ppl, shift):
    for v in (2, 65, 50257):
        logits, targets = torch.zeros(1, 4, v, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.long)
        loss = as_number(loss_fn(logits, targets), "lm_loss")
        expect(abs(loss - math.log(v)) < 1e-9, f"V = {v}: expected log V = {math.log(v):.6f}, got {loss:.6f}")
        p = as_number(ppl(logits, targets), "perplexity")
        expect(abs(p - v) < 1e-6 * v, f"V = {v}: perplexity should be exp(log V) = {v}, got {p:.6g}")
    logits, targets = _logits(5), torch.randint(0, 7, (3, 6), generator=torch.Generator().manual_seed(6))
    targets[1, 2:] = -100
    want = math.exp(float(F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), ignore_index=-100)))
    got = as_number(ppl(logits, targets, ignore_index=-100), "perplexity")
    expect(abs(got - want) < 1e-9 * want, f"random logits: expected exp(loss) = {want:.8g}, got {got:.8g}")


@LM_LOSS.check("ignored positions change neither the loss nor the gradients")
def _lm_ignored(loss_fn, ppl, shift):
    targets = torch.randint(0, 7, (3, 6), generator=torch.Generator().manual_seed(2))
    targets[:, -1] = -100
    targets[1, :3] = -100
    a = _logits(3).requires_grad_()
    b = a.detach().clone()
    b[:, -1] += 100.0 * torch.randn(3, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    b[1, :3] = 50.0
    b.requires_grad_()
    la, lb = loss_fn(a, targets), loss_fn(b, targets)
    expect_close(
        torch.as_tensor(lb).reshape(()), torch.as_tensor(la).reshape(()).detach(), "loss", atol=1e-10
    )
    (ga,) = torch.autograd.grad(la, a)
    (gb,) = torch.autograd.grad(lb, b)
    expect_close(gb, ga, "gradient", atol=1e-12)
    expect(float(ga[:, -1].abs().max()) == 0.0, "ignored positions must get exactly zero gradient")


@LM_LOSS.check("shift_targets: targets are the inputs shifted by one, last = ignore_index")
def _lm_shift(loss_fn, ppl, shift):
    ids = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    got = expect_tensor(shift(ids), "shift_targets(ids)", shape=(2, 5))
    want = [[1, 4, 1, 5, -100], [2, 6, 5, 3, -100]]
    expect(got.tolist() == want, f"expected {want}, got {got.tolist()}")
    expect(shift(ids, ignore_index=-1)[:, -1].tolist() == [-1, -1], "the last target must be ignore_index")
    expect(
        torch.equal(ids, torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])),
        "shift_targets must not modify ids",
    )


@LM_LOSS.check("the loss averages over T − 1 predictions of a shifted sequence")
def _lm_formula(loss_fn, ppl, shift):
    logits = _logits(5, b=2, t=5, v=6)
    ids = torch.randint(0, 6, (2, 5), generator=torch.Generator().manual_seed(6))
    logp = torch.log_softmax(logits, -1)
    want = -sum(logp[b, t, ids[b, t + 1]] for b in range(2) for t in range(4)) / 8
    got = loss_fn(logits, shift(ids))
    expect_close(torch.as_tensor(got).reshape(()), want, "−(1/(T−1)) Σ log p(x_{t+1} | x_{≤t})", atol=1e-10)


# --------------------------------------------------------------------------------------------------
# gpt.param-count
# --------------------------------------------------------------------------------------------------

PARAM_COUNT = register(
    Exercise(
        id="gpt.param-count",
        title="Parameter count of a dense GPT from its configuration",
        names=("param_count",),
        references=(param_count,),
        signature='''def param_count(cfg):
    """Exact number of parameters of GPT(cfg) for a GPT-2-style GPTConfig: learned positions,
    Pre-LN with LayerNorm (and a final ln_f), 4d GELU MLP, multi-head attention.
    Fields used: vocab_size V, block_size n_ctx, n_layer L, n_embd d, bias (biases in every
    Linear and LayerNorm), tie_embeddings (the output layer shares the token embedding)."""''',
        hint="per block: attention 4d² (+4d), MLP 8d² (+5d), two LayerNorms 2d each (d without bias); "
        "then V·d + n_ctx·d, ln_f, and V·d again only if untied.",
    )
)

_GPT3 = GPTConfig(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288)


@PARAM_COUNT.check("equals sum(p.numel()) of the companion GPT for several configurations")
def _pc_numel(count):
    for kw in (
        {},
        {"n_layer": 3, "n_embd": 48},
        {"bias": False},
        {"tie_embeddings": False},
        {"bias": False, "tie_embeddings": False, "vocab_size": 7, "block_size": 3},
    ):
        cfg = GPTConfig(**{"vocab_size": 50, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16, **kw})
        want = GPT(cfg, device="meta").num_parameters()
        got = count(cfg)
        expect(got == want, f"{kw or 'base config'}: expected {want:,}, got {got}")


@PARAM_COUNT.check("GPT-2 small (tied) has exactly 124,439,808 parameters")
def _pc_gpt2(count):
    got = count(GPTConfig.gpt2())
    expect(got == 124_439_808, f"expected 124,439,808, got {got}")


@PARAM_COUNT.check("GPT-3 175B is within 1% of 175B; the same width with L = 12 is ≈ 22.4B")
def _pc_gpt3(count):
    got = count(_GPT3)
    expect(abs(got - 175e9) / 175e9 < 0.01, f"GPT-3 (L=96, d=12288): expected ≈ 175B, got {got / 1e9:.2f}B")
    small = count(dataclasses.replace(_GPT3, n_layer=12))
    expect(abs(small - 22.4e9) < 0.05e9, f"L = 12, d = 12288: expected ≈ 22.4B, got {small / 1e9:.2f}B")


@PARAM_COUNT.check("untying the output layer adds exactly V·d")
def _pc_untied(count):
    cfg = GPTConfig(vocab_size=97, block_size=8, n_layer=1, n_head=2, n_embd=24)
    diff = count(dataclasses.replace(cfg, tie_embeddings=False)) - count(cfg)
    expect(diff == 97 * 24, f"expected {97 * 24}, got {diff}")


# --------------------------------------------------------------------------------------------------
# gpt.lr-schedule
# --------------------------------------------------------------------------------------------------


def _reference_schedule(step, warmup, total, lr_max, lr_min=0.0):
    return WarmupCosine(lr_max, warmup, total, lr_min).lr_at(step)


LR = register(
    Exercise(
        id="gpt.lr-schedule",
        title="Linear warm-up and cosine decay",
        names=("warmup_cosine",),
        references=(_reference_schedule,),
        signature='''def warmup_cosine(step, warmup, total, lr_max, lr_min=0.0):
    """lr_max * step / warmup for step < warmup;
    lr_min + (lr_max - lr_min) * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2
    for warmup <= step <= total; lr_min after total. Returns a float.
    warmup = 0 is allowed; warmup >= total raises ValueError."""''',
        hint="the cosine's argument runs from 0 at the end of warm-up to π at total; clamp after total.",
    )
)


@LR.check("lr_max at the end of warm-up, lr_min at total, lr_min beyond total")
def _lr_ends(fn):
    for warmup, total in ((10, 100), (0, 50), (3, 4)):
        expect(
            abs(fn(warmup, warmup, total, 3e-4, 3e-5) - 3e-4) < 1e-15,
            f"step = warmup = {warmup}: expected 3e-4",
        )
        expect(
            abs(fn(total, warmup, total, 3e-4, 3e-5) - 3e-5) < 1e-15, f"step = total = {total}: expected 3e-5"
        )
        for step in (total + 1, 2 * total + 7):
            got = fn(step, warmup, total, 3e-4, 3e-5)
            expect(abs(got - 3e-5) < 1e-15, f"step {step} > total {total}: expected lr_min 3e-5, got {got}")


@LR.check("linear warm-up from 0: lr_max · step / warmup")
def _lr_warmup(fn):
    for step in range(10):
        got, want = fn(step, 10, 100, 1e-3), 1e-3 * step / 10
        expect(abs(got - want) < 1e-15, f"step {step}: expected {want}, got {got}")


@LR.check("after warm-up equals CosineAnnealingLR(T_max = total − warmup, eta_min = lr_min) (1e-10)")
def _lr_torch(fn):
    for warmup, total, lr_min in ((20, 120, 1e-4), (0, 37, 0.0)):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=lr_min)
        for step in range(warmup, total + 1):
            got, want = fn(step, warmup, total, 1e-3, lr_min), opt.param_groups[0]["lr"]
            expect(
                abs(got - want) < 1e-10, f"warmup {warmup}, step {step}: expected {want:.10g}, got {got:.10g}"
            )
            opt.step()
            sched.step()


@LR.check("warmup > total raises ValueError")
def _lr_raises(fn):
    expect_raises(ValueError, lambda: fn(0, 200, 100, 1e-3), "warmup_cosine(0, warmup=200, total=100, 1e-3)")
