"""Decoded gzip IDX files, kept as ``.npy`` in the user's cache folder.

Inflating Fashion-MNIST's 60,000 training images takes ~0.3 s of a one-epoch ``layerloom train``
run of ~5 s, every run, and as long each time the window loads the data set. The decoded array
is written once under a name made of the file's resolved path, size and modification time, so an
edited or replaced file is decoded afresh (and its older cache removed). A cache that cannot be
read, or whose array does not match the file's IDX header, is ignored and rewritten; a cache
folder that cannot be written costs only the speed. ``.npy`` is read with ``allow_pickle=False``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError

VERSION = 1  # bump when the decoded arrays of the same file change


def _entry(path: Path, size: int, mtime_ns: int) -> tuple[Path, str] | None:
    """(the cache file for this version of ``path``, the prefix all of its versions share)."""
    from layerloom.engine.data.cache import cache_dir

    name = str(path.resolve()).encode("utf-8", "surrogateescape")
    prefix = "idx-" + hashlib.sha256(name).hexdigest()[:16]
    try:
        folder = cache_dir() / "idx"
        folder.mkdir(parents=True, exist_ok=True)
    except (DataError, OSError):
        return None
    return folder / f"{prefix}-v{VERSION}-{size}-{mtime_ns}.npy", prefix


def load(path: Path, size: int, mtime_ns: int, dtype: np.dtype, dims: tuple) -> np.ndarray | None:
    """The cached array of this file if there is one and it has the header's type and shape."""
    entry = _entry(path, size, mtime_ns)
    if entry is None or not entry[0].is_file():
        return None
    try:
        arr = np.load(entry[0], allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if (not isinstance(arr, np.ndarray) or arr.dtype != dtype.newbyteorder("=")
            or arr.shape != tuple(dims) or not arr.flags.c_contiguous):
        return None
    return arr


def store(path: Path, size: int, mtime_ns: int, arr: np.ndarray) -> None:
    """Write the decoded array (atomically: a temporary file, then a rename) and drop the
    caches of this file's earlier versions. Failing to write is not an error."""
    entry = _entry(path, size, mtime_ns)
    if entry is None:
        return
    target, prefix = entry
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, target)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        return
    for old in target.parent.glob(f"{prefix}-*.npy"):
        if old != target:
            try:
                old.unlink()
            except OSError:
                pass
