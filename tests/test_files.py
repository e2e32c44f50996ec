"""companion.files: results written whole or not at all, configuration hashes, provenance records, and
committed results read from the clone or the repository."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import torch

from companion.files import RESULTS_URL, committed_result, config_hash, provenance, write_json


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


def test_committed_result_is_found_from_any_folder_of_the_clone(tmp_path):
    results = tmp_path / "repo" / "experiments" / "results"
    results.mkdir(parents=True)
    (results / "r.json").write_text('{"loss": 1.5}', encoding="utf-8")
    deep = tmp_path / "repo" / "notebooks" / "transformer"
    deep.mkdir(parents=True)
    assert committed_result("r.json", start=deep) == {"loss": 1.5}
    assert committed_result("r.json", start=deep, as_json=False) == '{"loss": 1.5}'
    # this repository's own committed files, from the test's folder
    assert committed_result("gpt_baby.json", start=Path(__file__).parent)["preset"] == "baby"
    for bad in ("../r.json", "", "results/r.json"):
        with pytest.raises(ValueError, match="name"):
            committed_result(bad, start=deep)


def test_committed_result_downloads_without_a_clone(tmp_path, monkeypatch):
    """Outside a clone (Colab) the file comes from the repository's URL."""
    import urllib.request

    asked = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout):
        asked.append(url)
        return Response(b'{"from": "the repository"}')

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    assert committed_result("x.json", start=tmp_path) == {"from": "the repository"}
    assert asked == [RESULTS_URL + "x.json"]
