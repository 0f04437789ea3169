"""``colour_shapes``: small 3-channel images of coloured shapes, drawn in memory in a blink.

Four classes (disc, square, triangle, ring), each a shape of a random colour, size and place on
a background of another random colour with a little noise, so colour alone never tells the
class: a network has to see the outline. Drawn with numpy masks from one seeded generator, so the
set is the same everywhere and needs no file: what the ResNet sample trains on
(``colour_shapes?n=2000&size=32``).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.data import DataError, Dataset, holdout

CLASSES = ("disc", "square", "triangle", "ring")
MAX_IMAGES = 200_000


def _masks(size: int, cx: np.ndarray, cy: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    """Boolean masks (n, size, size) of each class's shape at centres (cx, cy), radius r."""
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    r = r[:, None, None]
    dist = np.sqrt(dx ** 2 + dy ** 2)
    disc = dist <= r
    square = (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r)
    triangle = (dy <= 0.8 * r) & (dy >= -r + 2 * np.abs(dx))  # apex up, base at the bottom
    ring = (dist <= r) & (dist >= 0.55 * r)
    return [disc, square, triangle, ring]


def colour_shapes(n: int = 2000, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 n×3×size×size in [0, 1], labels int64 n), classes in turn."""
    if isinstance(n, bool) or not isinstance(n, int) or not 8 <= n <= MAX_IMAGES:
        raise DataError(f"colour_shapes: n must be an integer from 8 to {MAX_IMAGES:,}, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 12 <= size <= 128:
        raise DataError(f"colour_shapes: size must be an integer from 12 to 128, got {size!r}")
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % len(CLASSES)
    r = rng.uniform(0.2, 0.38, n).astype(np.float32) * size
    cx, cy = (rng.uniform(r, size - r).astype(np.float32) for _ in range(2))
    masks = _masks(size, cx, cy, r)
    shape = np.choose(y[:, None, None], masks)
    back = rng.uniform(0, 1, (n, 3, 1, 1)).astype(np.float32)
    # the shape's colour: at least 0.35 away from the background in some channel
    fore = np.mod(back + rng.uniform(0.35, 0.65, (n, 3, 1, 1)).astype(np.float32), 1.0)
    x = rng.standard_normal((n, 3, size, size), dtype=np.float32)
    x *= 0.04
    x += np.where(shape[:, None], fore, back)
    return np.clip(x, 0, 1, out=x), y


def load_colour_shapes(val_fraction: float = 0.1, seed: int = 0, *, n: int = 2000,
                       size: int = 32) -> Dataset:
    x, y = colour_shapes(n, size, seed)
    train, val, test = holdout(x, y, val_fraction, seed)
    return Dataset("colour_shapes", train, val, test, class_names=list(CLASSES),
                   description=f"synthetic coloured shapes, {n} RGB images of {size}×{size}")
