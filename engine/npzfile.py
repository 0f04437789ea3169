"""``.npz`` archives read member by member, each ``.npy`` header checked before its array exists.

``np.load`` trusts a member's header: one that claims 10¹² items makes it allocate terabytes before
it notices the data is not there. Here each member's header is parsed (numpy's own parser, which
never evaluates code), its dtype must be numeric (or text where the caller allows it), and the
bytes its shape needs must equal the bytes the member holds; only then is the array read, in
bounded chunks. Python objects are refused, never unpickled. Data sets and weights both read here.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from layerloom.engine.files import claimed_bytes, memory_cap, open_regular, read_into, size_text
from layerloom.engine.spec import LayerloomError

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
TEXT_KINDS = "US"
NPY_MAGIC = b"\x93NUMPY"
MAX_MEMBERS = 10_000
# What zipfile and zlib raise on a damaged archive (zipfile has no common base for them).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
              RuntimeError, ValueError, OverflowError, IndexError, struct.error)


def read_npz(path: str | os.PathLike, error: type[LayerloomError],
             text_keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """``{key: array}`` of an ``.npz`` file; arrays are native-endian and writable. Members named
    in ``text_keys`` may hold strings; every other member must hold numbers."""
    path = Path(path)
    fh, _size = open_regular(path, error)
    with fh:
        if fh.read(len(NPY_MAGIC)) == NPY_MAGIC:
            raise error(f"{path}: holds a single array (.npy), not an .npz archive of named arrays")
        fh.seek(0)
        try:
            archive = zipfile.ZipFile(fh)
        except ZIP_ERRORS as err:
            raise error(f"{path}: not a readable .npz archive ({_why(err)})") from None
        with archive:
            members = _members(archive, path, error)
            return {key: _member(archive, info, key, f"{path}: {key}", error,
                                 NUMERIC_KINDS + (TEXT_KINDS if key in text_keys else ""))
                    for key, info in members.items()}


def _why(err: Exception) -> str:
    """zipfile's own words for a broken archive; other errors by their kind only (their text
    can quote the file's bytes)."""
    return str(err)[:120] if isinstance(err, zipfile.BadZipFile) else type(err).__name__


def _members(archive: zipfile.ZipFile, path: Path, error) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise error(f"{path}: {len(infos):,} members; an .npz of named arrays has at most "
                    f"{MAX_MEMBERS:,}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename.endswith("/"):  # a folder entry (ZipInfo.is_dir fails on an empty name)
            continue
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        shown = key if len(key) <= 60 else key[:57] + "..."
        if not info.filename.endswith(".npy"):
            raise error(f"{path}: member {shown!r} is not a .npy array")
        if key in members:
            raise error(f"{path}: two members are named {shown!r}")
        if info.flag_bits & 0x1:
            raise error(f"{path}: member {shown!r} is encrypted")
        members[key] = info
    total = sum(i.file_size for i in members.values())
    if total > memory_cap():
        raise error(f"{path}: its arrays claim {size_text(total)}, more than this machine can "
                    f"hold ({size_text(memory_cap())})")
    return members


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, where: str, error,
            kinds: str) -> np.ndarray:
    try:
        with archive.open(info) as fh:
            shape, fortran, dtype = _header(fh, where, error)
            if dtype.kind == "O" or dtype.hasobject:
                raise error(f"{where}: holds Python objects; Layerloom never unpickles "
                            f"(allow_pickle=False)")
            if (dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None
                    or dtype.itemsize == 0):
                wanted = "numbers or text" if "U" in kinds else "numbers"
                raise error(f"{where}: holds {dtype} values; it must hold {wanted}")
            if any(d < 0 for d in shape):
                raise error(f"{where}: the .npy header has a negative size {shape}")
            want = claimed_bytes(shape, dtype.itemsize, where, error)
            held = info.file_size - fh.tell()
            if want != held:
                raise error(f"{where}: the .npy header claims {shape} {dtype} ({want:,} bytes), "
                            f"the archive holds {held:,} bytes for it")
            flat = read_into(fh, want // dtype.itemsize, dtype, where, error)
    except LayerloomError:
        raise
    except ZIP_ERRORS as err:
        raise error(f"{where}: cannot read this member ({_why(err)})") from None
    array = flat.reshape(shape, order="F" if fortran else "C")
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def _header(fh, where: str, error) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) from numpy's header parser, which reads a literal dict and
    never runs code; its messages quote the header, so only its verdict is passed on."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            return fmt.read_array_header_1_0(fh)
        if version == (2, 0):
            return fmt.read_array_header_2_0(fh)
    except LayerloomError:
        raise
    except Exception:  # noqa: BLE001 (a literal parser on hostile text: SyntaxError, tokenize, ...)
        raise error(f"{where}: not a valid .npy array header") from None
    raise error(f"{where}: .npy format version {version[0]}.{version[1]} is not supported")
