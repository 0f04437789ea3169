"""Weights files: npz and safetensors (through the safetensors package) round-trip, interoperate with
the package's own files, and refuse damaged files with one line."""
import json
import struct

import numpy as np
import pytest

from layerloom.engine.export.weights import load_weights, safetensors_bytes, save_weights
from layerloom.engine.network import Network, WeightsError

from .test_graph import mlp

st_numpy = pytest.importorskip("safetensors.numpy")


def state() -> dict:
    rng = np.random.default_rng(0)
    return {"conv1.weight": rng.normal(size=(6, 1, 5, 5)).astype(np.float32),
            "conv1.bias": rng.normal(size=6).astype(np.float32),
            "fc.weight": rng.normal(size=(3, 4)),  # float64
            "bn.num_batches_tracked": np.array(7, dtype=np.int64),  # a 0-d tensor
            "emb.index": np.arange(5, dtype=np.int64),
            "empty.bias": np.zeros((0,), np.float32)}


def assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert b[k].dtype == a[k].dtype and b[k].shape == a[k].shape, k
        np.testing.assert_array_equal(b[k], a[k])


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_round_trip_with_dtypes_and_shapes(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    save_weights(state(), path)
    back = load_weights(path)
    assert_same(state(), back)
    assert all(v.flags.writeable for v in back.values())
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_files_we_write_load_in_the_safetensors_package(tmp_path):
    save_weights(state(), tmp_path / "w.safetensors")
    assert_same(state(), st_numpy.load_file(str(tmp_path / "w.safetensors")))


def test_files_the_safetensors_package_writes_load_here(tmp_path):
    st_numpy.save_file(state(), str(tmp_path / "w.safetensors"), metadata={"format": "pt"})
    assert_same(state(), load_weights(tmp_path / "w.safetensors"))


def test_safetensors_header_is_aligned_json_with_offsets_over_little_endian_data():
    arrays = {"b": np.ones(2, np.float64), "a": np.arange(3, dtype=np.float32)}
    raw = safetensors_bytes(arrays)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and header["__metadata__"] == {"format": "pt"}
    assert header["a"]["dtype"] == "F32" and header["a"]["shape"] == [3]
    assert header["b"]["dtype"] == "F64" and header["b"]["shape"] == [2]
    spans = sorted(tuple(header[k]["data_offsets"]) for k in "ab")
    assert spans[0][0] == 0 and spans[0][1] == spans[1][0] and len(raw) == 8 + n + spans[1][1]
    for key, dtype in (("a", "<f4"), ("b", "<f8")):
        start, end = header[key]["data_offsets"]
        assert raw[8 + n + start:8 + n + end] == arrays[key].astype(dtype).tobytes()


def test_network_saves_and_loads_its_parameters(tmp_path):
    net = Network(mlp(), seed=0)
    net.save_weights(tmp_path / "m.safetensors")
    other = Network(mlp(), seed=1)
    assert not all(np.array_equal(net.params[k], other.params[k]) for k in net.params)
    other.load_weights(tmp_path / "m.safetensors")
    assert_same(net.params, other.params)


def _st(header: dict, data: bytes, pad: bool = True) -> bytes:
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize("raw, words", [
    (b"\x01\x00", "too short"),
    (struct.pack("<Q", 10**12) + b"{}", "header length"),
    (struct.pack("<Q", 4) + b"{not", "not valid JSON"),
    (_st([1, 2], b""), "must be a JSON object"),
    (_st(GOOD, b"\0" * 4), "lie outside"),
    (_st(GOOD, b"\0" * 12), "4 bytes after the last tensor"),
    (_st({"w": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8), "unsupported dtype"),
    (_st({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8), "needs 12 bytes"),
    (_st({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, b"\0" * 8), "shape must be"),
    (_st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8), "gap"),
    (_st({"w": "F32"}, b""), "must be an object"),
])
def test_damaged_safetensors_files_give_one_line(tmp_path, raw, words):
    (tmp_path / "bad.safetensors").write_bytes(raw)
    with pytest.raises(WeightsError) as err:
        load_weights(tmp_path / "bad.safetensors")
    text = str(err.value)
    assert "\n" not in text and "bad.safetensors" in text and words in text


def test_damaged_npz_files_and_wrong_names_give_one_line(tmp_path):
    np.savez(tmp_path / "obj.npz", w=np.array([object()], dtype=object))
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    np.save(tmp_path / "single.npy", np.ones(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    cases = {"obj.npz": "allow_pickle", "junk.npz": "not a readable", "single.npz": "single array",
             "missing.npz": "no such file", "w.pt": "must end in .npz or .safetensors"}
    for name, words in cases.items():
        with pytest.raises(WeightsError) as err:
            load_weights(tmp_path / name)
        assert "\n" not in str(err.value) and words in str(err.value), name


def test_unsupported_values_and_unwritable_places_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="cannot store complex128"):
        save_weights({"w": np.ones(2, complex)}, tmp_path / "w.npz")
    with pytest.raises(WeightsError, match="cannot write"):
        save_weights({"w": np.ones(2)}, tmp_path / "no" / "such" / "w.safetensors")


def test_loading_weights_of_another_graph_names_the_key(tmp_path):
    save_weights({"fc9.weight": np.ones((2, 2), np.float32)}, tmp_path / "w.npz")
    with pytest.raises(WeightsError, match="the weights have no 'fc1.weight'"):
        Network(mlp()).load_weights(tmp_path / "w.npz")
