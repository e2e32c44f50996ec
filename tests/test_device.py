"""Tests of companion.device (device choice, autocast dtype, seeding) and a bf16 GPU check of attention."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from companion import device as dev
from companion.nn.attention import MultiHeadAttention
from companion.nn.sdpa import scaled_dot_product_attention

_HAS_CUDA = torch.cuda.is_available()
_HAS_MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _no_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


# --------------------------------------------------------------------------------------------------
# default_device / resolve_device
# --------------------------------------------------------------------------------------------------


def test_default_device_on_this_machine():
    expected = "cuda" if _HAS_CUDA else "mps" if _HAS_MPS else "cpu"
    d = dev.default_device()
    assert isinstance(d, torch.device) and d.type == expected
    torch.ones(1, device=d)  # and it is usable


def test_default_device_priority_cuda_then_mps_then_cpu(monkeypatch):
    _no_accelerators(monkeypatch)
    assert dev.default_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert dev.default_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.default_device() == torch.device("cuda")


@pytest.mark.parametrize("spec", ["cpu", "cpu:0", torch.device("cpu")])
def test_resolve_device_cpu(spec):
    d = dev.resolve_device(spec)
    assert isinstance(d, torch.device) and d.type == "cpu"


def test_resolve_device_none_is_default():
    assert dev.resolve_device(None) == dev.default_device()
    assert dev.resolve_device() == dev.default_device()


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:1", torch.device("cuda")])
def test_resolve_device_cuda_unavailable_raises(monkeypatch, spec):
    _no_accelerators(monkeypatch)
    with pytest.raises(ValueError, match=r"device: 'cuda'.*is_available\(\) is False"):
        dev.resolve_device(spec)


def test_resolve_device_mps_unavailable_raises(monkeypatch):
    _no_accelerators(monkeypatch)
    with pytest.raises(ValueError, match="device: 'mps'"):
        dev.resolve_device("mps")


def test_resolve_device_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("spec", ["garbage", "graphics-card", "cuda:x", "", "cpu:-1:2"])
def test_resolve_device_garbage_raises(spec):
    with pytest.raises(ValueError, match=r"device: expected 'cpu', 'cuda'"):
        dev.resolve_device(spec)


def test_resolve_device_wrong_type_raises():
    with pytest.raises(ValueError, match="device"):
        dev.resolve_device(["cpu"])


# --------------------------------------------------------------------------------------------------
# autocast_dtype
# --------------------------------------------------------------------------------------------------


def test_autocast_dtype_values(monkeypatch):
    assert dev.autocast_dtype("cpu") is torch.bfloat16
    assert dev.autocast_dtype(torch.device("cpu")) is torch.bfloat16
    assert dev.autocast_dtype("mps") is torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.autocast_dtype("cuda") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dev.autocast_dtype("cuda:0") is torch.float16


def test_autocast_dtype_works_with_cpu_autocast():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=dev.autocast_dtype("cpu")):
        y = lin(x)
    assert y.dtype is torch.bfloat16
    torch.testing.assert_close(y.float(), lin(x), rtol=2e-2, atol=2e-2)


# --------------------------------------------------------------------------------------------------
# seed_everything
# --------------------------------------------------------------------------------------------------


def _draw():
    return (
        random.random(),
        np.random.rand(3).tolist(),  # noqa: NPY002 (seed_everything seeds the legacy global RNG)
        torch.rand(3).tolist(),
        torch.randint(0, 10**6, (1,)).item(),
    )


@pytest.mark.parametrize("seed", [0, 1, 1234, 2**40])
def test_seed_everything_makes_all_generators_repeatable(seed):
    dev.seed_everything(seed)
    first = _draw()
    _draw()  # advance the streams
    dev.seed_everything(seed)
    assert _draw() == first
    dev.seed_everything(seed + 1)
    other = _draw()
    for a, b in zip(first, other, strict=True):
        assert a != b  # each of python, numpy and torch was reseeded, not just one of them


def test_seed_everything_matches_the_libraries_own_seeding():
    dev.seed_everything(7)
    ours = _draw()
    random.seed(7)
    np.random.seed(7)  # noqa: NPY002
    torch.manual_seed(7)
    assert _draw() == ours


@pytest.mark.parametrize("seed", [-1, 1.5, "3", None])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        dev.seed_everything(seed)


def test_seed_everything_deterministic_flag(monkeypatch):
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        torch.use_deterministic_algorithms(False)
        dev.seed_everything(0)
        assert not torch.are_deterministic_algorithms_enabled()
        dev.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


# --------------------------------------------------------------------------------------------------
# reproducible: the known numerics state every chapter's setup cell starts from
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def restore_numerics():
    before = (
        torch.get_num_threads(),
        torch.get_default_dtype(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    yield
    torch.set_num_threads(before[0])
    torch.set_default_dtype(before[1])
    torch.use_deterministic_algorithms(before[2], warn_only=before[3])


def test_reproducible_sets_seeds_threads_dtype_and_algorithms(restore_numerics):
    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(False)
    state = dev.reproducible(5, threads=2)
    assert torch.get_num_threads() == 2 and torch.get_default_dtype() is torch.float32
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()  # a warning, never a crash on a GPU
    first = _draw()
    dev.reproducible(5, threads=2)
    assert _draw() == first
    expected = "numerics: seed 5 (Python, NumPy, torch) · 2 torch threads · float32 by default"
    assert str(state) == repr(state) == f"{expected} · deterministic algorithms"
    off = dev.reproducible(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
    assert str(off).endswith("· 1 torch thread · float32 by default · fastest algorithms")


@pytest.mark.parametrize("threads", [0, -1, 1.0, True, "2"])
def test_reproducible_rejects_bad_thread_counts(threads, restore_numerics):
    with pytest.raises(ValueError, match=r"threads: expected a positive int, got"):
        dev.reproducible(0, threads=threads)


def test_reproducible_rejects_bad_seed_and_flag(restore_numerics):
    with pytest.raises(ValueError, match="seed"):
        dev.reproducible(-1)
    with pytest.raises(TypeError, match=r"deterministic: expected True or False, got 1"):
        dev.reproducible(0, deterministic=1)


# --------------------------------------------------------------------------------------------------
# low precision attention: compare with an fp32 run of the same code (bf16 atol/rtol 2e-2)
# --------------------------------------------------------------------------------------------------


def _low_precision_attention_check(device: str, dtype: torch.dtype, *, b=2, h=4, t=64, d_h=32):
    g = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (torch.randn(b, h, t, d_h, generator=g).to(device) for _ in range(3))
    mask = torch.rand(b, 1, t, t, generator=g).to(device) > 0.2
    mask[..., 0] = True
    out32, w32 = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    with torch.autocast(device, dtype=dtype):
        out_lp, w_lp = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    assert out_lp.dtype == dtype and torch.isfinite(out_lp).all()
    torch.testing.assert_close(out_lp.float(), out32, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(w_lp.float(), w32, rtol=2e-2, atol=2e-2)

    torch.manual_seed(1)
    mha = MultiHeadAttention(h * d_h, h, kernel="sdpa", device=device).eval()
    x = torch.randn(b, t, h * d_h, generator=g).to(device)
    key_mask = torch.ones(b, t, dtype=torch.bool, device=device)
    key_mask[1, t // 2 :] = False
    ref, _ = mha(x, key_mask=key_mask, is_causal=True)
    with torch.autocast(device, dtype=dtype):
        out, _ = mha(x, key_mask=key_mask, is_causal=True)
        out_plain, _ = mha(x)
    assert out.dtype == dtype and torch.isfinite(out).all() and torch.isfinite(out_plain).all()
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out_plain.float(), mha(x)[0], rtol=2e-2, atol=2e-2)


@pytest.mark.gpu
def test_bf16_attention_on_cuda_matches_fp32():
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16 support")
    assert dev.autocast_dtype("cuda") is torch.bfloat16
    _low_precision_attention_check("cuda", torch.bfloat16, t=256, d_h=64)


def test_bf16_attention_on_cpu_matches_fp32():
    """The smaller CPU counterpart of the GPU test above."""
    _low_precision_attention_check("cpu", torch.bfloat16, t=32, d_h=16)
