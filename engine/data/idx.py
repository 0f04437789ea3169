"""MNIST-format IDX files: a validated reader and writer, and a loader for an MNIST-style folder.

An IDX file is ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the
values big-endian (http://yann.lecun.com/exdb/mnist/). Files may be gzip-compressed; which one is
decided by the gzip magic bytes, never by the file name. Every defect (wrong magic, unknown type,
short or long data) is a one-line ``DataError`` naming the file.
"""
from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset, Split, split_off

GZIP_MAGIC = b"\x1f\x8b"
# IDX type code -> big-endian numpy dtype
DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
CODES = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
MAX_DECOMPRESSED = 4 << 30  # refuse a gzip that would inflate past 4 GiB (a bomb, or not IDX)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
            out = fh.read(MAX_DECOMPRESSED + 1)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated gzip data ({err})") from None
    if len(out) > MAX_DECOMPRESSED:
        raise DataError(f"{path}: decompresses to more than {MAX_DECOMPRESSED >> 30} GiB")
    return out


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes to a native-endian, writable array; ``name`` goes into error messages."""
    if len(data) < 4:
        raise DataError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{name}: not an IDX file (magic {data[:4].hex()} does not start with 0000)")
    code, ndim = data[2], data[3]
    if code not in DTYPES:
        raise DataError(f"{name}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    head = 4 + 4 * ndim
    if len(data) < head:
        raise DataError(f"{name}: truncated header (needs {head} bytes, file has {len(data)})")
    dims = struct.unpack(f">{ndim}I", data[4:head])
    dtype = DTYPES[code]
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - head
    if got < want:
        raise DataError(f"{name}: truncated: the header {'×'.join(map(str, dims))} needs "
                        f"{want} bytes of data, the file has {got}")
    if got > want:
        raise DataError(f"{name}: {got - want} unexpected bytes after the data "
                        f"({'×'.join(map(str, dims))} declared)")
    # frombuffer is read-only and big-endian: astype to native makes the writable copy we need.
    return np.frombuffer(data, dtype=dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzip-compressed or raw."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


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
        return images.astype(np.float32) / np.float32(255)
    if np.issubdtype(images.dtype, np.integer):
        raise DataError(f"{where}: integer images must be uint8 (0..255), got {images.dtype}")
    return images.astype(np.float32)


def read_pair(folder: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
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
    return images_to_float(images, str(img_path)), labels.astype(np.int64)


def class_names_for(folder: Path, num_classes: int) -> list[str]:
    """``classes.txt`` beside the files (one name a line), else Fashion-MNIST's names when the
    folder's name says fashion, else the digits."""
    listing = folder / "classes.txt"
    if listing.is_file():
        try:
            names = [s.strip() for s in listing.read_text(encoding="utf-8").splitlines() if s.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"{listing}: cannot read ({err})") from None
        if len(names) < num_classes:
            raise DataError(f"{listing}: lists {len(names)} class names, the labels use {num_classes}")
        return names
    if "fashion" in folder.resolve().name.lower() and num_classes <= len(FASHION_CLASSES):
        return list(FASHION_CLASSES)
    return [str(i) for i in range(num_classes)]


def load_idx_dir(folder: str | Path, val_fraction: float = 0.1, seed: int = 0, *,
                 name: str | None = None) -> Dataset:
    """An MNIST-format folder: train-* becomes train + validation, t10k-* the test split."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected MNIST-format IDX files in it)")
    x_train, y_train = read_pair(folder, "train")
    x_test, y_test = read_pair(folder, "t10k")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{folder}: train images are {'×'.join(map(str, x_train.shape[1:]))} but "
                        f"test images are {'×'.join(map(str, x_test.shape[1:]))}")
    num_classes = int(max(y_train.max(initial=-1), y_test.max(initial=-1))) + 1
    train, val = split_off(x_train, y_train, val_fraction, seed)
    return Dataset(name or folder.resolve().name, train, val, Split(x_test, y_test),
                   class_names=class_names_for(folder, num_classes),
                   description=f"MNIST-format images from {folder}")
