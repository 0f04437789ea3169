"""Image files to arrays, the same way for training, the Inference tab and ``layerloom predict``.

``decode`` turns one file (PNG, JPEG, BMP, WebP, TIFF, … anything Pillow reads) into uint8
C×H×W: EXIF rotation applied, transparency composited over white, 16-bit and float images scaled
to 8 bits, then fitted to H×W. ``ImagePrep`` is the preprocessing a trained network expects —
size, channels, fit and the per-channel mean and standard deviation of its training split — and
is stored in the graph file's data section, so a person's own photo is prepared exactly as the
training images were. ``ImageArray`` is a split's images read on demand from the decoded cache
(``cache.RowStore``) or from uint8 pixels in memory (``ArrayRows``, an IDX file's).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError

FITS = ("crop", "stretch")  # crop: scale the short side to fit, cut the centre; stretch: squash
MAX_SIDE = 1024


class DecodeError(Exception):
    """One file that is not a readable image; the reason goes into the skipped-files summary."""


def _unit_mode(img):
    """16-bit, 32-bit integer and float images as 8-bit grey (Pillow's convert would clip)."""
    from PIL import Image

    a = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        a = a / 257.0
    elif img.mode == "F" and a.size and np.nanmax(a) <= 1.0:
        a = a * 255.0
    elif a.size and a.max() > 255:
        a = a / 257.0
    return Image.fromarray(np.clip(np.nan_to_num(a) + 0.5, 0, 255).astype(np.uint8), "L")


def _to_mode(img, channels: int):
    from PIL import Image

    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _unit_mode(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)  # transparent parts read as white paper
    return img.convert("L" if channels == 1 else "RGB")


def _fit(img, size: tuple[int, int], fit: str):
    from PIL import Image, ImageOps

    h, w = size
    if fit == "crop":
        return ImageOps.fit(img, (w, h), Image.Resampling.BILINEAR, centering=(0.5, 0.5))
    return img.resize((w, h), Image.Resampling.BILINEAR)


def decode(path: str | Path, size: tuple[int, int], channels: int, fit: str) -> np.ndarray:
    """One image file -> uint8 C×H×W; any defect is a ``DecodeError`` with a short reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            side = max(size)
            img.draft("L" if channels == 1 else "RGB", (side, side))  # JPEG: decode at 1/2..1/8
            img = ImageOps.exif_transpose(img)
            img.load()
            img = _fit(_to_mode(img, channels), size, fit)
            pixels = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise DecodeError("no such file") from None
    except UnidentifiedImageError:
        raise DecodeError("not an image Pillow can read") from None
    except Image.DecompressionBombError:
        raise DecodeError("too many pixels (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as err:
        # Pillow's format plugins raise any of these for truncated or malformed files
        text = getattr(err, "strerror", None) or (str(err).splitlines() or [""])[0][:80]
        raise DecodeError(text or err.__class__.__name__) from None
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def parse_size(value, where: str) -> tuple[int, int]:
    """``32`` or ``"32x48"`` / ``"32×48"`` (height × width) -> (32, 48)."""
    if isinstance(value, int) and not isinstance(value, bool):
        parts = [value, value]
    else:
        text = str(value).lower().replace("×", "x")
        try:
            parts = [int(p) for p in text.split("x")]
        except ValueError:
            parts = []
    if len(parts) != 2 or not all(4 <= p <= MAX_SIDE for p in parts):
        raise DataError(f"{where}: size must be HxW (or one number) with sides from 4 to "
                        f"{MAX_SIDE}, got {value!r}")
    return parts[0], parts[1]


@dataclass(frozen=True)
class ImagePrep:
    """What a network trained on images expects of an image file (stored in the graph file)."""

    size: tuple[int, int]
    channels: int
    fit: str = "crop"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def to_dict(self) -> dict:
        return {"kind": "image", "size": list(self.size), "channels": self.channels,
                "fit": self.fit, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "data.preprocessing") -> "ImagePrep":
        """Checked: a hand-edited graph file gets a one-line error, never a crash later."""
        if not isinstance(d, dict) or d.get("kind") != "image":
            raise DataError(f"{where}: not an image preprocessing section")
        size = d.get("size")
        if not (isinstance(size, list) and len(size) == 2):
            raise DataError(f"{where}.size: must be [height, width], got {size!r}")
        size = parse_size(f"{size[0]}x{size[1]}", f"{where}.size")
        channels = d.get("channels")
        if channels not in (1, 3) or isinstance(channels, bool):
            raise DataError(f"{where}.channels: must be 1 or 3, got {channels!r}")
        if d.get("fit", "crop") not in FITS:
            raise DataError(f"{where}.fit: must be one of {', '.join(FITS)}, got {d.get('fit')!r}")
        stats = {}
        for key in ("mean", "std"):
            v = d.get(key)
            ok = (isinstance(v, list) and len(v) == channels
                  and all(isinstance(a, (int, float)) and not isinstance(a, bool)
                          and np.isfinite(a) for a in v))
            if not ok or (key == "std" and min(v) <= 0):
                raise DataError(f"{where}.{key}: must be {channels} finite numbers"
                                f"{' above 0' if key == 'std' else ''}, got {v!r}")
            stats[key] = tuple(float(a) for a in v)
        return cls(size, channels, d.get("fit", "crop"), stats["mean"], stats["std"])

    def normalise(self, unit: np.ndarray, in_place: bool = False) -> np.ndarray:
        """Images in [0, 1] (N×C×H×W) -> (x - mean) / std per channel, float32; ``in_place``
        reuses a float32 batch the caller owns (no temporaries: large batches stay affordable)."""
        x = unit if in_place else np.array(unit, dtype=np.float32)
        if any(self.mean) or any(s != 1 for s in self.std):  # MNIST's [0, 1]: nothing to do
            x -= np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
            x /= np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        return x

    def unnormalise(self, x: np.ndarray) -> np.ndarray:
        """The inverse, for showing normalised images as pictures."""
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        return np.asarray(x, dtype=np.float32) * std + mean

    def load(self, path: str | Path) -> np.ndarray:
        """One image file as the network's input: float32 1×C×H×W (a ``DataError`` if unreadable)."""
        try:
            pixels = decode(path, self.size, self.channels, self.fit)
        except DecodeError as err:
            raise DataError(f"{path}: {err}") from None
        return self.normalise(unit_float(pixels[None]), in_place=True)


def unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 [0, 1]; the one conversion training and prediction share. One
    pass (a cast, then a division in place, took two): each value is cast, then divided."""
    return np.divide(pixels, np.float32(255), dtype=np.float32)


def _pick(rows: np.ndarray, key) -> np.ndarray:
    """rows[key] for a slice, a boolean mask or integers (negative ones count from the end); an
    IndexError naming the images otherwise. numpy's own checks serve a batch's integers: the
    max/min scans and the wrap of negatives cost ~1 % of a LeNet-5 epoch."""
    if isinstance(key, slice):
        return rows[key]
    idx = np.asarray(key)
    if idx.dtype == np.bool_:
        if idx.shape != rows.shape:
            raise IndexError(f"boolean index of shape {idx.shape} for {len(rows)} images")
        return rows[idx]
    if not np.issubdtype(idx.dtype, np.integer):
        raise IndexError(f"images are indexed by integers, slices or masks, got {idx.dtype}")
    try:
        return rows[idx]
    except IndexError:
        raise IndexError(f"image index out of range for {len(rows)} images") from None


class ArrayRows:
    """uint8 N×C×H×W pixels held in memory, read by rows as ``cache.RowStore`` reads its file.
    An IDX data set keeps its pixels so, as stored: Fashion-MNIST holds 55 MB instead of 220 MB
    of float32, and a fresh process does not first write 220 MB of new memory (0.3-0.5 s of a
    4 s ``layerloom train`` epoch on these VMs, when the memory came fresh from the system)."""

    in_memory = True  # a batch is a gather of a few rows: no loader thread needed

    def __init__(self, pixels: np.ndarray, path: Path):
        if pixels.dtype != np.uint8 or pixels.ndim != 4:
            raise DataError(f"{path}: expected uint8 N×C×H×W pixels, got {pixels.dtype} "
                            f"{'×'.join(map(str, pixels.shape))}")
        self.pixels, self.path, self.shape = pixels, Path(path), pixels.shape

    def read(self, rows: np.ndarray) -> np.ndarray:
        return np.take(self.pixels, np.asarray(rows, dtype=np.int64).ravel(), axis=0)


class ImageArray:
    """A split's images as an array-like: ``x[idx]`` reads those rows of the decoded cache and
    returns float32 N×C×H×W, normalised. Nothing else is held in memory, so a split larger than
    memory trains with bounded RSS. ``unit(idx)`` gives the same images in [0, 1], before
    normalisation (what augmentation works on)."""

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(self, store, rows: np.ndarray, prep: ImagePrep):
        self.store, self.rows, self.prep = store, np.asarray(rows, dtype=np.int64), prep
        self.shape = (len(self.rows), *store.shape[1:])
        self.in_memory = getattr(store, "in_memory", False)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def unit(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.unit(np.array([key]))[0]
        return unit_float(self.store.read(_pick(self.rows, key)))

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            raise IndexError("images are indexed along the first axis only")
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        return self.prep.normalise(self.unit(key), in_place=True)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        where = "memory" if self.in_memory else "cache"
        return f"ImageArray({'×'.join(map(str, self.shape))}, {where}={self.store.path.name})"
