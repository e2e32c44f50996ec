"""The GPT training benchmark script runs, and prints the lines the GPT chapter parses."""

from __future__ import annotations

import re

import pytest
import torch

from tests._scripts import load_script

pytest.importorskip("transformers")


def _load_script():
    return load_script("benchmarks/gpt_train.py")


def test_speedup_is_the_median_of_per_round_ratios():
    bench = _load_script()
    # per-round ratios 2, 1, 4, 2, 3: median 2, quartiles 1.5 and 3.5 (statistics' default method)
    assert bench._speedup([2.0, 1.0, 4.0, 2.0, 3.0], [1.0] * 5) == " 2.00 (quartiles 1.50–3.50)"
    assert bench._speedup([3.0, 1.0], [1.0, 1.0]) == " 2.00"  # too few rounds for quartiles
    with pytest.raises(ValueError):
        bench._speedup([1.0, 2.0], [1.0])


def test_baby_run_prints_every_contender(capsys):
    bench = _load_script()
    bench.run_config("baby", 4, torch.device("cpu"), 1e9, hf_with_our_gelu=True)
    out = capsys.readouterr().out
    names = re.findall(r"^  (.+?)\s{2,}.*× HF\s+[\d.]+", out, flags=re.MULTILINE)
    assert names == [
        "companion",
        "companion + companion AdamW",
        "Hugging Face GPT2LMHeadModel",
        "HF + companion GELU",
    ]
    assert re.search(r"Hugging Face GPT2LMHeadModel .*× HF\s+1\.00 ", out)
