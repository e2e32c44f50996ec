"""The GPT training benchmark script runs, and prints the lines the GPT chapter parses."""

from __future__ import annotations

import re

import pytest
import torch

from tests._scripts import load_script


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
    pytest.importorskip("transformers")  # only the run needs Hugging Face; the statistic above does not
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
    # Every printed figure is consistent with the step time it came from (a swapped column, a wrong
    # token count or a throughput computed from another contender's time fails), and every contender
    # has a positive, finite speed-up of its own.
    header = re.search(r"T=(\d+), B=(\d+) \(.*?([\d,]+) FLOPs/token", out)
    tokens_per_step = int(header[1]) * int(header[2])
    rows = re.findall(r"^  .+?\s{2,}([\d.]+) ms/step\s+([\d,]+) tokens/s .*× HF\s+([\d.]+)", out, re.M)
    assert len(rows) == 4
    for ms, tok_s, ratio in rows:
        assert float(tok_s.replace(",", "")) == pytest.approx(tokens_per_step / (float(ms) / 1e3), rel=3e-3)
        assert 0 < float(ratio) < 100


def test_llama_decode_ratio_and_child_report(capsys):
    """The SmolLM2 benchmark's ratio is the median of per-round ratios, and its memory child reports
    JSON (the companion side; the transformers side needs a 35-second load)."""
    bench = load_script("benchmarks/llama_decode.py")
    assert bench.ratio_summary([1.0, 2.0, 1.0], [2.0, 2.0, 3.0]) == "2.00x (range 1.00–3.00)"
    assert bench.ratio_summary([2.0], [3.0]) == "1.50x"
    with pytest.raises(ValueError, match="equally many rounds"):
        bench.ratio_summary([1.0], [1.0, 2.0])
    bench.child("ours", "float32", "cpu", 1, 16)
    import json

    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["load_s"] > 0 and record["peak_rss_mib"] > 100


def test_bert_encode_child_reports_load_and_memory(capsys):
    import json

    bench = load_script("benchmarks/bert_encode.py")
    ids, mask = bench.batch(4, 16)
    assert ids.shape == mask.shape == (4, 16) and ids[:, 0].eq(101).all() and ids[:, -1].eq(102).all()
    bench.child("ours", 1, 4, 16)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["load_s"] > 0 and record["peak_rss_mib"] > 50
