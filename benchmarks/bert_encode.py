"""all-MiniLM-L6-v2 sentence encoding: the companion's BERT vs Hugging Face ``transformers.BertModel``,
on the same weights (the :mod:`companion.hub` asset; last hidden states equal, ``tests/test_bert.py``).

Measured: sentences/s for batches of ``batch`` sentences padded to ``length`` tokens (one forward
pass, ``torch.inference_mode``), alternating between the two models for ``rounds`` rounds (median of
the per-round ratios, companion speed / HF speed); then each side's load time and peak resident set
in a fresh child process that loads the model and encodes one batch.

Usage::

    python benchmarks/bert_encode.py                 # CPU, 1 thread, batch 32, length 128
    python benchmarks/bert_encode.py --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import alternate, peak_rss_mib, ratio_summary, spawn_child  # noqa: E402

# benchmarks/tokenizers.py would shadow the `tokenizers` package that transformers imports
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]

from companion import hub  # noqa: E402
from companion.data import tiny_shakespeare  # noqa: E402
from companion.models.bert import load_bert  # noqa: E402
from companion.tokenizers.wordpiece import WordPieceTokenizer  # noqa: E402


def load_hf():
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers.BertModel.from_pretrained(str(hub.fetch("minilm"))).eval()


def batch(batch_size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` rows of ``length`` WordPiece ids from tiny Shakespeare (every row full length)."""
    tok = WordPieceTokenizer.from_pretrained("minilm")
    ids = tok.encode(tiny_shakespeare()[: 20 * batch_size * length], add_special_tokens=False)
    rows = [[101, *ids[i * length : (i + 1) * length - 2], 102] for i in range(batch_size)]
    return torch.tensor(rows), torch.ones(batch_size, length, dtype=torch.long)


def encode_ours(model, ids, mask):
    with torch.inference_mode():
        return model(ids, mask)[0]


def encode_hf(model, ids, mask):
    with torch.inference_mode():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


def child(side: str, threads: int, batch_size: int, length: int) -> None:
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = load_bert()[0] if side == "ours" else load_hf()
    load_s = time.perf_counter() - t0
    ids, mask = batch(batch_size, length)
    (encode_ours if side == "ours" else encode_hf)(model, ids, mask)
    print(json.dumps({"load_s": load_s, "peak_rss_mib": peak_rss_mib()}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--child", choices=["ours", "hf"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.threads, args.batch, args.length)
        return
    torch.set_num_threads(args.threads)
    ours, hf = load_bert()[0], load_hf()
    ids, mask = batch(args.batch, args.length)
    a, b = encode_ours(ours, ids, mask), encode_hf(hf, ids, mask)  # warm-up, and the same numbers
    if (a - b).abs().max() > 1e-5:
        raise AssertionError("the two models encode differently")
    t_o, t_h = alternate(
        lambda: encode_ours(ours, ids, mask), lambda: encode_hf(hf, ids, mask), args.rounds, "cpu"
    )
    print(
        f"all-MiniLM-L6-v2, batch {args.batch} × {args.length} tokens, CPU {args.threads} thread(s), "
        f"torch {torch.__version__}"
    )
    print(f"  companion        {args.batch / statistics.median(t_o):8.1f} sentences/s")
    print(f"  transformers     {args.batch / statistics.median(t_h):8.1f} sentences/s")
    print(f"  speed ratio      {ratio_summary(t_o, t_h)}  (goal >= 1.0x)")
    if not args.skip_memory:
        common = ["--threads", str(args.threads), "--batch", str(args.batch), "--length", str(args.length)]
        mem = {side: spawn_child(__file__, ["--child", side, *common]) for side in ("ours", "hf")}
        for side, name in (("ours", "companion"), ("hf", "transformers")):
            m = mem[side]
            print(f"  {name:14s}   load {m['load_s']:5.2f} s   peak RSS {m['peak_rss_mib']:6.0f} MiB")
        print(
            f"  peak RSS ours / HF {mem['ours']['peak_rss_mib'] / mem['hf']['peak_rss_mib']:.2f} (goal <= 1)"
        )


if __name__ == "__main__":
    main()
