"""Regenerate ``experiments/results/length_extrapolation.json``: the length-extrapolation experiment of
the Positional encoding chapter (``notebooks/transformer/positional-encoding.ipynb``).

The same tiny character-level causal LM (2 layers, d = 64, 4 heads) is trained at context 64 on tiny
Shakespeare with each positional scheme, and its perplexity is measured on the same held-out text at
64, 128, 256 and 512 tokens (:func:`companion.extrapolation.run_length_extrapolation`). Training all
the models takes about 5 minutes on one CPU thread, more than a chapter's 90-second budget, so the
notebook reads the numbers from the JSON file this script writes. The file records the configuration
and its sha256 (``config_hash``); the notebook and ``tests/test_extrapolation.py`` check that they match
the code's current :class:`~companion.extrapolation.ExtrapolationConfig`.

Usage, from the repository root::

    python experiments/length_extrapolation.py                 # regenerate the cached results
    python experiments/length_extrapolation.py --smoke --out /tmp/smoke.json   # seconds; format only
    python experiments/length_extrapolation.py --device cuda   # same code on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from companion.data import tiny_shakespeare
from companion.extrapolation import ExtrapolationConfig, run_length_extrapolation
from companion.files import provenance, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "length_extrapolation.json"


def smoke_config() -> ExtrapolationConfig:
    """A configuration small enough to run in seconds, with the same output format."""
    return dataclasses.replace(
        ExtrapolationConfig(),
        train_len=16,
        eval_lens=(16, 32),
        d_model=16,
        n_heads=2,
        steps=3,
        batch_size=4,
        eval_tokens=256,
        finetune_len=32,
        finetune_steps=2,
        finetune_batch_size=2,
    )


def run(config: ExtrapolationConfig, device: str, threads: int) -> dict:
    """Run the experiment and add a ``provenance`` record (script, versions, device, seconds)."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    result = run_length_extrapolation(config, tiny_shakespeare(), device=device, log=True)
    result["provenance"] = provenance(
        "experiments/length_extrapolation.py", device=device, threads=threads,
        seconds=time.perf_counter() - start,
    )  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--smoke", action="store_true", help="tiny configuration: checks the format only")
    parser.add_argument("--device", default="cpu", help="cpu (the cached file), cuda or mps")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    config = smoke_config() if args.smoke else ExtrapolationConfig()
    write_json(run(config, args.device, args.threads), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
