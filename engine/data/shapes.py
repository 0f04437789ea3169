"""``shapes``: a small colour image-folder data set, drawn with Pillow on first use.

Five classes — circle, square, triangle, star, cross — each picture a shape of a random colour
(always clearly lighter or darker than its background), size and place, turned by at most ±17°,
on a random background (flat, a gradient, stripes or speckles), saved half
as PNG and half as JPEG into ``<cache>/samples/shapes-…/<class>/``. It is then read like any
folder a person points Layerloom at (``folder:DIR``: decode, cache, augment), so the colour
sample trains through the real path, not from arrays in memory. Every picture comes from its own
seeded generator, so the set is the same on every machine; a marker file written last means a
half-written set (an interrupted first use) is drawn again.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset
from layerloom.engine.data.cache import cache_dir

CLASSES = ("circle", "cross", "square", "star", "triangle")
SIDE = 40  # pixels of the drawn pictures; load_shapes fits them to ``size``
VERSION = 1  # bump when the drawing changes
MAX_PER_CLASS = 5000


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _background(rng: np.random.Generator):
    from PIL import Image

    kind = int(rng.integers(4))
    a = np.array(_colour(rng), np.float32)
    b = np.clip(a + rng.normal(0, 60, 3), 0, 255)  # a second tone near the first
    if kind == 0:  # flat
        pixels = np.broadcast_to(a, (SIDE, SIDE, 3))
    elif kind == 1:  # a linear gradient at a random angle
        t = np.linspace(0, 1, SIDE)
        angle = rng.uniform(0, math.pi)
        ramp = (np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None])
        ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
        pixels = a + ramp[..., None] * (b - a)
    elif kind == 2:  # stripes
        period = int(rng.integers(3, 9))
        mask = ((np.arange(SIDE)[:, None] + np.arange(SIDE)[None, :] * int(rng.integers(0, 2)))
                // period) % 2
        pixels = np.where(mask[..., None] > 0, a, b)
    else:  # speckles
        pixels = a + rng.normal(0, 25, (SIDE, SIDE, 3))
    pixels = np.clip(pixels, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB"), float(_luma(pixels.mean(axis=(0, 1))))


def _luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _contrasting(rng: np.random.Generator, background: float) -> tuple[int, int, int]:
    """A colour whose brightness differs from the background's by at least a third of the range:
    the shape must be visible, or the label is noise."""
    while True:
        colour = _colour(rng)
        if abs(_luma(colour) - background) > 85:
            return colour


def _outline(kind: str, cx: float, cy: float, r: float, turn: float) -> list[tuple[float, float]]:
    if kind == "square":
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        pts = [(x * r * 0.8, y * r * 0.8) for x, y in corners]
    elif kind == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif kind == "star":
        pts = [((r if i % 2 == 0 else r * 0.45) * math.cos(-math.pi / 2 + i * math.pi / 5),
                (r if i % 2 == 0 else r * 0.45) * math.sin(-math.pi / 2 + i * math.pi / 5))
               for i in range(10)]
    else:  # cross
        a, b = r, r * 0.33
        pts = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b),
               (-a, b), (-a, -b), (-b, -b)]
    c, s = math.cos(turn), math.sin(turn)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def draw(kind: str, seed: int):
    """One picture of ``kind`` (a Pillow RGB image, SIDE×SIDE) from its own seeded generator."""
    from PIL import ImageDraw

    rng = np.random.default_rng([VERSION, CLASSES.index(kind), seed])
    img, background = _background(rng)
    pen = ImageDraw.Draw(img)
    r = rng.uniform(0.25, 0.42) * SIDE
    cx, cy = rng.uniform(r, SIDE - r, 2)
    fill = _contrasting(rng, background)
    if kind == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        pen.polygon(_outline(kind, cx, cy, r, rng.uniform(-0.3, 0.3)), fill=fill)
    return img


def ensure_shapes(per_class: int) -> Path:
    """The folder of the set with ``per_class`` pictures per class, drawn if not there yet."""
    root = cache_dir() / "samples" / f"shapes-v{VERSION}-{per_class}"
    done = root / ".complete"
    if done.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    try:
        for kind in CLASSES:
            (root / kind).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = draw(kind, i)
                if i % 2:
                    img.save(root / kind / f"{kind}_{i:04d}.jpg", quality=90)
                else:
                    img.save(root / kind / f"{kind}_{i:04d}.png", optimize=False)
        done.write_text("drawn by layerloom.engine.data.shapes\n", encoding="utf-8")
    except OSError as err:
        raise DataError(f"{root}: cannot write the shapes sample ({err.strerror or err})") from None
    return root


def load_shapes(val_fraction: float = 0.1, seed: int = 0, *, per_class: int = 400,
                size="32x32", channels: int = 3, fit: str = "crop") -> Dataset:
    """The shapes set as an image folder (drawn into the cache folder on first use)."""
    from layerloom.engine.data.folder import load_folder

    if isinstance(per_class, bool) or not isinstance(per_class, int) \
            or not 10 <= per_class <= MAX_PER_CLASS:
        raise DataError(f"shapes: per_class must be an integer from 10 to {MAX_PER_CLASS}, "
                        f"got {per_class!r}")
    data = load_folder(ensure_shapes(per_class), val_fraction, seed, size=size,
                       channels=channels, fit=fit)
    data.name = "shapes"
    data.description = f"coloured shapes drawn by Layerloom: {data.description}"
    return data
