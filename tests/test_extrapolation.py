"""Tests of companion.extrapolation and of the cached experiment it produces.

The cached file ``experiments/results/length_extrapolation.json`` is written by
``experiments/length_extrapolation.py`` (about 5 minutes on a CPU thread). These tests check that it
was produced by the current configuration (its ``config`` equals ``ExtrapolationConfig()`` and its
``config_hash`` is that configuration's sha256) and that it has exactly the format the script writes,
by running the script on its tiny ``--smoke`` configuration.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from companion.data import tiny_shakespeare
from companion.extrapolation import (
    SCHEMES,
    ExtrapolationConfig,
    TinyCausalLM,
    char_ids,
    length_extrapolation,
    train_lm,
)
from companion.files import config_hash
from companion.testing import assert_causal
from tests._scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
CACHED = ROOT / "experiments" / "results" / "length_extrapolation.json"


def _script():
    return load_script("experiments/length_extrapolation.py")


def _structure(result: dict) -> dict:
    """Keys at every level, with the evaluation lengths abstracted away."""
    return {
        "top": sorted(result),
        "config": sorted(result["config"]),
        "provenance": sorted(result["provenance"]),
        "schemes": sorted(result["final_train_loss"]),
        "curves": sorted(result["perplexity"]),
    }


@pytest.fixture(scope="module")
def cached() -> dict:
    return json.loads(CACHED.read_text(encoding="utf-8"))


def test_cached_results_come_from_the_current_configuration(cached):
    config = ExtrapolationConfig().to_dict()
    assert cached["config"] == config, "the cache is stale: rerun experiments/length_extrapolation.py"
    assert cached["config_hash"] == config_hash(config)
    assert cached["provenance"]["script"] == "experiments/length_extrapolation.py"
    assert cached["vocab_size"] == len(set(tiny_shakespeare()))


def test_cached_results_have_the_scripts_format(cached, tmp_path):
    out = tmp_path / "smoke.json"
    assert _script().main(["--smoke", "--out", str(out)]) == 0
    smoke = json.loads(out.read_text(encoding="utf-8"))
    assert _structure(smoke) == _structure(cached)
    assert smoke["config_hash"] == config_hash(smoke["config"]) != cached["config_hash"]


def test_cached_perplexities_are_complete_and_plausible(cached):
    cfg = cached["config"]
    for name, row in cached["perplexity"].items():
        assert sorted(map(int, row)) == cfg["eval_lens"], name  # the file's keys are sorted as strings
        for L, p in row.items():
            if p is None:  # only the learned table past its last row may be unsupported
                assert name == "learned" and int(L) > cfg["train_len"]
            else:
                assert math.isfinite(p) and 1.0 < p < cached["vocab_size"], (name, L, p)
    assert cached["perplexity"]["learned"][str(cfg["train_len"])] is not None


def test_tiny_lm_is_causal_for_every_scheme():
    for scheme in SCHEMES:
        torch.manual_seed(0)
        model = TinyCausalLM(11, scheme, d_model=16, n_heads=2, max_len=12).eval()
        with torch.no_grad():  # perturb the initialization so that position terms matter (T5 starts at 0)
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        ids = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(0))
        assert_causal(model, ids, vocab_size=11, generator=torch.Generator().manual_seed(0))


def test_tiny_lm_learned_table_refuses_longer_inputs_and_others_do_not():
    for scheme in SCHEMES:
        model = TinyCausalLM(11, scheme, d_model=16, n_heads=2, max_len=8).eval()
        long_ids = torch.zeros(1, 20, dtype=torch.long)
        if scheme == "learned":
            with pytest.raises(ValueError, match="max_len=8"):
                model(long_ids)
        else:
            assert model(long_ids).shape == (1, 20, 11)
    with pytest.raises(ValueError, match="positional"):
        TinyCausalLM(11, "xpos")


def test_rope_model_with_unit_scaling_is_unchanged():
    torch.manual_seed(0)
    model = TinyCausalLM(11, "rope", d_model=16, n_heads=2).eval()
    ids = torch.randint(0, 11, (2, 10), generator=torch.Generator().manual_seed(1))
    before = model(ids)
    model.set_rope(scaling="linear", scaling_factor=1.0)
    torch.testing.assert_close(model(ids), before, rtol=0, atol=0)
    model.set_rope(scaling="linear", scaling_factor=4.0)
    assert (model(ids) - before).abs().max() > 1e-4
    with pytest.raises(ValueError, match="rope"):
        TinyCausalLM(11, "alibi").set_rope()


def test_length_extrapolation_uniform_model_gives_vocab_size():
    class Uniform(torch.nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 13)

    ids = torch.randint(0, 13, (300,), generator=torch.Generator().manual_seed(0))
    for L, p in length_extrapolation(Uniform(), ids, [1, 7, 64, 299]).items():
        assert p == pytest.approx(13.0, rel=1e-12), L


def test_length_extrapolation_matches_a_direct_computation_and_ignores_batching():
    torch.manual_seed(0)
    model = TinyCausalLM(11, "alibi", d_model=16, n_heads=2).eval()
    ids = torch.randint(0, 11, (97,), generator=torch.Generator().manual_seed(2))
    got = length_extrapolation(model, ids, [8, 32], batch_size=1)
    assert got == pytest.approx(
        length_extrapolation(model, ids, [8, 32], batch_size=64), rel=1e-6
    )  # float32 logits
    with torch.no_grad():
        n = 96 // 32
        logits = model(ids[: n * 32].reshape(n, 32))
        want = F.cross_entropy(logits.reshape(-1, 11).double(), ids[1 : n * 32 + 1]).exp().item()
    assert got[32] == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="too few"):
        length_extrapolation(model, ids, [200])


def test_train_lm_is_deterministic_and_learns():
    ids, _ = char_ids("abcabcabcabd" * 50)

    def run():
        torch.manual_seed(0)
        model = TinyCausalLM(4, "rope", d_model=16, n_heads=2)
        return train_lm(
            model, ids, context=16, steps=40, batch_size=8, generator=torch.Generator().manual_seed(0)
        )

    first, second = run(), run()
    assert first == second
    assert sum(first[-5:]) / 5 < 0.5 * sum(first[:5]) / 5


def test_char_ids_round_trip_and_unknown_characters():
    ids, vocab = char_ids("hello")
    assert vocab == ["e", "h", "l", "o"] and "".join(vocab[i] for i in ids) == "hello"
    again, _ = char_ids("hole", vocab)
    assert again.tolist() == [1, 3, 2, 0]
    with pytest.raises(ValueError, match="'z'"):
        char_ids("hez", vocab)
