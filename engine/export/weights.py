"""Weights files: ``{"<node_id>.<param>": array}`` (a PyTorch state_dict) as .npz or .safetensors.

The safetensors format is written and read here directly, so it is no run-time dependency:
8 bytes little-endian header length, a JSON header ``{name: {"dtype", "shape", "data_offsets"}}``
(offsets relative to the data that follows), then the tensors' raw little-endian bytes with no
gaps (https://github.com/huggingface/safetensors#format). Every write is atomic; every defect in a
file read is a one-line ``WeightsError``; nothing is ever unpickled.
"""
from __future__ import annotations

import io
import json
import struct
import zipfile
from os import PathLike
from pathlib import Path

import numpy as np

from layerloom.engine.network import WeightsError
from layerloom.engine.serialize import atomic_write_bytes

SUFFIXES = (".npz", ".safetensors")
# safetensors dtype names <-> little-endian numpy dtypes
ST_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4",
             "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}
ST_NAMES = {np.dtype(v).newbyteorder("="): k for k, v in ST_DTYPES.items()}
MAX_HEADER = 100 << 20  # the reference implementation's limit on the JSON header
WEIGHTS_SUFFIX = ".weights.npz"  # graph.json -> graph.weights.npz, opened with the graph


def weights_path(graph_path: str | PathLike) -> Path:
    """Where the trained weights of a graph file are kept: beside it, same stem."""
    graph_path = Path(graph_path)
    return graph_path.with_name(graph_path.stem + WEIGHTS_SUFFIX)


def check_weights_path(path: str | PathLike) -> str:
    """The format a path's suffix selects (".npz" or ".safetensors"); refuses anything else."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise WeightsError(f"{path.name}: weights files must end in .npz or .safetensors")
    return path.suffix.lower()


def _arrays(params: dict) -> dict[str, np.ndarray]:
    out = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise WeightsError(f"weight names must be non-empty strings, got {key!r}")
        arr = np.asarray(value)
        if arr.dtype.newbyteorder("=") not in ST_NAMES:
            raise WeightsError(f"{key}: cannot store {arr.dtype} weights")
        out[key] = arr
    return out


def save_weights(params: dict, path: str | PathLike) -> None:
    """Write ``params`` to ``path``; the format follows the suffix (.npz or .safetensors)."""
    path = Path(path)
    kind, arrays = check_weights_path(path), _arrays(params)
    payload = safetensors_bytes(arrays) if kind == ".safetensors" else _npz_bytes(arrays)
    try:
        atomic_write_bytes(path, payload)
    except OSError as err:
        raise WeightsError(f"{path}: cannot write ({err.strerror or err})") from None


def load_weights(path: str | PathLike) -> dict[str, np.ndarray]:
    """Read a weights file written by Layerloom, PyTorch tooling or the safetensors package."""
    path = Path(path)
    kind = check_weights_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except OSError as err:
        raise WeightsError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        return parse_safetensors(raw) if kind == ".safetensors" else _parse_npz(raw)
    except WeightsError as err:
        raise WeightsError(f"{path.name}: {err}") from None


# ------------------------------------------------------------------------------------- npz
def _npz_bytes(arrays: dict) -> bytes:
    # What np.savez does, minus its keyword arguments: a key named "file" would collide there.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _parse_npz(raw: bytes) -> dict[str, np.ndarray]:
    try:
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy renamed .npz
            raise WeightsError("holds a single array, not an .npz archive of named weights")
        with archive:
            return {key: np.array(archive[key]) for key in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise WeightsError(f"not a readable .npz archive ({err})") from None


# ----------------------------------------------------------------------------- safetensors
def safetensors_bytes(arrays: dict[str, np.ndarray], metadata: dict | None = None) -> bytes:
    """Encode named arrays in the safetensors layout (tensors in name order, header 8-aligned)."""
    header: dict = {"__metadata__": {k: str(v) for k, v in (metadata or {"format": "pt"}).items()}}
    chunks, offset = [], 0
    for key in sorted(arrays):
        arr = arrays[key]
        name = ST_NAMES[arr.dtype.newbyteorder("=")]
        data = np.ascontiguousarray(arr, dtype=np.dtype(ST_DTYPES[name])).tobytes()
        header[key] = {"dtype": name, "shape": list(arr.shape),
                       "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad with spaces so the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def _header(raw: bytes) -> tuple[dict, int]:
    if len(raw) < 8:
        raise WeightsError(f"too short for a safetensors file ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        raise WeightsError(f"header length {n} does not fit the file ({len(raw)} bytes): "
                           f"truncated or not safetensors")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"safetensors header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise WeightsError("safetensors header must be a JSON object")
    return header, 8 + n


def _entry(key: str, info, data_len: int) -> tuple[np.dtype, tuple, int, int]:
    if not isinstance(info, dict):
        raise WeightsError(f"{key}: header entry must be an object")
    name, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if name not in ST_DTYPES:
        raise WeightsError(f"{key}: unsupported dtype {name!r}")
    ints = lambda v, n=None: (isinstance(v, list) and (n is None or len(v) == n)  # noqa: E731
                              and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                      for i in v))
    if not ints(shape):
        raise WeightsError(f"{key}: shape must be a list of non-negative integers, got {shape!r}")
    if not ints(offsets, 2) or offsets[0] > offsets[1] or offsets[1] > data_len:
        raise WeightsError(f"{key}: data_offsets {offsets!r} lie outside the {data_len} data bytes")
    dtype = np.dtype(ST_DTYPES[name])
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offsets[1] - offsets[0] != want:
        raise WeightsError(f"{key}: {name} {shape} needs {want} bytes, offsets give "
                           f"{offsets[1] - offsets[0]}")
    return dtype, tuple(shape), offsets[0], offsets[1]


def parse_safetensors(raw: bytes) -> dict[str, np.ndarray]:
    """Decode a safetensors file's bytes to native-endian, writable arrays, checking every entry."""
    header, start = _header(raw)
    data = memoryview(raw)[start:]
    entries = {k: _entry(k, v, len(data)) for k, v in header.items() if k != "__metadata__"}
    # The format forbids gaps and overlaps: the tensors must tile the data exactly.
    spans = sorted((b, e) for _, _, b, e in entries.values())
    end = 0
    for b, e in spans:
        if b != end:
            raise WeightsError(f"tensor data {'overlaps' if b < end else 'has a gap'} at byte {b}")
        end = e
    if end != len(data):
        raise WeightsError(f"{len(data) - end} bytes after the last tensor (truncated header?)")
    return {k: np.frombuffer(data[b:e], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
            for k, (dt, shape, b, e) in entries.items()}
