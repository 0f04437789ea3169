"""Generated and mutated files for every reader: valid files of random content, then byte flips,
cuts, insertions and "interesting" integers written over their headers. Each must load or end in
a one-line ``LayerloomError``. Run by ``limited_child.py`` under an address-space limit; the
examples are derandomized in CI (``LAYERLOOM_FUZZ_RANDOM=1`` explores new ones locally)."""
from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.engine.hostile_files import (idx_raw, npy_of, open_file, safetensors_raw, zip_of)

INTERESTING = [0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**40, 2**63 - 1,
               2**64 - 1]
DTYPES = ["u1", "i1", "<i2", "<i4", "<i8", "<f4", "<f8", "?", ">f4", "<U3", "|S2", "<c8"]


# ---------------------------------------------------------------------------- valid files
arrays = st.builds(
    lambda dtype, shape, seed: np.random.default_rng(seed).integers(0, 5, shape).astype(dtype),
    st.sampled_from(DTYPES), st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple),
    st.integers(0, 2**16))


@st.composite
def npz_data(draw) -> bytes:
    n = draw(st.integers(0, 30))
    x = draw(st.sampled_from(["u1", "<f4", "<f8", "<i4"]))
    y = draw(st.sampled_from(["<i8", "u1", "<f4", "<i4"]))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    members = {"x.npy": npy_of(rng.integers(0, 4, (n, draw(st.integers(1, 4)))).astype(x)),
               "y.npy": npy_of(rng.integers(0, draw(st.sampled_from([3, 300, 2**40])), n)
                               .astype(y))}
    if draw(st.booleans()):
        members["class_names.npy"] = npy_of(np.array(["a", "b", "c"]))
    extra = draw(st.dictionaries(st.sampled_from(["x_test.npy", "w.npy", "y_test.npy"]), arrays,
                                 max_size=2))
    members.update({k: npy_of(v) for k, v in extra.items()})
    return zip_of(members, compress=draw(st.booleans()))


@st.composite
def csv_data(draw) -> bytes:
    width, n = draw(st.integers(1, 4) | st.just(3)), draw(st.integers(0, 40))
    cell = st.sampled_from(["0", "1", "2", "2.5", "-3", "1e300", str(10**12), '"7"', "x", "",
                            "nan"])
    plain = st.sampled_from(["0", "1", "2", "-1", "0.25"])
    rows = [[draw(cell if draw(st.integers(0, 9)) == 0 else plain) for _ in range(width)]
            for _ in range(n)]
    header = [draw(st.sampled_from(["a", "b", "label"])) for _ in range(width)]
    sep = draw(st.sampled_from([",", ";", "\t"]))
    lines = ([header] if draw(st.booleans()) else []) + rows
    return "\n".join(sep.join(r) for r in lines).encode()


@st.composite
def idx_folder(draw) -> dict[str, bytes]:
    n, h = draw(st.integers(0, 12)), draw(st.integers(1, 5))
    code = draw(st.sampled_from([8, 9, 0x0B, 0x0C, 0x0D, 0x0E]))
    dtype = {8: ">u1", 9: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    images = idx_raw(code, (n, h, h), np.ones((n, h, h), dtype).tobytes())
    labels = idx_raw(0x0C if draw(st.booleans()) else 8, (n,),
                     np.arange(n).astype(">i4" if draw(st.booleans()) else ">u1").tobytes())
    return {f"{s}-{k}-idx{d}-ubyte": data for s in ("train", "t10k")
            for k, d, data in (("images", 3, images), ("labels", 1, labels))}


@st.composite
def safetensors_file(draw) -> bytes:
    from layerloom.engine.export.weights import ST_DTYPES, safetensors_bytes

    names = draw(st.lists(st.sampled_from(["fc.weight", "fc.bias", "a", "b.c"]), unique=True))
    tensors = {k: np.ones(draw(st.lists(st.integers(0, 4), max_size=3)),
                          np.dtype(ST_DTYPES[draw(st.sampled_from(sorted(ST_DTYPES)))]))
               for k in names}
    if draw(st.booleans()):
        return safetensors_bytes(tensors)
    header = {k: {"dtype": draw(st.sampled_from([*ST_DTYPES, "BF16", "STR", 7])),
                  "shape": draw(st.lists(st.sampled_from(INTERESTING + [-1, 2, "3"]), max_size=3)),
                  "data_offsets": draw(st.lists(st.sampled_from(INTERESTING[:6]), max_size=3))}
              for k in names}
    return safetensors_raw(header, b"\0" * draw(st.integers(0, 64)))


@st.composite
def onnx_model(draw) -> bytes:
    from onnx import TensorProto, helper

    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    w = helper.make_tensor("fc.weight", TensorProto.FLOAT, [n_out, n_in],
                           np.ones(n_out * n_in, np.float32).tobytes(), raw=True)
    b = helper.make_tensor("fc.bias", TensorProto.FLOAT, [n_out], [0.5] * n_out)
    if draw(st.booleans()):  # dims that lie about the data
        target = draw(st.sampled_from([w, b]))
        target.dims[:] = draw(st.lists(st.sampled_from([0, 1, 3, 2**31, 2**62]), max_size=3))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])
    nodes = [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# ------------------------------------------------------------------------------- mutations
@st.composite
def mutated(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, max(len(out), 1)))
        op = draw(st.sampled_from(["flip", "cut", "insert", "int32", "int64", "dup"]))
        if op == "flip" and out:
            out[min(at, len(out) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del out[at:]
        elif op == "insert":
            out[at:at] = draw(st.binary(max_size=16))
        elif op in ("int32", "int64"):
            value = draw(st.sampled_from(INTERESTING))
            packed = struct.pack(">I" if op == "int32" else "<Q", value % (2**32 if op == "int32"
                                                                           else 2**64))
            out[at:at + len(packed)] = packed
        elif op == "dup" and out:
            out[at:at] = out[at:at + draw(st.integers(1, 64))]
    return bytes(out)


def _write_all(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _npy_shape_lie(data: bytes, draw) -> bytes:
    """Rewrite a shape tuple in an .npy header (the member keeps its real bytes)."""
    claim = f"({draw(st.sampled_from(INTERESTING + [10**12, 10**30, -5]))},)".encode()
    start = data.find(b"'shape': (")
    if start < 0:
        return data
    end = data.find(b")", start) + 1
    return data[:start + 9] + claim + data[end:]


FORMATS = {
    "npz": (npz_data(), "data", "npz:{}", "d.npz"),
    "csv": (csv_data(), "data", "csv:{}", "d.csv"),
    "text": (st.text(st.characters(max_codepoint=0x2FF), min_size=50, max_size=400).map(str.encode)
             | st.binary(max_size=400), "data", "text:{}?seq_len=4", "d.txt"),
    "idx": (idx_folder(), "data", "idx:{}", None),
    "weights-npz": (st.dictionaries(st.sampled_from(["fc.weight", "b"]), arrays, max_size=3)
                    .map(lambda d: zip_of({f"{k}.npy": npy_of(v) for k, v in d.items()})),
                    "weights", "{}", "w.npz"),
    "safetensors": (safetensors_file(), "weights", "{}", "w.safetensors"),
    "onnx": (onnx_model(), "onnx", "{}", "m.onnx"),
}


def run_fuzz(fmt: str, examples: int, outcome) -> int:
    """Fuzz one format (or ``all``); print one JSON line per format; 1 when something crashed."""
    failed = 0
    for name in (FORMATS if fmt == "all" else [fmt]):
        result = _fuzz_one(name, examples, outcome)
        print(json.dumps(result), flush=True)
        failed |= result["outcome"] == "crash"
    return int(failed)


def _fuzz_one(name: str, examples: int, outcome) -> dict:
    strategy, kind, pattern, filename = FORMATS[name]
    seen = {"count": 0, "ok": 0}
    folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))

    @settings(max_examples=examples, deadline=None, database=None,
              derandomize=not os.environ.get("LAYERLOOM_FUZZ_RANDOM"),
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(base=strategy, data=st.data())
    def check(base, data):
        if filename is None:  # a folder of files: mutate one of them
            victim = data.draw(st.sampled_from(sorted(base)))
            files = {**base, victim: data.draw(mutated(base[victim]))}
            _write_all(folder, files)
            target = pattern.format(folder)
        else:
            raw = data.draw(mutated(base))
            if name in ("npz", "weights-npz") and data.draw(st.booleans()):
                raw = zip_of({"x.npy": _npy_shape_lie(npy_of(np.ones((4, 2))), data.draw),
                              "y.npy": npy_of(np.arange(4))})
            (folder / filename).write_bytes(raw)
            target = pattern.format(folder / filename)
        result = outcome(name, lambda: open_file(kind, target))
        seen["count"] += 1
        seen["ok"] += result["outcome"] == "ok"
        assert result["outcome"] != "crash", result["text"]

    try:
        check()
    except AssertionError as err:
        return {"name": name, "outcome": "crash", "text": str(err)[:2000], **seen}
    return {"name": name, "outcome": "clean", "text": "", **seen}
