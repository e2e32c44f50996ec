"""Exercises of the Distributed-training chapter (``notebooks/llm/distributed-training.ipynb``).

References: the ZeRO paper's Figure 1 numbers, full-batch gradients computed by autograd in float64,
the dense MLP, and ``torch.amp.GradScaler`` (scale trajectory on a scripted sequence).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from companion.grading.checks import as_number, expect, expect_close, expect_raises, expect_tensor
from companion.grading.registry import Exercise, register
from companion.train.accumulate import accumulate_grads
from companion.train.memory import memory_budget
from companion.train.parallel import split_mlp, tp_mlp_forward
from companion.train.precision import LossScaler

# --------------------------------------------------------------------------------------------------
# distributed-training.memory-budget
# --------------------------------------------------------------------------------------------------

MEMORY = register(
    Exercise(
        id="distributed-training.memory-budget",
        title="Bytes of model states per device with mixed precision and ZeRO",
        names=("memory_budget",),
        references=(memory_budget,),
        signature='''def memory_budget(n_params, optimizer="adam", precision="mixed", zero_stage=0,
                  n_devices=1):
    """Bytes of model states on ONE device for data-parallel training.
    Returns {"weights", "gradients", "optimizer", "total"} (ints, bytes).
    precision "mixed": 2-byte weights and gradients; "fp32": 4-byte.
    optimizer "adam": K = 12 bytes/param with "mixed" (fp32 master + m + v), 8 with "fp32" (m + v);
              "sgd" (momentum): K = 8 with "mixed" (master + momentum), 4 with "fp32".
    ZeRO stage 1 partitions the optimizer states over n_devices, stage 2 also the gradients,
    stage 3 also the weights; a partitioned tensor takes ceil(n_params / n_devices) elements.
    Unknown optimizer or precision, or a stage outside 0–3: ValueError."""''',
        hint="total = w·Ψ + g·Ψ + K·Ψ, then divide each partitioned term by N_d: "
        "stage 1 → K, 2 → g and K, 3 → all.",
    )
)


@MEMORY.check("ZeRO Figure 1: Ψ = 7.5B, N_d = 64 gives 120 / 31.4 / 16.6 / 1.9 GB for stages 0–3")
def _mem_paper(fn):
    want = [120.0, 31.4, 16.6, 1.9]
    got = [round(fn(7_500_000_000, "adam", "mixed", s, 64)["total"] / 1e9, 1) for s in range(4)]
    expect(got == want, f"expected {want} GB, got {got}")


@MEMORY.check("mixed-precision Adam takes 16 bytes per parameter (as much as fp32 Adam)")
def _mem_16(fn):
    for precision in ("mixed", "fp32"):
        b = fn(1000, "adam", precision)
        expect(b["total"] == 16_000, f"{precision} Adam: expected 16,000 bytes for 1,000 parameters, got {b}")
    b = fn(1000, "adam", "mixed")
    expect(
        (b["weights"], b["gradients"], b["optimizer"]) == (2000, 2000, 12000),
        f"mixed: expected weights 2,000, gradients 2,000, optimizer 12,000, got {b}",
    )
    b = fn(1000, "sgd", "fp32")
    expect(
        b["total"] == 12_000 and b["optimizer"] == 4000,
        f"fp32 SGD with momentum: expected 12,000 total, got {b}",
    )


@MEMORY.check("with one device every ZeRO stage gives the same budget; stages partition the right terms")
def _mem_stages(fn):
    for s in range(4):
        b = fn(999, "adam", "mixed", s, 1)
        expect(b["total"] == 16 * 999, f"stage {s}, one device: expected {16 * 999}, got {b['total']}")
    b1, b2, b3 = (fn(1200, "adam", "mixed", s, 4) for s in (1, 2, 3))
    expect(
        b1["gradients"] == 2400 and b1["optimizer"] == 3600, f"stage 1 partitions only the optimizer: {b1}"
    )
    expect(b2["weights"] == 2400 and b2["gradients"] == 600, f"stage 2 also partitions the gradients: {b2}")
    expect(b3["weights"] == 600, f"stage 3 also partitions the weights: {b3}")
    b = fn(10, "adam", "mixed", 3, 4)  # ceil(10 / 4) = 3 elements per device
    expect(b["total"] == 16 * 3, f"stage 3, Ψ = 10, N_d = 4: expected 48 bytes (ceil), got {b['total']}")


@MEMORY.check("unknown optimizer, precision or stage raises ValueError")
def _mem_errors(fn):
    expect_raises(ValueError, lambda: fn(10, "lion"), "optimizer='lion'")
    expect_raises(ValueError, lambda: fn(10, "adam", "fp8"), "precision='fp8'")
    expect_raises(ValueError, lambda: fn(10, "adam", "mixed", 4), "zero_stage=4")


# --------------------------------------------------------------------------------------------------
# distributed-training.grad-accum
# --------------------------------------------------------------------------------------------------

GRAD_ACCUM = register(
    Exercise(
        id="distributed-training.grad-accum",
        title="Gradient accumulation, with equal and unequal micro-batches",
        names=("accumulate_grads",),
        references=(accumulate_grads,),
        signature='''def accumulate_grads(model, micro_batches, loss_fn, weighting="mean", *,
                     ignore_index=-100):
    """Zero model's gradients, then accumulate the full-batch gradient over micro_batches,
    a list of (x, y); loss_fn(model(x), y) is the MEAN loss of one micro-batch over its targets
    != ignore_index. weighting="mean": each micro-batch weighs 1/k; "tokens": n_j / sum(n), with
    n_j = (y != ignore_index).sum(). Returns the accumulated loss as a float. Raises ValueError
    for a model containing batch normalization, or an unknown weighting."""''',
        hint="backward() adds into .grad: scale each micro-batch loss by its weight before calling it.",
    )
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def _batches(sizes, ignored=0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(sizes):
        x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (n,), generator=gen)
        if i == 1 and ignored:
            y[:ignored] = -100
        out.append((x, y))
    return out


def _full_grads(model, batches):
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    model.zero_grad()
    loss = F.cross_entropy(model(x), y, ignore_index=-100)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return loss.item(), grads


@GRAD_ACCUM.check("equal micro-batches reproduce the full-batch gradient (float64, 1e-12)")
def _acc_equal(fn):
    model, batches = _net(), _batches([4, 4, 4])
    loss, want = _full_grads(model, batches)
    got_loss = as_number(fn(model, batches, F.cross_entropy, "mean"), "the returned loss")
    expect(abs(got_loss - loss) < 1e-12, f"returned loss {got_loss} != full-batch loss {loss}")
    for i, (p, g) in enumerate(zip(model.parameters(), want, strict=True)):
        expect_close(p.grad, g, f"gradient of parameter {i}", atol=1e-12)


@GRAD_ACCUM.check("unequal token counts: 'tokens' matches the token mean, 'mean' (mean of means) does not")
def _acc_tokens(fn):
    model, batches = _net(), _batches([3, 6, 2], ignored=4)
    loss, want = _full_grads(model, batches)
    got_loss = as_number(fn(model, batches, F.cross_entropy, "tokens"), "the returned loss")
    expect(abs(got_loss - loss) < 1e-12, f"'tokens': returned loss {got_loss} != token-mean loss {loss}")
    for i, (p, g) in enumerate(zip(model.parameters(), want, strict=True)):
        expect_close(p.grad, g, f"'tokens': gradient of parameter {i}", atol=1e-12)
    means = [F.cross_entropy(model(x), y, ignore_index=-100) for x, y in batches]
    model.zero_grad()
    (sum(means) / 3).backward()
    mean_of_means = [p.grad.clone() for p in model.parameters()]
    fn(model, batches, F.cross_entropy, "mean")
    for i, (p, g) in enumerate(zip(model.parameters(), mean_of_means, strict=True)):
        expect_close(
            p.grad, g, f"'mean': gradient of parameter {i} (the mean of the micro-batch means)", atol=1e-12
        )
    diff = max((p.grad - g).abs().max().item() for p, g in zip(model.parameters(), want, strict=True))
    expect(diff > 1e-4, "with unequal token counts, 'mean' should differ from the token-mean gradient")


@GRAD_ACCUM.check("starts from zero gradients (stale .grad is cleared)")
def _acc_zero(fn):
    model, batches = _net(), _batches([2, 2])
    _, want = _full_grads(model, batches)
    for p in model.parameters():
        p.grad = torch.full_like(p, 5.0)
    fn(model, batches, F.cross_entropy, "mean")
    for i, (p, g) in enumerate(zip(model.parameters(), want, strict=True)):
        expect_close(p.grad, g, f"gradient of parameter {i}", atol=1e-12)


@GRAD_ACCUM.check("a model with BatchNorm is flagged with ValueError; so is an unknown weighting")
def _acc_bn(fn):
    bn = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3)).double()
    expect_raises(ValueError, lambda: fn(bn, _batches([4, 4]), F.cross_entropy), "a model with BatchNorm1d")
    expect_raises(ValueError, lambda: fn(_net(), _batches([4]), F.cross_entropy, "sum"), "weighting='sum'")


# --------------------------------------------------------------------------------------------------
# distributed-training.tensor-parallel-mlp
# --------------------------------------------------------------------------------------------------

TP = register(
    Exercise(
        id="distributed-training.tensor-parallel-mlp",
        title="A Megatron-style tensor-parallel MLP",
        names=("split_mlp", "tp_mlp_forward"),
        references=(split_mlp, tp_mlp_forward),
        signature='''def split_mlp(W1, b1, W2, b2, n_shards):
    """Split the MLP GELU(x W1 + b1) W2 + b2 (W1: (d, d_ff), W2: (d_ff, d)) into n_shards shards,
    a list of dicts {"W1": (d, d_ff/n) column block, "b1": (d_ff/n,), "W2": (d_ff/n, d) matching
    row block, "b2": b2 in shard 0 and None in the others}. d_ff % n_shards != 0: ValueError."""

def tp_mlp_forward(x, shards):
    """sum_i GELU(x W1_i + b1_i) W2_i, then + b2 once (exact GELU, F.gelu). x: (..., d)."""''',
        hint="column blocks of W₁ need no communication before the GELU; the row blocks of W₂ are summed.",
    )
)


def _mlp(d=6, d_ff=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(d, d_ff, generator=gen),
        torch.randn(d_ff, generator=gen),
        torch.randn(d_ff, d, generator=gen),
        torch.randn(d, generator=gen),
    )


@TP.check("equals the dense MLP for 1, 2 and 4 shards (1e-5)")
def _tp_dense(split, forward):
    W1, b1, W2, b2 = _mlp(d_ff=16)
    x = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(1))
    dense = F.gelu(x @ W1 + b1) @ W2 + b2
    for n in (1, 2, 4):
        got = forward(x, split(W1, b1, W2, b2, n))
        expect_close(got, dense, f"{n} shards", atol=1e-5)


@TP.check("shards are contiguous column blocks of W1/b1 and row blocks of W2; b2 only in shard 0")
def _tp_shapes(split, forward):
    W1, b1, W2, b2 = _mlp()
    shards = split(W1, b1, W2, b2, 3)
    expect(len(shards) == 3, f"expected 3 shards, got {len(shards)}")
    for i, s in enumerate(shards):
        expect_close(
            expect_tensor(s["W1"], f"shard {i} W1", shape=(6, 4)),
            W1[:, 4 * i : 4 * i + 4],
            f"shard {i} W1",
            atol=0,
        )
        expect_close(s["b1"], b1[4 * i : 4 * i + 4], f"shard {i} b1", atol=0)
        expect_close(
            expect_tensor(s["W2"], f"shard {i} W2", shape=(4, 6)),
            W2[4 * i : 4 * i + 4],
            f"shard {i} W2",
            atol=0,
        )
    expect(
        shards[0]["b2"] is not None and all(s["b2"] is None for s in shards[1:]), "b2 must be in shard 0 only"
    )


@TP.check("b2 is added once, not once per shard")
def _tp_bias(split, forward):
    W1, b1, W2, _ = _mlp()
    b2 = torch.full((6,), 10.0)
    x = torch.zeros(1, 6)
    dense = F.gelu(x @ W1 + b1) @ W2 + b2
    for n in (2, 3):
        expect_close(forward(x, split(W1, b1, W2, b2, n)), dense, f"{n} shards with b2 = 10", atol=1e-4)


@TP.check("d_ff not divisible by n_shards raises ValueError")
def _tp_raises(split, forward):
    W1, b1, W2, b2 = _mlp(d_ff=10)
    expect_raises(ValueError, lambda: split(W1, b1, W2, b2, 4), "split_mlp with d_ff = 10, n_shards = 4")


# --------------------------------------------------------------------------------------------------
# distributed-training.loss-scaler
# --------------------------------------------------------------------------------------------------

SCALER = register(
    Exercise(
        id="distributed-training.loss-scaler",
        title="Dynamic loss scaling, against torch.amp.GradScaler",
        names=("LossScaler",),
        references=(LossScaler,),
        signature='''class LossScaler:
    """LossScaler(init_scale=2**16, growth=2.0, backoff=0.5, interval=2000).
    scale(loss) -> loss * S.
    step(optimizer) -> bool: divide every p.grad by S in place; if any gradient is inf or NaN,
    skip optimizer.step(), multiply S by backoff and reset the count of clean steps; otherwise
    call optimizer.step() and, after `interval` clean steps in a row, multiply S by growth (and
    reset the count). Returns True if the optimizer stepped.
    get_scale() -> float, the current S."""''',
        hint="unscale first, then test torch.isfinite on every gradient; "
        "the counter resets on overflow and on growth.",
    )
)


def _run_pattern(scaler, pattern, check_grads=False):
    """Run a scripted sequence (True = overflow, 'nan' = NaN loss); return (scales, stepped, param)."""
    p = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    scales, stepped = [], []
    for event in pattern:
        factor = {True: float("inf"), "nan": float("nan")}.get(event, 1.0)
        p.grad = None
        loss = (p * torch.tensor([1.0, 2.0, 3.0])).sum() * factor
        scaled = scaler.scale(loss)
        scaled.backward()
        if isinstance(scaler, torch.amp.GradScaler):
            scaler.step(opt)
            scaler.update()
            ok = None
        else:
            ok = scaler.step(opt)
            if check_grads and event is False:
                expect_close(p.grad, torch.tensor([1.0, 2.0, 3.0]), "unscaled gradient after step", atol=0)
        scales.append(scaler.get_scale())
        stepped.append(ok)
    return scales, stepped, p.detach()


@SCALER.check("scale(loss) multiplies by S; unscaled gradients equal the true gradients")
def _sc_scale(cls):
    s = cls(init_scale=2.0**8)
    out = s.scale(torch.tensor(3.0))
    expect(float(out) == 768.0, f"scale(3.0) with S = 256: expected 768.0, got {float(out)}")
    _run_pattern(cls(init_scale=2.0**8, interval=5), [False, False], check_grads=True)


@SCALER.check("an inf or NaN gradient skips the step and halves S")
def _sc_skip(cls):
    for bad in (True, "nan"):
        scales, stepped, p = _run_pattern(cls(init_scale=1024.0, interval=100), [False, bad])
        expect(stepped == [True, False], f"{bad!r}: expected step() to return [True, False], got {stepped}")
        expect(scales == [1024.0, 512.0], f"{bad!r}: expected scales [1024, 512], got {scales}")
        want = torch.ones(3) - 0.1 * torch.tensor([1.0, 2.0, 3.0])  # only the clean step moved it
        expect_close(p, want, f"{bad!r}: parameters after a skipped step", atol=1e-7)


@SCALER.check("S doubles after `interval` clean steps in a row (the count restarts after an overflow)")
def _sc_growth(cls):
    scales, _, _ = _run_pattern(cls(init_scale=4.0, interval=3), [False] * 7)
    expect(scales == [4.0, 4.0, 8.0, 8.0, 8.0, 16.0, 16.0], f"expected [4, 4, 8, 8, 8, 16, 16], got {scales}")
    scales, _, _ = _run_pattern(cls(init_scale=4.0, interval=3), [False, False, True, False, False, False])
    expect(scales == [4.0, 4.0, 2.0, 2.0, 2.0, 4.0], f"expected [4, 4, 2, 2, 2, 4], got {scales}")


@SCALER.check("the scale trajectory matches torch.amp.GradScaler on a scripted sequence")
def _sc_torch(cls):
    pattern = [False, False, True, False, False, False, "nan", True, False, False, False, False, False]
    ours, _, p_ours = _run_pattern(cls(init_scale=2.0**10, interval=3), pattern)
    ref, _, p_ref = _run_pattern(torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3), pattern)
    expect(ours == ref, f"scales: expected {ref}, got {ours}")
    expect_close(p_ours, p_ref, "parameters after the sequence", atol=1e-6)
