"""SmolLM2-135M-Instruct: the companion's Llama vs Hugging Face ``transformers``, on the same weights.

Both load the pinned GGUF file (``transformers`` with ``gguf_file=``, dequantized to float32; ours
with :func:`companion.models.load_llama_gguf`) — the logits agree to 1e-4 (``tests/test_llama.py``).
Measured, in this order:

1. **Load time and peak memory**: each side loads the model in a fresh child process, runs a
   512-token prefill and 32 decode steps, and reports its wall time to load and its peak resident set
   (``ru_maxrss``). A child per side, because a process's peak cannot be split between two models.
2. **Decode**: ``new_tokens`` greedy tokens, batch 1, KV cache, after the chat prompt — the
   companion's ``generate`` vs ``model.generate`` (EOS banned on both sides, so both produce every token).
3. **Prefill**: one forward pass over ``prefill`` tokens (no cache kept), ``torch.inference_mode``.

Timings alternate between the two models for ``rounds`` rounds and report the median of the per-round
ratios, so a machine that slows down mid-run slows both. Ratios are companion speed / HF speed
(> 1: ours is faster).

Usage::

    python benchmarks/llama_decode.py                         # CPU, 1 and 2 threads
    python benchmarks/llama_decode.py --threads 1 --new-tokens 64 --rounds 2
    python benchmarks/llama_decode.py --device cuda --dtype bfloat16 [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

# Running the script puts benchmarks/ first on sys.path, where benchmarks/tokenizers.py would shadow
# the `tokenizers` package that transformers imports: load the shared harness, then drop the folder.
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import alternate, peak_rss_mib, ratio_summary, spawn_child  # noqa: E402

sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]

from companion import hub  # noqa: E402
from companion.generate import generate  # noqa: E402
from companion.models.llama import load_llama_gguf  # noqa: E402
from companion.tokenizers.bpe import BPETokenizer  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]


def load_hf(dtype: torch.dtype, device: str):
    """``transformers`` loading the same GGUF file (needs ``accelerate``)."""
    import transformers

    transformers.logging.set_verbosity_error()
    path = hub.path("smollm2", hub.SMOLLM2_GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=dtype
    )
    return model.to(device).eval()


def decode_ours(model, prompt: torch.Tensor, n: int, eos: int) -> torch.Tensor:
    """EOS banned for all ``n`` steps, as ``min_new_tokens=n`` does on the HF side."""
    return generate(model, prompt, n, stop_tokens=[eos], min_new_tokens=n)


def decode_hf(model, prompt: torch.Tensor, n: int) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
        )


def prefill_ours(model, idx: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(idx)[0]


def prefill_hf(model, idx: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(idx, use_cache=False).logits


def child(side: str, dtype: str, device: str, threads: int, prefill: int) -> None:
    """Load one side, run a prefill and 32 decode steps, print JSON with load seconds and peak RSS."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    if side == "ours":
        model, tok = load_llama_gguf(dtype=DTYPES[dtype], device=device)
    else:
        model = load_hf(DTYPES[dtype], device)
        tok = BPETokenizer.from_gguf(hub.path("smollm2", hub.SMOLLM2_GGUF))
    load_s = time.perf_counter() - t0
    idx = _text_ids(tok, prefill, device)
    prompt = torch.tensor([tok.apply_chat_template(PROMPT, add_generation_prompt=True)], device=device)
    if side == "ours":
        prefill_ours(model, idx)
        decode_ours(model, prompt, 32, tok.eos_id)
    else:
        prefill_hf(model, idx)
        decode_hf(model, prompt, 32)
    print(json.dumps({"load_s": load_s, "peak_rss_mib": peak_rss_mib()}))


def _text_ids(tok, n: int, device: str) -> torch.Tensor:
    from companion.data import tiny_shakespeare

    ids = tok.encode(tiny_shakespeare()[: 8 * n])[:n]
    return torch.tensor([ids], device=device)


def _spawn(side: str, args: argparse.Namespace, threads: int) -> dict[str, float]:
    return spawn_child(__file__, ["--child", side, "--dtype", args.dtype, "--device", args.device,
                                  "--threads", str(threads), "--prefill", str(args.prefill)])  # fmt: skip


def run(args: argparse.Namespace, threads: int, ours, hf, tok) -> None:
    torch.set_num_threads(threads)
    dev = args.device
    print(f"\n--- {threads} thread(s) ---")
    prompt = torch.tensor([tok.apply_chat_template(PROMPT, add_generation_prompt=True)], device=dev)
    n = args.new_tokens
    a, b = decode_ours(ours, prompt, 8, tok.eos_id), decode_hf(hf, prompt, 8)  # warm-up
    if a.tolist() != b.tolist():
        raise AssertionError(f"the two models decode different tokens: {a.tolist()} vs {b.tolist()}")
    dec_o, dec_h = alternate(
        lambda: decode_ours(ours, prompt, n, tok.eos_id), lambda: decode_hf(hf, prompt, n), args.rounds, dev
    )
    print(f"decode  {n} tokens after a {prompt.shape[1]}-token prompt, batch 1, greedy, KV cache")
    print(f"  companion        {n / statistics.median(dec_o):8.1f} tokens/s")
    print(f"  transformers     {n / statistics.median(dec_h):8.1f} tokens/s")
    print(f"  speed ratio      {ratio_summary(dec_o, dec_h)}  (goal >= 1.5x)")
    idx = _text_ids(tok, args.prefill, dev)
    prefill_ours(ours, idx), prefill_hf(hf, idx)  # warm-up
    pre_o, pre_h = alternate(lambda: prefill_ours(ours, idx), lambda: prefill_hf(hf, idx), args.rounds, dev)
    print(f"prefill {idx.shape[1]} tokens, one forward pass")
    print(f"  companion        {idx.shape[1] / statistics.median(pre_o):8.1f} tokens/s")
    print(f"  transformers     {idx.shape[1] / statistics.median(pre_h):8.1f} tokens/s")
    print(f"  speed ratio      {ratio_summary(pre_o, pre_h)}  (goal >= 1.0x)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--prefill", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--compile", action="store_true", help="torch.compile both models (CUDA)")
    p.add_argument("--skip-memory", action="store_true", help="skip the load-time / peak-RSS children")
    p.add_argument("--child", choices=["ours", "hf"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.dtype, args.device, args.threads[0], args.prefill)
        return
    cpu = platform.processor() or platform.machine()
    where = f"{args.dtype} on {args.device}; torch {torch.__version__}, {cpu} with {os.cpu_count()} CPUs"
    print(f"SmolLM2-135M-Instruct, {where}")
    if not args.skip_memory and args.device == "cpu":
        t = args.threads[0]
        mem = {side: _spawn(side, args, t) for side in ("ours", "hf")}
        print(
            f"load + {args.prefill}-token prefill + 32 decode steps, each in a fresh process ({t} thread(s))"
        )
        for side, name in (("ours", "companion"), ("hf", "transformers")):
            m = mem[side]
            print(f"  {name:14s}   load {m['load_s']:5.1f} s   peak RSS {m['peak_rss_mib']:6.0f} MiB")
        load = mem["hf"]["load_s"] / mem["ours"]["load_s"]
        rss = mem["ours"]["peak_rss_mib"] / mem["hf"]["peak_rss_mib"]
        print(f"  load-time ratio  {load:.1f}x faster; peak RSS ours / HF {rss:.2f} (goal <= 1)")
    ours, tok = load_llama_gguf(dtype=DTYPES[args.dtype], device=args.device)
    hf = load_hf(DTYPES[args.dtype], args.device)
    if args.compile:
        ours.forward = torch.compile(ours.forward)
        hf.forward = torch.compile(hf.forward)
    for threads in args.threads:
        run(args, threads, ours, hf, tok)


if __name__ == "__main__":
    main()
