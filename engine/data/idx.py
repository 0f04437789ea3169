"""MNIST-format IDX files: a validated reader and writer, and a loader for an MNIST-style folder.

An IDX file is ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the
values big-endian (http://yann.lecun.com/exdb/mnist/). Files may be gzip-compressed; which one is
decided by the gzip magic bytes, never by the file name. Every defect (wrong magic, unknown type,
short or long data) is a one-line ``DataError`` naming the file. A gzip file's decoded values are
kept in the user's cache folder (``idx_cache``), so only its first read inflates it.
"""
from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from layerloom.engine.data import (DataError, Dataset, Split, class_ids, idx_cache, split_off,
                                   split_order)
from layerloom.engine.data.images import MAX_SIDE, ArrayRows, ImageArray, ImagePrep, unit_float
from layerloom.engine.files import claimed_bytes, open_regular, read_into, read_regular

GZIP_MAGIC = b"\x1f\x8b"
# IDX type code -> big-endian numpy dtype
DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
CODES = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
MAX_CLASSES_TXT = 4 << 20  # bytes of classes.txt
DEFLATE_MAX_RATIO = 1032  # deflate never expands more than ~1032:1 (zlib's technical details)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _exact(stream, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _header(stream, name: str) -> tuple[np.dtype, tuple, int]:
    """(dtype, dims, header bytes) from the start of an IDX stream."""
    magic = _exact(stream, 4)
    if len(magic) < 4:
        raise DataError(f"{name}: too short for an IDX header ({len(magic)} bytes)")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{name}: not an IDX file (magic {magic.hex()} does not start with 0000)")
    code, ndim = magic[2], magic[3]
    if code not in DTYPES:
        raise DataError(f"{name}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    sizes = _exact(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{name}: truncated header (needs {4 + 4 * ndim} bytes, file has "
                        f"{4 + len(sizes)})")
    return DTYPES[code], struct.unpack(f">{ndim}I", sizes), 4 + 4 * ndim


def _parse(stream, name: str, size: int, gz: bool) -> np.ndarray:
    """Header, then exactly the values it declares, checked against what the file can hold
    before the array is made; read through bounded buffers (never one 4 GiB request)."""
    dtype, dims, head = _header(stream, name)
    shown = "×".join(map(str, dims))
    want = claimed_bytes(dims, dtype.itemsize, name, DataError)  # Python ints: no overflow to 0
    if gz and head + want > DEFLATE_MAX_RATIO * size + 1024:
        raise DataError(f"{name}: the header {shown} needs {want:,} bytes of data, more than "
                        f"{size:,} bytes of gzip data can hold")
    if not gz and size - head < want:
        raise DataError(f"{name}: truncated: the header {shown} needs {want} bytes of data, "
                        f"the file has {size - head}")
    if not gz and size - head > want:
        raise DataError(f"{name}: {size - head - want} unexpected bytes after the data "
                        f"({shown} declared)")
    values = read_into(stream, want // dtype.itemsize, dtype, name, DataError)
    if stream.read(1):
        raise DataError(f"{name}: unexpected bytes after the data ({shown} declared)")
    if not dtype.isnative:  # in place: a native copy would double the memory for a moment
        values = values.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return values.reshape(dims)


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode raw (uncompressed) IDX bytes to a native-endian, writable array."""
    return _parse(io.BytesIO(data), name, len(data), gz=False)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzip-compressed or raw (told apart by the magic bytes)."""
    path = Path(path)
    fh, size = open_regular(path, DataError)
    with fh:
        gz = _exact(fh, 2) == GZIP_MAGIC
        fh.seek(0)
        try:
            if not gz:
                return _parse(fh, str(path), size, gz=False)
            mtime = os.fstat(fh.fileno()).st_mtime_ns
            with gzip.GzipFile(fileobj=fh) as stream:  # the header: a few bytes inflated
                dtype, dims, _ = _header(stream, str(path))
            cached = idx_cache.load(path, size, mtime, dtype, dims)
            if cached is not None:
                return cached
            fh.seek(0)
            with gzip.GzipFile(fileobj=fh) as stream:
                values = _parse(stream, str(path), size, gz=True)
            idx_cache.store(path, size, mtime, values)
            return values
        except (EOFError, OSError, zlib.error) as err:
            raise DataError(f"{path}: corrupt or truncated gzip data ({type(err).__name__})") from None


def encode_idx(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    code = CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store {array.dtype}: use uint8, int8, int16, int32, float32 or float64")
    if not 1 <= array.ndim <= 255:
        raise DataError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write an IDX file (gzip when ``compress``, or when the name ends in .gz); reproducible bytes."""
    from layerloom.engine.serialize import atomic_write_bytes

    path = Path(path)
    payload = encode_idx(array)
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=9, mtime=0)
    atomic_write_bytes(path, payload)


# ----------------------------------------------------------------------------------- folders
def _names(stem: str, kind: str, ndim: int) -> list[str]:
    # train-images-idx3-ubyte (LeCun's names) and train-images.idx3-ubyte (a common re-upload)
    bases = [f"{stem}-{kind}-idx{ndim}-ubyte", f"{stem}-{kind}.idx{ndim}-ubyte"]
    return [b + ext for b in bases for ext in (".gz", "")]


def find_idx_file(folder: Path, stem: str, kind: str, ndim: int) -> Path:
    names = _names(stem, kind, ndim)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {names[0]} (or {names[2]}) in this folder")


def images_to_float(images: np.ndarray, where: str) -> np.ndarray:
    """N×H×W (or N×C×H×W) integers or floats -> float32 N×C×H×W in [0, 1]."""
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DataError(f"{where}: expected images N×H×W, got {images.ndim} dimensions")
    if images.dtype == np.uint8:
        return unit_float(images)
    if np.issubdtype(images.dtype, np.integer):
        raise DataError(f"{where}: integer images must be uint8 (0..255), got {images.dtype}")
    return images.astype(np.float32)


def read_pair(folder: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N×C×H×W as stored, int64 labels); the images checked already: ``images_to_float``
    converts them later without error."""
    img_path = find_idx_file(folder, stem, "images", 3)
    lab_path = find_idx_file(folder, stem, "labels", 1)
    images, labels = read_idx(img_path), read_idx(lab_path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{lab_path}: labels must be one integer per image, got "
                        f"{labels.dtype} {'×'.join(map(str, labels.shape))}")
    if len(images) != len(labels):
        raise DataError(f"{folder}: {img_path.name} has {len(images)} images but "
                        f"{lab_path.name} has {len(labels)} labels")
    if labels.size and labels.min() < 0:
        raise DataError(f"{lab_path}: negative label {labels.min()}")
    images_to_float(images[:0], str(img_path))  # its checks, on no pixels
    return images[:, None] if images.ndim == 3 else images, labels.astype(np.int64)


def class_names_for(folder: Path, labels: list[np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """The labels as class ids and their names: ``classes.txt`` beside the files (one name a
    line), else Fashion-MNIST's names when the folder's name says fashion, else the label values."""
    labels, names = class_ids(labels, str(folder))
    listing = folder / "classes.txt"
    if listing.is_file() and names == [str(i) for i in range(len(names))]:
        try:
            text = read_regular(listing, DataError, MAX_CLASSES_TXT).decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{listing}: not UTF-8 text") from None
        listed = [s.strip() for s in text.splitlines() if s.strip()]
        if len(listed) < len(names):
            raise DataError(f"{listing}: lists {len(listed)} class names, the labels use "
                            f"{len(names)}")
        return labels, listed
    if "fashion" in folder.resolve().name.lower() and len(names) <= len(FASHION_CLASSES):
        return labels, list(FASHION_CLASSES)
    return labels, names


def load_idx_dir(folder: str | Path, val_fraction: float = 0.1, seed: int = 0, *,
                 name: str | None = None) -> Dataset:
    """An MNIST-format folder: train-* becomes train + validation, t10k-* the test split."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected MNIST-format IDX files in it)")
    x_train, y_train = read_pair(folder, "train")  # split as stored: 4× fewer bytes
    x_test, y_test = read_pair(folder, "t10k")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{folder}: train images are {'×'.join(map(str, x_train.shape[1:]))} but "
                        f"test images are {'×'.join(map(str, x_test.shape[1:]))}")
    (y_train, y_test), names = class_names_for(folder, [y_train, y_test])
    prep = _image_prep(x_train.shape[1:])
    if prep and x_train.dtype == x_test.dtype == np.uint8:  # pixels kept, a batch made float
        keep, hold = split_order(len(x_train), val_fraction, seed)
        rows = ArrayRows(x_train, folder)
        train, val = (Split(ImageArray(rows, r, prep), y_train[r]) for r in (keep, hold))
        test = Split(ImageArray(ArrayRows(x_test, folder), np.arange(len(x_test)), prep), y_test)
    else:
        train, val = split_off(x_train, y_train, val_fraction, seed)
        train, val, test = (Split(images_to_float(s.x, str(folder)), s.y)
                            for s in (train, val, Split(x_test, y_test)))
    return Dataset(name or folder.resolve().name, train, val, test, class_names=names,
                   description=f"MNIST-format images from {folder}",
                   preprocessing=prep.to_dict() if prep else {})


def _image_prep(sample: tuple) -> ImagePrep | None:
    """How an image file becomes a sample like these (``layerloom predict``, the Inference tab):
    squashed to their size, grey or colour as they are, scaled to [0, 1] and not normalised;
    None for samples that are no picture (channels other than 1 or 3, or sides out of range)."""
    c, h, w = sample
    if c not in (1, 3) or not (4 <= h <= MAX_SIDE and 4 <= w <= MAX_SIDE):
        return None
    return ImagePrep((h, w), c, "stretch", (0.0,) * c, (1.0,) * c)
