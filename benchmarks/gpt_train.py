"""Benchmark: GPT training throughput (tokens/s) and MFU, companion vs Hugging Face, in one process.

For each configuration, one training step — forward, loss, backward, gradient clipping at 1.0 and an
AdamW step — is timed for

* ``companion``: :class:`companion.models.GPT` with GPT-2's choices (biases, tanh GELU, learned
  positions, tied embeddings), PyTorch's fused ``scaled_dot_product_attention``, and
  ``torch.optim.AdamW(fused=True)`` (``--optimizer foreach`` for the multi-tensor implementation);
* ``companion + companion AdamW``: the same model with the companion's multi-tensor ``AdamW``;
* ``Hugging Face``: ``transformers.GPT2LMHeadModel`` with the same configuration (its default
  attention implementation, ``sdpa``, its fastest here: ``eager`` is slower) and the same
  ``torch.optim.AdamW``;
* with ``--hf-with-our-gelu``, ``HF + companion GELU``: Hugging Face's model with only its
  activation replaced by :func:`companion.nn.activations.gelu_tanh_fast`, which shows how much of
  the difference is the GELU.

Both models get the fastest implementation of the same optimizer: on a CPU, ``fused=True`` takes
2.4 ms per step of the baby config where ``foreach=True`` takes 5.6 ms (clipping included), time
that is the same for both models and so only dilutes the comparison of the models themselves.

The models see the same batches. Steps of the contenders are interleaved (one of each per round) so
that a change in machine load affects all of them alike; the reported time is the median over
rounds, and the speed-up is the median of the per-round ratios (with their quartiles). MFU uses the
analytic FLOPs per token (``GPT.flops_per_token``: ``6·N_mm + 12·L·T·d``, the same for both models)
and, as the peak, the measured FLOP/s of a large fp32 matrix product on this device (CPU) — there
is no published peak for an arbitrary CPU.

Usage::

    python benchmarks/gpt_train.py                       # baby (10 rounds) and default (3 rounds) on CPU
    python benchmarks/gpt_train.py --configs baby --rounds 10 --threads 2
    python benchmarks/gpt_train.py --configs baby --rounds 40 --hf-with-our-gelu
    python benchmarks/gpt_train.py --device cuda --configs default --rounds 20
    python benchmarks/gpt_train.py --device cuda --configs gpt2-small --precision bf16 --compile

On CUDA, ``--precision bf16`` runs every contender's forward pass under ``torch.autocast(bfloat16)``
and ``--compile`` wraps every model in ``torch.compile``; MFU is then reported against both the
measured bf16 matmul rate and the vendor's dense bf16 peak when the GPU is one we know (H100/H200 SXM:
989 TFLOP/s).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Running `python benchmarks/gpt_train.py` puts benchmarks/ first on sys.path, where another script's
# name (tokenizers.py) would shadow the `tokenizers` package that transformers imports.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from companion.models import GPT, GPTConfig  # noqa: E402
from companion.nn.activations import gelu_tanh_fast  # noqa: E402
from companion.optim import AdamW  # noqa: E402
from companion.train.throughput import matmul_flops_per_second, mfu  # noqa: E402

CONFIGS = {  # name -> (n_layer, n_head, n_embd, block_size, batch_size)
    "baby": (4, 4, 128, 64, 12),
    "default": (6, 6, 384, 256, 64),
    "gpt2-small": (12, 12, 768, 1024, 16),  # GPT-2 small's shape (124M parameters), for a GPU
}
VOCAB = {"gpt2-small": 50257}  # the others are character-level tiny Shakespeare (65 symbols)
# Dense bf16 tensor-core peaks from the vendors' data sheets (no sparsity), for the MFU on a GPU.
VENDOR_BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step_fn(model, opt, x, y, *, hf: bool, autocast: torch.dtype | None = None) -> Callable[[], float]:
    def step() -> float:
        with torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
            if hf:
                loss = model(input_ids=x, labels=x).loss  # Hugging Face shifts the labels inside
            else:
                loss = model(x, y)[1]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


class _CompanionGELU(torch.nn.Module):
    """The companion's tanh GELU (``gelu_tanh_fast``) as a module, to put into Hugging Face's MLP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_tanh_fast(x)


def run_config(
    name: str,
    rounds: int,
    device: torch.device,
    peak: float,
    *,
    autocast: torch.dtype | None = None,
    compile: bool = False,
    optimizer: str = "fused",
    hf_with_our_gelu: bool = False,
) -> None:
    import transformers

    transformers.logging.set_verbosity_error()  # set after the import, which resets the level

    n_layer, n_head, n_embd, block, batch = CONFIGS[name]
    vocab = VOCAB.get(name, 65)
    cfg = GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    torch.manual_seed(0)
    hc = transformers.GPT2Config(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab, n_positions=block,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    hf = transformers.GPT2LMHeadModel(hc).to(device).train()
    ours = GPT.from_hf_gpt2(hf).to(device).train()  # identical weights: the first losses must agree
    ours2 = GPT.from_hf_gpt2(hf).to(device).train()
    assert ours.config == cfg, (ours.config, cfg)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (batch, block), generator=gen).to(device)
    y = torch.cat([x[:, 1:], torch.full((batch, 1), -100, device=device)], dim=1)  # HF's shifted labels

    opts = [torch.optim.AdamW(m.parameters(), lr=1e-4, **{optimizer: True}) for m in (ours, hf)]
    opt2 = AdamW(ours2.parameters(), lr=1e-4)
    run = [torch.compile(m) for m in (ours, ours2, hf)] if compile else [ours, ours2, hf]
    contenders = {
        "companion": _step_fn(run[0], opts[0], x, y, hf=False, autocast=autocast),
        "companion + companion AdamW": _step_fn(run[1], opt2, x, y, hf=False, autocast=autocast),
        "Hugging Face GPT2LMHeadModel": _step_fn(run[2], opts[1], x, y, hf=True, autocast=autocast),
    }
    if hf_with_our_gelu:  # the attribution: Hugging Face's model with only its activation replaced
        hf_gelu = copy.deepcopy(hf)
        for block_ in hf_gelu.transformer.h:
            block_.mlp.act = _CompanionGELU()
        opt3 = torch.optim.AdamW(hf_gelu.parameters(), lr=1e-4, **{optimizer: True})
        model = torch.compile(hf_gelu) if compile else hf_gelu
        contenders["HF + companion GELU"] = _step_fn(model, opt3, x, y, hf=True, autocast=autocast)
    first = {k: fn() for k, fn in contenders.items()}  # warm-up (and compilation)
    # Identical weights and batch: the first losses agree (loosely under bf16's 8-bit mantissa).
    tol = 1e-4 if autocast is None else 2e-2
    assert all(abs(loss - first["companion"]) < tol for loss in first.values()), first
    for fn in contenders.values():  # a second untimed step: compiled graphs may recompile once
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, fn in contenders.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)

    tokens = batch * block
    flops = ours.flops_per_token(block)
    # The peak is re-measured after the timed steps and the larger value kept: a busy machine can
    # make one measurement low, which would inflate the MFU.
    mm_dtype = autocast or torch.float32
    peak = max(
        peak,
        matmul_flops_per_second(
            8192 if device.type == "cuda" else 1024, device=device, dtype=mm_dtype, repeats=10
        ),
    )
    vendor = _vendor_peak(device) if autocast == torch.bfloat16 else None
    size = f"{ours.num_parameters():,} parameters, {flops:,} FLOPs/token"
    shape = f"L={n_layer}, H={n_head}, d={n_embd}, T={block}, B={batch}"
    print(f"\n{name}: {shape} ({size}), torch.optim.AdamW({optimizer}=True), median of {rounds} rounds")
    hf_times = times["Hugging Face GPT2LMHeadModel"]
    for k, ts in times.items():
        med = statistics.median(ts)
        rate = tokens / med
        util = mfu(flops, rate, peak)
        speed = f"{med * 1e3:9.1f} ms/step {rate:10,.0f} tokens/s"
        extra = "" if vendor is None else f" (of the data-sheet peak: {mfu(flops, rate, vendor):6.1%})"
        print(f"  {k:<30} {speed}  MFU {util:6.1%}{extra}  × HF {_speedup(hf_times, ts)}")


def _speedup(reference: list[float], times: list[float]) -> str:
    """The speed-up over ``reference`` as the median of the per-round ratios, with their quartiles.

    A step of each contender runs in every round, so the ratio of the two steps of one round is
    measured under nearly the same machine load; the median of those ratios is steadier than the
    ratio of the two medians when the load drifts, and the quartiles show how much it varies.
    """
    ratios = [r / t for r, t in zip(reference, times, strict=True)]
    if len(ratios) < 4:
        return f"{statistics.median(ratios):5.2f}"
    q1, med, q3 = statistics.quantiles(ratios, n=4)
    return f"{med:5.2f} (quartiles {q1:.2f}–{q3:.2f})"


def _vendor_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    gpu = torch.cuda.get_device_name(device)
    return next((v for k, v in VENDOR_BF16_PEAK.items() if k in gpu), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["baby", "default"], choices=sorted(CONFIGS))
    parser.add_argument("--rounds", type=int, default=None, help="timed steps per contender (default 10 / 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="autocast dtype")
    parser.add_argument("--compile", action="store_true", help="torch.compile every contender")
    parser.add_argument(
        "--optimizer", default="fused", choices=["fused", "foreach"], help="torch.optim.AdamW implementation"
    )
    parser.add_argument(
        "--hf-with-our-gelu",
        action="store_true",
        help="also time Hugging Face's model with its GELU replaced by the companion's",
    )
    args = parser.parse_args()
    autocast = torch.bfloat16 if args.precision == "bf16" else None
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as every GPU training recipe does
        torch.backends.cudnn.allow_tf32 = True
    mm_dtype = autocast or torch.float32
    n = 8192 if device.type == "cuda" else 1024
    peak = matmul_flops_per_second(n, device=device, dtype=mm_dtype, repeats=10)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"torch {torch.__version__}, {where or platform.machine()}, device {device}, "
          f"{args.threads} thread(s), {args.precision}{', compiled' if args.compile else ''}; "
          f"measured {str(mm_dtype)[6:]} matmul peak {peak / 1e9:,.1f} GFLOP/s")  # fmt: skip
    for name in args.configs:
        rounds = args.rounds or (10 if name == "baby" else 3)
        run_config(
            name,
            rounds,
            device,
            peak,
            autocast=autocast,
            compile=args.compile,
            optimizer=args.optimizer,
            hf_with_our_gelu=args.hf_with_our_gelu,
        )


if __name__ == "__main__":
    main()
