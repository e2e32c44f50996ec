"""companion.files: results written whole or not at all, configuration hashes, provenance records."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from companion.files import config_hash, provenance, write_json


def test_write_json_is_sorted_stable_and_atomic(tmp_path):
    path = tmp_path / "sub" / "result.json"
    write_json({"b": 1, "a": [1.5, None]}, path)
    text = path.read_text(encoding="utf-8")
    assert text == '{\n "a": [\n  1.5,\n  null\n ],\n "b": 1\n}\n'
    with pytest.raises(TypeError):  # not serializable: the old file stays whole
        write_json({"x": object()}, path)
    assert path.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.json"]  # no temporary file left


def test_config_hash_names_the_configuration_not_its_key_order():
    a, b = {"lr": 1e-3, "widths": [32, 64]}, {"widths": [32, 64], "lr": 1e-3}
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) == hashlib.sha256(b'{"lr":0.001,"widths":[32,64]}').hexdigest()
    assert config_hash(a) != config_hash({**a, "lr": 2e-3})
    with pytest.raises(TypeError, match="config: expected a dict, got list"):
        config_hash([1, 2])


def test_provenance_records_how_a_result_was_made():
    rec = provenance("experiments/x.py", device="cpu", threads=2, seconds=12.345, data="tiny")
    assert rec == {
        "script": "experiments/x.py",
        "torch": torch.__version__,
        "device": "cpu",
        "threads": 2,
        "seconds": 12.3,
        "data": "tiny",
    }
    json.dumps(rec)  # JSON-ready
