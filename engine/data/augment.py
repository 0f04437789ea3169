"""Augmentation: random changes to training images, made afresh for every batch of every epoch.

Training-only data settings, stored in the graph file's data section under ``"augment"``; the
validation and test splits are never augmented. Each batch gets its own generator seeded from
(training seed, epoch, batch number), so a run is reproducible whichever thread prepares it.
Works on float images N×C×H×W in [0, 1] (before normalisation), in this order: random crop
with padding, horizontal flip, rotation and shift (one bilinear warp), brightness and contrast
jitter, Cutout. Gaps a crop, warp or Cutout opens are filled with ``fill`` (the training mean per
channel for normalised data, so they read as zero after normalisation, as Cutout's paper does).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from layerloom.engine.data import DataError

# name -> (type, low, high, what it does) — the Data panel builds its form from this table
SETTINGS = {
    "crop_padding": (int, 0, 16, "pad by this many pixels, then crop a random window of the size"),
    "flip": (bool, 0, 1, "mirror left-right with probability ½"),
    "rotation": (float, 0.0, 45.0, "rotate by up to ± this many degrees"),
    "shift": (float, 0.0, 0.3, "move by up to ± this share of the width and height"),
    "brightness": (float, 0.0, 0.9, "multiply by a factor in 1 ± this"),
    "contrast": (float, 0.0, 0.9, "stretch around each image's mean by a factor in 1 ± this"),
    "cutout": (int, 0, 64, "blank a random square with this side (pixels)"),
}


@dataclass(frozen=True)
class Augmentation:
    crop_padding: int = 0
    flip: bool = False
    rotation: float = 0.0
    shift: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    cutout: int = 0

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def to_dict(self) -> dict:
        """Only the settings that are on (an empty dict means no augmentation)."""
        return {k: v for k, v in asdict(self).items() if v}

    def describe(self) -> str:
        """``"crop ±4 px, flip, rotation ±10°"``: what is on, in words."""
        words = {"crop_padding": "crop ±{} px", "flip": "flip", "rotation": "rotation ±{:g}°",
                 "shift": "shift ±{:.0%}", "brightness": "brightness ±{:.0%}",
                 "contrast": "contrast ±{:.0%}", "cutout": "cutout {} px"}
        return ", ".join(words[k].format(v) for k, v in self.to_dict().items()) or "none"

    @classmethod
    def from_dict(cls, d, where: str = "data.augment") -> "Augmentation":
        """Checked against ``SETTINGS``: a hand-edited file gets a one-line error naming the key."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise DataError(f"{where}: must be an object of settings, got {d!r}")
        values = {}
        for key, value in d.items():
            if key not in SETTINGS:
                raise DataError(f"{where}: unknown setting {key!r} (settings: {', '.join(SETTINGS)})")
            kind, low, high, _ = SETTINGS[key]
            if kind is bool:
                ok = isinstance(value, bool)
            else:
                ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                      and (kind is float or float(value).is_integer()) and low <= value <= high)
            if not ok:
                want = "true or false" if kind is bool else f"a {kind.__name__} from {low} to {high}"
                raise DataError(f"{where}.{key}: must be {want}, got {value!r}")
            values[key] = kind(value)
        return cls(**values)

    def apply(self, x: np.ndarray, rng: np.random.Generator, fill=0.0) -> np.ndarray:
        """A new augmented batch (``x`` is left alone); ``fill`` is a number or one per channel."""
        x = np.array(x, dtype=np.float32)
        if x.ndim != 4 or not len(x):
            return x
        fill = np.broadcast_to(np.asarray(fill, dtype=np.float32).reshape(-1), (x.shape[1],))
        unit = bool(x.min() >= 0 and x.max() <= 1)
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, rng, fill)
        if self.flip:
            flipped = rng.random(len(x)) < 0.5
            x[flipped] = x[flipped, :, :, ::-1]
        if self.rotation or self.shift:
            x = rotate_shift(x, self.rotation, self.shift, rng, fill)
        if self.brightness:
            x *= rng.uniform(1 - self.brightness, 1 + self.brightness, (len(x), 1, 1, 1)).astype(np.float32)
        if self.contrast:
            mean = x.mean(axis=(1, 2, 3), keepdims=True)
            f = rng.uniform(1 - self.contrast, 1 + self.contrast, (len(x), 1, 1, 1)).astype(np.float32)
            x = (x - mean) * f + mean
        if (self.brightness or self.contrast) and unit:
            np.clip(x, 0.0, 1.0, out=x)  # images stay images (as torchvision's ColorJitter)
        if self.cutout:
            cutout(x, self.cutout, rng, fill)
        return x


def random_crop(x: np.ndarray, pad: int, rng: np.random.Generator, fill: np.ndarray) -> np.ndarray:
    """Pad every side by ``pad`` and cut a random H×W window per image (CIFAR's classic)."""
    n, c, h, w = x.shape
    padded = np.empty((n, c, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    padded[...] = fill.reshape(1, c, 1, 1)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
    out = np.empty_like(x)
    for i in range(n):  # one slice copy per image: faster than a 4-D fancy index
        out[i] = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


def rotate_shift(x: np.ndarray, degrees: float, shift: float, rng: np.random.Generator,
                 fill: np.ndarray) -> np.ndarray:
    """Rotate each image about its centre by U(±degrees) and move it by U(±shift)·size, sampling
    bilinearly (engine.kernels.warp); what comes from outside the image is ``fill``."""
    from layerloom.engine.kernels.warp import warp_bilinear

    n, c, h, w = x.shape
    angle = np.deg2rad(rng.uniform(-degrees, degrees, n))
    ty, tx = rng.uniform(-shift, shift, n) * h, rng.uniform(-shift, shift, n) * w
    cy, cx = (h - 1) / 2, (w - 1) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    # output pixel -> source point: undo the shift, then rotate back by -angle about the centre
    m = np.empty((n, 2, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = cos, sin, cx - cos * (cx + tx) - sin * (cy + ty)
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = -sin, cos, cy + sin * (cx + tx) - cos * (cy + ty)
    out = np.empty_like(x)
    warp_bilinear(np.ascontiguousarray(x), m, np.ascontiguousarray(fill, dtype=np.float32), out)
    return out


def cutout(x: np.ndarray, side: int, rng: np.random.Generator, fill: np.ndarray) -> None:
    """Blank one random side×side square per image, in place; the square may hang over an edge
    (DeVries & Taylor 2017: centres anywhere in the image)."""
    n, c, h, w = x.shape
    cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
    for i in range(n):
        top, left = max(0, cy[i] - side // 2), max(0, cx[i] - side // 2)
        bottom, right = min(h, cy[i] - side // 2 + side), min(w, cx[i] - side // 2 + side)
        x[i, :, top:bottom, left:right] = fill.reshape(c, 1, 1)


def preview(split, augmentation: Augmentation, count: int = 4, variants: int = 5,
            seed: int = 0) -> np.ndarray:
    """``count`` training images, each as it is and in ``variants`` augmented versions, for the
    Data panel: (count, 1 + variants, C, H, W), in [0, 1] for images read from a folder."""
    from layerloom.engine.data.images import ImageArray

    n = len(split)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(count, n), replace=False))
    if isinstance(split.x, ImageArray):
        x, fill = split.x.unit(rows), np.asarray(split.x.prep.mean, np.float32)
    else:
        x, fill = np.asarray(split.x[rows], dtype=np.float32), np.float32(0)
    out = [x] + [augmentation.apply(x, np.random.default_rng([seed, v]), fill)
                 for v in range(variants)]
    return np.stack(out, axis=1)
