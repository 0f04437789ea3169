"""Weights files: ``{"<node_id>.<param>": array}`` (a PyTorch state_dict) as .npz or .safetensors.

safetensors files are written and decoded by the safetensors package. Its layout: 8 bytes
little-endian header length, a JSON header ``{name: {"dtype", "shape", "data_offsets"}}`` (offsets
relative to the data that follows), then the tensors' raw little-endian bytes with no gaps
(https://github.com/huggingface/safetensors#format). The header is checked here before the package
sees it, so every defect is a one-line ``WeightsError`` naming the file; .npz members are checked
header by header (``engine.npzfile``). Only regular files are read; nothing is ever unpickled;
every write is atomic.
"""
from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from os import PathLike
from pathlib import Path

import numpy as np

from layerloom.engine.files import json_depth, read_regular
from layerloom.engine.npzfile import read_npz
from layerloom.engine.serialize import atomic_write_bytes
from layerloom.engine.spec import WeightsError

SUFFIXES = (".npz", ".safetensors")
# safetensors dtype names <-> little-endian numpy dtypes
ST_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4",
             "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}
ST_NAMES = {np.dtype(v).newbyteorder("="): k for k, v in ST_DTYPES.items()}
# The reference implementation allows 100 MB; a real header takes ~100 bytes a tensor, and 100 MB
# of JSON takes gigabytes as Python objects: 16 MB is ~150,000 tensors.
MAX_HEADER = 16 << 20
MAX_DEPTH = 3  # header object -> tensor entry -> shape list
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
    if check_weights_path(path) == ".npz":
        return read_npz(path, WeightsError)  # numbers only; headers checked against the bytes
    raw = read_regular(path, WeightsError)
    try:
        return parse_safetensors(raw)
    except WeightsError as err:
        raise WeightsError(f"{path}: {err}") from None


def _npz_bytes(arrays: dict) -> bytes:
    # What np.savez does, minus its keyword arguments: a key named "file" would collide there.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


# ----------------------------------------------------------------------------- safetensors
def safetensors_bytes(arrays: dict[str, np.ndarray], metadata: dict | None = None) -> bytes:
    """Encode named arrays with the safetensors package (header 8-aligned, little-endian data)."""
    from safetensors.numpy import save

    meta = {str(k): str(v) for k, v in (metadata or {"format": "pt"}).items()}
    # np.asarray keeps 0-d tensors 0-d (np.ascontiguousarray would make them 1-d)
    native = {k: np.asarray(v, dtype=v.dtype.newbyteorder("<"), order="C") for k, v in arrays.items()}
    return save(native, metadata=meta)


def parse_safetensors(raw: bytes) -> dict[str, np.ndarray]:
    """Native-endian, writable arrays from a safetensors file's bytes. The header is checked here
    first (nesting, types, shapes against the bytes present, the tensors tiling the data), so
    nothing is allocated for a claim the file cannot back; the safetensors package then decodes."""
    from safetensors import SafetensorError
    from safetensors.numpy import deserialize

    header, start = _header(raw)
    entries = {k: _entry(k, v, len(raw) - start) for k, v in header.items() if k != "__metadata__"}
    _check_tiling(entries, len(raw) - start)
    try:
        views = deserialize(raw)
    except (SafetensorError, ValueError, OverflowError, TypeError) as err:
        raise WeightsError(f"the safetensors package refuses it ({str(err)[:120]})") from None
    out = {}
    for key, view in views:
        dtype, shape = entries[key][:2]
        out[key] = np.frombuffer(view["data"], dtype=dtype).reshape(shape).astype(
            dtype.newbyteorder("="))  # a writable copy in native byte order
    return out


def _header(raw: bytes) -> tuple[dict, int]:
    if len(raw) < 8:
        raise WeightsError(f"too short for a safetensors file ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or 8 + n > len(raw):
        raise WeightsError(f"header length {n} does not fit the file ({len(raw)} bytes): "
                           f"truncated or not safetensors")
    try:
        text = raw[8:8 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise WeightsError("safetensors header is not UTF-8 text") from None
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise WeightsError(f"safetensors header nests {depth:,} levels deep; the format has "
                           f"{MAX_DEPTH - 1}")
    try:
        header = json.loads(text)
    except (ValueError, RecursionError, MemoryError) as err:  # JSONDecodeError, 5,000 digits
        raise WeightsError(f"safetensors header is not valid JSON ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise WeightsError("safetensors header must be a JSON object")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise WeightsError("safetensors __metadata__ must map names to strings")
    return header, 8 + n


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _entry(key: str, info, data_len: int) -> tuple[np.dtype, tuple, int, int]:
    shown = _short(key)[1:-1]
    if not isinstance(info, dict):
        raise WeightsError(f"{shown}: header entry must be an object")
    name, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if name not in ST_DTYPES:
        raise WeightsError(f"{shown}: unsupported dtype {_short(name)} (weights are numbers: "
                           f"{', '.join(ST_DTYPES)})")
    ints = lambda v, n=None: (isinstance(v, list) and (n is None or len(v) == n)  # noqa: E731
                              and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                      for i in v))
    if not ints(shape) or len(shape) > 64:
        raise WeightsError(f"{shown}: shape must be a list of at most 64 non-negative integers, "
                           f"got {_short(shape)}")
    if not ints(offsets, 2) or offsets[0] > offsets[1] or offsets[1] > data_len:
        raise WeightsError(f"{shown}: data_offsets {_short(offsets)} lie outside the {data_len} "
                           f"data bytes")
    dtype = np.dtype(ST_DTYPES[name])
    want = math.prod(shape) * dtype.itemsize  # Python integers: [10**30] cannot overflow
    if offsets[1] - offsets[0] != want:
        raise WeightsError(f"{shown}: {name} {_short(shape)} needs "
                           f"{want if want < 10**18 else f'{want:.3g}'} bytes, offsets give "
                           f"{offsets[1] - offsets[0]}")
    return dtype, tuple(shape), offsets[0], offsets[1]


def _check_tiling(entries: dict, data_len: int) -> None:
    """The format forbids gaps and overlaps: the tensors must tile the data exactly."""
    end = 0
    for b, e in sorted((b, e) for _, _, b, e in entries.values()):
        if b != end:
            raise WeightsError(f"tensor data {'overlaps' if b < end else 'has a gap'} at byte {b}")
        end = e
    if end != data_len:
        raise WeightsError(f"{data_len - end} bytes after the last tensor (truncated header?)")
