"""Reading files a person (or a graph file from anywhere) hands us: regular files only, bounded reads.

Every reader of data, weights and ONNX files starts here so that the same rules hold for all of
them: a device, FIFO or folder is refused before a byte is read (``/dev/zero`` would read forever,
a FIFO would block); a file larger than its cap is refused from its size alone; reads go through
fixed-size buffers into arrays whose size was checked against the bytes present. Errors are raised
as the caller's ``LayerloomError`` subclass, name the file and never quote its contents.
"""
from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np

from layerloom.engine.spec import LayerloomError

CHUNK = 8 << 20  # bytes per read: no buffer larger than this is asked for while streaming


def memory_cap() -> int:
    """Bytes one file may make us allocate: half of physical memory, or of the address-space limit
    (``ulimit -v``) when one is set and lower, so a claim that cannot fit is refused up front."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            total = min(total, soft)
    except (ImportError, ValueError, OSError):
        pass
    return max(total // 2, 1 << 20)


def size_text(n: int) -> str:
    """A byte count for a person: ``3.6 TiB``, ``512 B``."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"


def claimed_bytes(dims, itemsize: int, where: str, error: type[LayerloomError]) -> int:
    """``prod(dims) * itemsize`` in Python integers (numpy's int64 product wraps to 0 or less),
    refused when it exceeds what this machine can hold."""
    total = math.prod(int(d) for d in dims) * itemsize
    if total > memory_cap():
        shown = "×".join(str(d) for d in dims)
        raise error(f"{where}: the header claims {shown} values ({size_text(total)}), more than "
                    f"this machine can hold ({size_text(memory_cap())})")
    return total


def open_regular(path: str | os.PathLike, error: type[LayerloomError],
                 max_bytes: int | None = None) -> tuple[BinaryIO, int]:
    """An open binary handle on a regular file and its size; ``error`` for anything else.

    Opened non-blocking (a FIFO must not hang us) and checked with ``fstat`` on the open handle,
    so a file swapped for a device between a check and the open is still caught."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise error(f"{path}: is {kind}, not a regular file; only regular files are read")
    cap = memory_cap() if max_bytes is None else max_bytes
    if info.st_size > cap:
        os.close(fd)
        raise error(f"{path}: {size_text(info.st_size)} is larger than the {size_text(cap)} "
                    f"Layerloom reads from such a file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=0), info.st_size


def read_regular(path: str | os.PathLike, error: type[LayerloomError],
                 max_bytes: int | None = None) -> bytes:
    """The whole of a regular file no larger than ``max_bytes`` (default: ``memory_cap()``)."""
    fh, size = open_regular(path, error, max_bytes)
    with fh:
        try:
            data = fh.read(size)  # exactly the size fstat gave: a file growing meanwhile is cut
            while len(data) < size:  # one read(2) returns at most ~2 GiB
                more = fh.read(size - len(data))
                if not more:
                    break
                data += more
        except OSError as err:
            raise error(f"{Path(path)}: cannot read ({err.strerror or err})") from None
        except MemoryError:
            raise error(f"{Path(path)}: not enough memory to read {size_text(size)}") from None
    if len(data) != size:
        raise error(f"{Path(path)}: changed while it was read")
    return data


def read_into(stream, count: int, dtype: np.dtype, where: str,
              error: type[LayerloomError]) -> np.ndarray:
    """``count`` items of ``dtype`` from ``stream`` into a fresh writable array, in bounded
    chunks; ``error`` when the stream ends early. The caller has checked ``count`` already."""
    try:
        out = np.empty(count, dtype=dtype)
    except MemoryError:
        raise error(f"{where}: not enough memory for {size_text(count * dtype.itemsize)}") from None
    view, done = memoryview(out.reshape(-1).view(np.uint8)), 0
    total = count * dtype.itemsize
    while done < total:
        chunk = stream.read(min(CHUNK, total - done))
        if not chunk:
            raise error(f"{where}: truncated: the header needs {total:,} bytes of data, the "
                        f"file has {done:,}")
        view[done:done + len(chunk)] = chunk
        done += len(chunk)
    return out


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in JSON text, counted without recursion (strings skipped),
    so a header nested 100,000 deep is refused before a recursive parser meets it."""
    bare = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    step = (np.isin(bare, (ord("["), ord("{"))).astype(np.int64)
            - np.isin(bare, (ord("]"), ord("}"))))
    return int(np.cumsum(step).max(initial=0))
