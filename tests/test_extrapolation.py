"""Tests of the length-extrapolation experiment (experiments/length_extrapolation.py: the library's GPT
and Trainer, evaluated by companion.losses.length_extrapolation) and of the cached results it produces.

The cached file ``experiments/results/length_extrapolation.json`` is written by
``experiments/length_extrapolation.py`` (minutes on a CPU thread). These tests check that it was
produced by the current configuration (its ``config`` equals ``ExtrapolationConfig()`` and its
``config_hash`` is that configuration's sha256) and that it has exactly the format the script writes,
by running the script on its tiny ``--smoke`` configuration.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from companion.data import tiny_shakespeare
from companion.files import config_hash
from companion.losses import length_extrapolation
from companion.models import GPT, GPTConfig
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
    config = _script().ExtrapolationConfig().to_dict()
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


SCHEMES = ("none", "sinusoidal", "learned", "rope", "alibi", "t5")


def _tiny(position: str, block_size: int = 12, **overrides) -> GPT:
    config = GPTConfig(
        vocab_size=11, block_size=block_size, n_layer=2, n_head=2, n_embd=16, position=position
    )
    return GPT(dataclasses.replace(config, **overrides)).eval()


def test_the_experiments_gpt_is_causal_for_every_scheme():
    for scheme in SCHEMES:
        torch.manual_seed(0)
        model = _tiny(scheme)
        with torch.no_grad():  # perturb the initialization so that position terms matter (T5 starts at 0)
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        ids = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(0))
        logits = lambda x, m=model: m(x)[0]  # noqa: E731
        assert_causal(logits, ids, vocab_size=11, generator=torch.Generator().manual_seed(0))


def test_learned_table_refuses_longer_inputs_and_the_evaluator_reports_none():
    ids = torch.randint(0, 11, (200,), generator=torch.Generator().manual_seed(3))
    for scheme in SCHEMES:
        model = _tiny(scheme, block_size=8)
        got = length_extrapolation(model, ids, [8, 20])
        if scheme == "learned":
            with pytest.raises(ValueError, match="block_size=8"):
                model(torch.zeros(1, 20, dtype=torch.long))
            assert got[20] is None and got[8] is not None
        else:
            assert all(p is not None for p in got.values()), scheme


def test_rope_rescaled_with_unit_factor_is_unchanged_and_otherwise_differs():
    torch.manual_seed(0)
    model = _tiny("rope")
    ids = torch.randint(0, 11, (2, 10), generator=torch.Generator().manual_seed(1))
    before = model(ids)[0]
    script = _script()
    for scaling, factor, same in (("linear", 1.0, True), ("linear", 4.0, False), ("ntk", 4.0, False)):
        config = dataclasses.replace(model.config, rope_scaling=scaling, rope_scaling_factor=factor)
        after = script._with(model, config, "cpu").eval()(ids)[0]
        assert torch.equal(after, before) == same, (scaling, factor)


def test_length_extrapolation_uniform_model_gives_vocab_size():
    class Uniform(torch.nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 13)

    ids = torch.randint(0, 13, (300,), generator=torch.Generator().manual_seed(0))
    for L, p in length_extrapolation(Uniform(), ids, [1, 7, 64, 299]).items():
        assert p == pytest.approx(13.0, rel=1e-12), L


def test_length_extrapolation_matches_a_direct_computation_and_ignores_batching():
    torch.manual_seed(0)
    model = _tiny("alibi")
    ids = torch.randint(0, 11, (97,), generator=torch.Generator().manual_seed(2))
    got = length_extrapolation(model, ids, [8, 32], batch_size=1)
    assert got == pytest.approx(
        length_extrapolation(model, ids, [8, 32], batch_size=64), rel=1e-6
    )  # float32 logits
    with torch.no_grad():
        n = 96 // 32
        logits = model(ids[: n * 32].reshape(n, 32))[0]
        want = F.cross_entropy(logits.reshape(-1, 11).double(), ids[1 : n * 32 + 1]).exp().item()
    assert got[32] == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="too few"):
        length_extrapolation(model, ids, [200])


def test_smoke_run_is_deterministic_and_every_scheme_learns():
    script = _script()
    config = dataclasses.replace(
        script.smoke_config(), steps=80, warmup=5, lr=1e-2, rope_variants=(), finetune_steps=2
    )
    text = tiny_shakespeare()[:20_000]
    first = script.run_length_extrapolation(config, text)
    assert script.run_length_extrapolation(config, text) == first
    uniform = math.log(first["vocab_size"])
    assert all(loss < 0.85 * uniform for loss in first["final_train_loss"].values()), first[
        "final_train_loss"
    ]
