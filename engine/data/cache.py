"""The decoded-image cache: one ``.npy`` file of uint8 N×C×H×W rows per image folder and options.

Decoding photos is the slow part of reading a folder, so it happens once: the rows go into the
user's cache folder (``LAYERLOOM_CACHE_DIR``, else ``$XDG_CACHE_HOME/layerloom``, else
``~/.cache/layerloom``) under a name derived from the folder's path and a fingerprint of every
file's name, size and modification time plus the decode options. A changed, added or removed file
changes the fingerprint, so a stale cache is never read; older caches of the same folder are
removed when a new one is written.

The file is an ordinary ``.npy`` (``np.load(path, mmap_mode="r")`` opens it), but ``RowStore``
reads rows with ``os.pread`` into small buffers rather than mapping it: a mapping of a 5 GB file
needs 5 GB of address space, which a memory limit (``ulimit -v``) refuses, and its resident pages
count against the process. Reads go through the page cache, so a second epoch is as fast.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError

CACHE_VERSION = 1  # bump when the decoded bytes for the same options change


def cache_dir() -> Path:
    """The per-user cache folder for Layerloom (created on first use)."""
    if os.environ.get("LAYERLOOM_CACHE_DIR"):
        base = Path(os.environ["LAYERLOOM_CACHE_DIR"])
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "layerloom" / "cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "layerloom"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "layerloom"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{base}: cannot create the cache folder ({err.strerror or err})") from None
    return base


def fingerprint(files: list[tuple[str, int, int]], options: dict) -> str:
    """A hash of (relative path, size, mtime_ns) of every file and the decode options."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, options], sort_keys=True).encode())
    for rel, size, mtime in files:
        h.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:20]


def cache_paths(folder: Path, print_: str) -> tuple[Path, Path, str]:
    """(rows .npy, meta .json, the prefix every cache of this folder shares)."""
    prefix = "img-" + hashlib.sha256(str(folder.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    base = cache_dir() / "images"
    base.mkdir(parents=True, exist_ok=True)
    return base / f"{prefix}-{print_}.npy", base / f"{prefix}-{print_}.json", prefix


def remove_stale(npy: Path, prefix: str) -> None:
    """Delete this folder's other caches (files changed since they were written)."""
    for old in npy.parent.glob(f"{prefix}-*"):
        if not old.name.startswith(npy.stem + ".") and not old.name.endswith(".tmp"):
            try:
                old.unlink()
            except OSError:
                pass


class RowWriter:
    """Writes a ``.npy`` of ``shape`` uint8 row by row into a temporary file; ``commit`` renames it."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.shape = path, shape
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.fh = open(self.tmp, "wb")
        np.lib.format.write_array_header_1_0(
            self.fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
        self.offset = self.fh.tell()
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64))
        self.fh.truncate(self.offset + shape[0] * self.row_bytes)  # sparse until written

    def write(self, row: int, pixels: np.ndarray) -> None:
        self.fh.seek(self.offset + row * self.row_bytes)
        self.fh.write(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.fh.close()
        try:
            self.tmp.unlink()
        except OSError:
            pass


class RowStore:
    """Random access to the rows of a uint8 ``.npy`` by ``os.pread``: thread-safe, bounded memory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                self.offset = fh.tell()
        except (OSError, ValueError) as err:
            raise DataError(f"{self.path}: unreadable image cache ({err})") from None
        if dtype != np.uint8 or fortran or len(shape) != 4:
            raise DataError(f"{self.path}: not an image cache (uint8 N×C×H×W), got {dtype} {shape}")
        self.shape = tuple(int(s) for s in shape)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64))
        if self.path.stat().st_size != self.offset + self.shape[0] * self.row_bytes:
            raise DataError(f"{self.path}: image cache has the wrong size (truncated?)")
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _file(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            return self._fd

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the order asked; consecutive rows are read in one call."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        out = np.empty((len(rows),) + self.shape[1:], dtype=np.uint8)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        flat = out.reshape(len(rows), -1)
        fd, start = self._file(), 0
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        for stop in [*breaks.tolist(), len(ordered)]:
            first, count = int(ordered[start]), stop - start
            data = os.pread(fd, count * self.row_bytes, self.offset + first * self.row_bytes)
            if len(data) != count * self.row_bytes:
                raise DataError(f"{self.path}: image cache shrank while reading")
            block = np.frombuffer(data, dtype=np.uint8).reshape(count, -1)
            flat[order[start:stop]] = block
            start = stop
        return out

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: nothing to report to)
            pass

    def __repr__(self) -> str:
        return f"RowStore({self.path.name}, rows={self.shape[0]}, row={self.shape[1:]})"
