"""Benchmark: companion's byte-level BPE vs Hugging Face ``tokenizers`` (Rust) and the naive trainer.

Everything runs side by side in one process (timings on a shared machine are noisy: the fast trainers
are timed as the median of 5 runs after an untimed warm-up run, the naive one once):

1. **Training** on tiny Shakespeare (1.1 MB) at vocabulary sizes 512, 1024 and 8192, all with GPT-2's
   pre-tokenization regex: ``companion.tokenizers.BPETokenizer.train`` (incremental pair counts),
   ``tokenizers.trainers.BpeTrainer`` with the ``ByteLevel`` pre-tokenizer, and the naive trainer
   ``companion.tokenizers.naive.train_bytes_naive`` (recounts every pair after every merge; by
   default only at 512 and 1024 — at 8192 it takes tens of minutes). The companion's merges are
   checked to equal the naive trainer's, and its compression (bytes per token) is printed next to
   the Rust trainer's.
2. **Encoding throughput** (MB/s) on the whole corpus: the companion's ``encode`` with a cold and
   a warm pre-token cache vs ``tokenizers``' ``encode`` on the same string, for the same merges
   (the 8192 vocabulary trained in step 1, and SmolLM2's 49,152-token vocabulary).
3. ``--memory``: peak resident memory of training on a 100 MB synthetic corpus streamed from disk,
   measured in a child process (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``).

Usage::

    python benchmarks/tokenizers.py                  # steps 1 and 2
    python benchmarks/tokenizers.py --memory         # also step 3 (about a minute or two more)
    python benchmarks/tokenizers.py --naive 512      # naive trainer at 512 only
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This file is called tokenizers.py: keep its folder off sys.path so that `import tokenizers` finds
# Hugging Face's package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from companion.data import tiny_shakespeare  # noqa: E402
from companion.tokenizers import BPETokenizer  # noqa: E402
from companion.tokenizers.byte_level import token_to_unicode  # noqa: E402
from companion.tokenizers.naive import train_bytes_naive  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _timed_median(fn, repeats: int = 5):
    """The result and the median time of ``repeats`` calls: one call of a fraction of a second is
    at the mercy of the machine's load; the naive trainer's tens of seconds average it out."""
    runs = [_timed(fn) for _ in range(repeats)]
    return runs[0][0], sorted(t for _, t in runs)[repeats // 2]


def _hf_trainer(text: str, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator([text], trainer)
    return tok


def _hf_from(tok: BPETokenizer):
    """A Hugging Face tokenizer with exactly the companion tokenizer's vocabulary and merges."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token_to_unicode(b): i for i, b in tok.vocab.items()}
    merges = [(token_to_unicode(a), token_to_unicode(b)) for a, b in tok.merges]
    hf = Tokenizer(models.BPE(vocab, merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return hf


def bench_training(text: str, sizes: list[int], naive_sizes: set[int]) -> BPETokenizer:
    print("\n1. BPE training on tiny Shakespeare (GPT-2 regex; seconds: median of 5 runs, naive: 1 run)")
    print(
        f"{'vocab':>6} {'companion':>10} {'HF (Rust)':>10} {'naive':>10} {'naive/comp':>11} {'comp/HF':>8}"
        f" {'bytes/token comp':>17} {'HF':>7}"
    )
    n_bytes = len(text.encode("utf-8"))
    BPETokenizer.train(text, min(sizes), pattern="gpt2")  # warm-up: regex compilation, allocator
    _hf_trainer(text, min(sizes))
    last = None
    for size in sizes:
        ours, t_ours = _timed_median(lambda s=size: BPETokenizer.train(text, s, pattern="gpt2"))
        hf, t_hf = _timed_median(lambda s=size: _hf_trainer(text, s))
        naive_cell, ratio_cell = "skipped", "-"
        if size in naive_sizes:
            merges, t_naive = _timed(lambda s=size: train_bytes_naive(text, s, "gpt2"))
            assert merges == ours.merges, "the incremental trainer must reproduce the naive trainer's merges"
            naive_cell, ratio_cell = f"{t_naive:.2f}", f"{t_naive / t_ours:.0f}x"
        bpt_ours = n_bytes / len(ours.encode(text))
        bpt_hf = n_bytes / len(hf.encode(text).ids)
        ratio_hf = f"{t_ours / t_hf:.1f}x"
        print(
            f"{size:>6} {t_ours:>10.2f} {t_hf:>10.2f} {naive_cell:>10} {ratio_cell:>11} {ratio_hf:>8}"
            f" {bpt_ours:>17.4f} {bpt_hf:>7.4f}"
        )
        last = ours
    return last


def bench_encoding(text: str, trained: BPETokenizer) -> None:
    print("\n2. Encoding the whole corpus (MB/s; same vocabulary and merges on both sides)")
    from companion.tokenizers.pretokenize import safe_chunks

    mb = len(text.encode("utf-8")) / 1e6
    chunks = list(safe_chunks(text, 20_000))  # cut where no pre-token can straddle: exact ids
    smollm2 = BPETokenizer.from_pretrained("smollm2", pattern="gpt2")
    print(
        f"{'vocabulary':<16} {'comp cold':>10} {'comp warm':>10} {'HF 1 string':>12} {'HF batch':>9}"
        f" {'time comp warm / HF 1 string':>29} {'/ HF batch':>11}"
    )
    for name, tok in ((f"trained {trained.vocab_size}", trained), ("SmolLM2 49152", smollm2)):
        hf = _hf_from(tok)
        tok._cache.clear()
        ids, t_cold = _timed(lambda t=tok: t.encode(text, allowed_special="none"))
        _, t_warm = _timed(lambda t=tok: t.encode(text, allowed_special="none"))
        ref, t_hf = _timed(lambda h=hf: h.encode(text).ids)
        batch, t_batch = _timed(lambda h=hf: [i for e in h.encode_batch(chunks) for i in e.ids])
        assert ids == ref == batch, "companion and tokenizers must produce the same ids"
        print(
            f"{name:<16} {mb / t_cold:>10.2f} {mb / t_warm:>10.2f} {mb / t_hf:>12.2f} {mb / t_batch:>9.2f}"
            f" {t_warm / t_hf:>28.2f}x {t_warm / t_batch:>10.2f}x"
        )


def _synthetic_corpus(path: Path, n_bytes: int, seed: int = 0) -> None:
    """Tiny Shakespeare's words, reshuffled into new lines, with random numbers and casing."""
    rng = random.Random(seed)
    words = tiny_shakespeare().split()
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < n_bytes:
            line = []
            for _ in range(rng.randint(3, 14)):
                w = rng.choice(words)
                r = rng.random()
                if r < 0.05:
                    w = str(rng.randint(0, 10 ** rng.randint(1, 6)))
                elif r < 0.10:
                    w = w.upper()
                line.append(w)
            s = " ".join(line) + "\n"
            f.write(s)
            written += len(s.encode("utf-8"))


def bench_memory(n_mb: int, vocab_size: int) -> None:
    print(f"\n3. Training on a {n_mb} MB synthetic corpus streamed from disk (vocab {vocab_size})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        _synthetic_corpus(path, n_mb * 10**6)
        size_mb = path.stat().st_size / 1e6
        cmd = [sys.executable, __file__, "--memory-child", str(path), str(vocab_size)]
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(
        f"corpus {size_mb:.1f} MB; {out.stdout.strip()}; wall {elapsed:.1f} s; "
        f"peak RSS of the training process {peak_kb / 1024:.0f} MiB (goal < 2048 MiB)"
    )


def _memory_child(path: str, vocab_size: int) -> None:
    with open(path, encoding="utf-8") as f:
        tok = BPETokenizer.train(f, vocab_size, pattern="gpt2")
    print(f"learned {len(tok.merges)} merges")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 8192])
    parser.add_argument(
        "--naive", type=int, nargs="*", default=[512, 1024], help="vocab sizes for the naive trainer"
    )
    parser.add_argument("--memory", action="store_true", help="also measure peak memory on a 100 MB corpus")
    parser.add_argument("--memory-mb", type=int, default=100)
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    import tokenizers

    print(
        f"Python {platform.python_version()}, tokenizers {tokenizers.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    text = tiny_shakespeare()
    trained = bench_training(text, args.sizes, set(args.naive))
    bench_encoding(text, trained)
    if args.memory:
        bench_memory(args.memory_mb, 8192)


if __name__ == "__main__":
    main()
