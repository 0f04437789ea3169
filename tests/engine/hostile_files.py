"""Builders of hostile data, weights and ONNX files, one per class of defect issue 20 names, and a
way to open any file the way the CLI and the window do. Shared by the regression tests and by the
memory-limited child process (``limited_child.py``); not collected by pytest itself."""
from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

PAD = 64


def npy_raw(header: str, data: bytes = b"") -> bytes:
    """A .npy file with any header text (version 1.0), padded as numpy pads it."""
    text = header + " " * (-(len(header) + 11) % PAD) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + data


def npy_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def zip_of(members: dict[str, bytes], compress: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def idx_raw(code: int, dims: tuple, data: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + data


def safetensors_raw(header, data: bytes = b"") -> bytes:
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def onnx_with_initializer(tensor) -> bytes:
    """A one-Gemm model whose weight is ``tensor`` (an onnx TensorProto named "w")."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    gemm = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)
    graph = helper.make_graph([gemm], "g", [x], [y], initializer=[tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# ------------------------------------------------------------------------------ opening files
def open_file(kind: str, target: str) -> object:
    """Open ``target`` as the CLI would: ``data`` takes a spec, ``weights`` and ``onnx`` a path."""
    if kind == "data":
        from layerloom.engine.data import load_data

        return load_data(target)
    if kind == "weights":
        from layerloom.engine.export.weights import load_weights

        return load_weights(target)
    from layerloom.engine.export.onnx_import import graph_from_onnx_file

    return graph_from_onnx_file(target)


# ------------------------------------------------------------------------------ the classes
@dataclass(frozen=True)
class Hostile:
    name: str
    kind: str  # data | weights | onnx
    build: Callable[[Path], str]  # writes the file(s) under a folder, returns spec or path
    words: str  # what the one-line error must say ("" when the file must load)


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _npz_claiming_1e12(folder: Path) -> str:
    x = npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }",
                b"\0" * 16)
    return f"npz:{_write(folder, 'huge.npz', zip_of({'x.npy': x, 'y.npy': npy_of(np.arange(4))}))}"


def _npz_label_1e12(folder: Path) -> str:
    data = zip_of({"x.npy": npy_of(np.ones((40, 2), np.float32)),
                   "y.npy": npy_of(np.array([0, 1, 10**12, 1] * 10, np.int64))})
    return f"npz:{_write(folder, 'label.npz', data)}"


def _csv_label_1e12(folder: Path) -> str:
    rows = "".join(f"{i},{[0, 1, 10**12][i % 3]}\n" for i in range(40))
    return f"csv:{_write(folder, 'label.csv', rows.encode())}"


def _idx_folder(folder: Path, labels: bytes, images: bytes | None = None, gz=True) -> str:
    n = struct.unpack(">I", labels[4:8])[0] if len(labels) >= 8 else 4
    images = images if images is not None else idx_raw(8, (n, 2, 2), b"\x07" * (4 * n))
    for stem in ("train", "t10k"):
        for kind, ndim, data in (("images", 3, images), ("labels", 1, labels)):
            _write(folder, f"{stem}-{kind}-idx{ndim}-ubyte" + (".gz" if gz else ""),
                   gzip.compress(data) if gz else data)
    return f"idx:{folder}"


def _idx_label_2_31(folder: Path) -> str:
    labels = idx_raw(0x0C, (20,), np.array([0, 1, 2**31 - 1, 1] * 5, ">i4").tobytes())
    return _idx_folder(folder / "big-label", labels)


def _idx_dims_overflow(folder: Path) -> str:
    images = idx_raw(8, (65536, 65536, 65536, 65536), b"")  # 2**64: int64's product is 0
    labels = idx_raw(8, (4,), b"\0\1\0\1")
    return _idx_folder(folder / "overflow", labels, images, gz=False)


def _idx_dims_mismatch(folder: Path) -> str:
    labels = idx_raw(8, (4,), b"\0\1\0\1")
    return _idx_folder(folder / "mismatch", labels, idx_raw(8, (4, 28, 28), b"\0" * 100))


def _gzip_bomb_claim(folder: Path) -> str:
    labels = idx_raw(8, (4,), b"\0\1\0\1")
    images = idx_raw(8, (60000, 300, 300), b"\0" * 1000)  # 5.4 GB claimed, 1 kB present
    return _idx_folder(folder / "bomb", labels, images)


def _csv_big_cell(folder: Path) -> str:
    text = "1,2,0\n" + "3," + "4" * (200 << 10) + ",1\n"
    return f"csv:{_write(folder, 'cell.csv', text.encode())}"


def _empty(folder: Path) -> str:
    data = zip_of({"x.npy": npy_of(np.zeros((0, 3), np.float32)),
                   "y.npy": npy_of(np.zeros(0, np.int64))})
    return f"npz:{_write(folder, 'empty.npz', data)}"


def _st_nested(folder: Path) -> str:
    return str(_write(folder, "nested.safetensors", safetensors_raw("[" * 100_000 + "]" * 100_000)))


def _st_shape(shape: list, name: str) -> Callable[[Path], str]:
    def build(folder: Path) -> str:
        header = {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 8]}}
        return str(_write(folder, name, safetensors_raw(header, b"\0" * 8)))
    return build


def _npz_weights(array: np.ndarray, name: str) -> Callable[[Path], str]:
    def build(folder: Path) -> str:
        return str(_write(folder, name, zip_of({"fc.weight.npy": npy_of(array)})))
    return build


def _onnx_dims(folder: Path) -> str:
    from onnx import TensorProto, helper

    tensor = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], np.zeros(6, np.float32).tobytes(),
                                raw=True)
    tensor.dims[:] = [3000, 2000]  # 24 MB claimed, 24 bytes held
    return str(_write(folder, "dims.onnx", onnx_with_initializer(tensor)))


def _device(spec: str) -> Callable[[Path], str]:
    return lambda folder: spec


def _fifo(folder: Path) -> str:
    import os

    os.mkfifo(folder / "pipe.csv")
    return f"csv:{folder / 'pipe.csv'}"


CASES = [
    Hostile("safetensors header nested 100,000 deep", "weights", _st_nested, "nests"),
    Hostile(".npy in .npz claiming 10**12 items", "data", _npz_claiming_1e12, "claims"),
    Hostile("npz label 10**12", "data", _npz_label_1e12, ""),
    Hostile("csv label 10**12", "data", _csv_label_1e12, ""),
    Hostile("idx label 2**31-1", "data", _idx_label_2_31, ""),
    Hostile("idx dims overflow int64", "data", _idx_dims_overflow, "more than this machine"),
    Hostile("idx dims do not match the bytes", "data", _idx_dims_mismatch, "truncated"),
    Hostile("gzip idx claiming 5 GB in 1 kB", "data", _gzip_bomb_claim, "gzip data can hold"),
    Hostile("safetensors dims overflow", "weights", _st_shape([2**32, 2**32], "ov.safetensors"),
            "offsets give 8"),
    Hostile("safetensors shape [10**30]", "weights", _st_shape([10**30], "big.safetensors"),
            "offsets give 8"),
    Hostile("csv cell over 128 KiB", "data", _csv_big_cell, "field larger than field limit"),
    Hostile("weights as strings", "weights", _npz_weights(np.full((3, 2), "ab"), "str.npz"),
            "must hold numbers"),
    Hostile("weights as raw bytes", "weights", _npz_weights(np.zeros((3, 2), "V4"), "raw.npz"),
            "must hold numbers"),
    Hostile("weights as byte strings", "weights", _npz_weights(np.full((3, 2), b"ab"), "b.npz"),
            "must hold numbers"),
    Hostile("onnx initializer dims not matching data", "onnx", _onnx_dims, "need 24,000,000"),
    Hostile("csv:/dev/zero", "data", _device("csv:/dev/zero"), "not a regular file"),
    Hostile("text:/dev/zero", "data", _device("text:/dev/zero"), "not a regular file"),
    Hostile("npz:/dev/zero", "data", _device("npz:/dev/zero"), "not a regular file"),
    Hostile("a FIFO", "data", _fifo, "not a regular file"),
    Hostile("empty data set", "data", _empty, "holds no samples"),
    Hostile("the bundled gzip IDX set", "data", _device("bundled"), ""),
]
