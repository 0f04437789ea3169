"""Pictures of large tensors for the Explain tab: a heat map, a histogram and the five numbers
(min, max, mean, std, norm), as RGBA pixel arrays the window only has to wrap.

A 64×64 weight or a batch of 6×24×24 feature maps is not read as a table; a heat map shows its
structure (a filter's edge, a dead channel), a histogram its spread. Both are plain numpy so the
window computes them on a worker thread, off the UI thread, and never draws them itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerloom.engine.explain import SMALL, Stats, stats

MAX_SIDE = 256  # a heat map's longest side in cells; a longer tensor is averaged in blocks
MAX_TILES = 64  # feature maps (or filter slices) drawn side by side at most
DISPLAY = 256  # pixels the longest side is scaled towards (whole multiples only)
BINS = 40
GAP = np.nan  # between tiles: drawn as the background
NEGATIVE, POSITIVE, ZERO = (np.array(c, np.float64) for c in
                            ((33, 102, 172), (178, 24, 43), (247, 247, 247)))
BACKGROUND = (128, 128, 128, 0)
BAR = (76, 114, 176, 255)


@dataclass(frozen=True)
class TensorPicture:
    """What the Explain tab shows of one tensor beyond the five numbers."""

    name: str
    stats: Stats
    heat: np.ndarray | None  # H×W×4 uint8, or None for a small tensor (shown as a table)
    histogram: np.ndarray | None  # h×w×4 uint8 bars
    counts: np.ndarray | None  # the histogram's counts and bin edges
    edges: np.ndarray | None
    note: str = ""  # what the heat map shows ("first sample; 6 maps of 24×24")


def tiles(array: np.ndarray) -> tuple[np.ndarray, str]:
    """A 2-D layout of any tensor and a note saying what it shows: a matrix as it is, a vector
    wrapped into rows, more dimensions as a grid of their last two (feature maps, filters)."""
    a = np.asarray(array, np.float64)
    if a.ndim <= 1:
        n = max(a.size, 1)
        width = int(np.ceil(np.sqrt(n))) if n > MAX_SIDE else n
        flat = np.full(width * -(-n // width), GAP)
        flat[:a.size] = a.ravel()
        return flat.reshape(-1, width), f"{a.size} values in rows of {width}"
    if a.ndim == 2:
        return a, f"{a.shape[0]} rows × {a.shape[1]} columns"
    h, w = a.shape[-2:]
    maps = a.reshape(-1, h, w)
    total = len(maps)
    maps = maps[:MAX_TILES]
    cols = int(np.ceil(np.sqrt(len(maps))))
    rows = -(-len(maps) // cols)
    grid = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), GAP)
    for k, m in enumerate(maps):
        r, c = divmod(k, cols)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = m
    shown = f"the first {len(maps)} of {total}" if total > len(maps) else f"{total}"
    return grid, f"{shown} map{'s' if total != 1 else ''} of {h}×{w}"


def shrink(grid: np.ndarray) -> tuple[np.ndarray, int]:
    """Block means down to at most MAX_SIDE cells a side (gaps ignored); the block size."""
    k = int(np.ceil(max(grid.shape) / MAX_SIDE))
    if k <= 1:
        return grid, 1
    h, w = -(-grid.shape[0] // k) * k, -(-grid.shape[1] // k) * k
    padded = np.full((h, w), np.nan)
    padded[:grid.shape[0], :grid.shape[1]] = grid
    blocks = padded.reshape(h // k, k, w // k, k)
    with np.errstate(all="ignore"):
        count = np.isfinite(blocks).sum(axis=(1, 3))
        total = np.nansum(blocks, axis=(1, 3))
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), k


def colour(grid: np.ndarray) -> np.ndarray:
    """Blue below zero, white at zero, red above, scaled by the largest magnitude; gaps and
    non-finite cells transparent grey."""
    ok = np.isfinite(grid)
    top = float(np.abs(grid[ok]).max()) if ok.any() else 0.0
    t = np.clip(np.where(ok, grid, 0.0) / (top or 1.0), -1.0, 1.0)[..., None]
    rgb = np.where(t < 0, ZERO + (NEGATIVE - ZERO) * -t, ZERO + (POSITIVE - ZERO) * t)
    out = np.empty((*grid.shape, 4), np.uint8)
    out[..., :3] = np.rint(rgb).astype(np.uint8)
    out[..., 3] = 255
    out[~ok] = BACKGROUND
    return out


def enlarge(pixels: np.ndarray) -> np.ndarray:
    """Whole-number nearest-neighbour scaling towards DISPLAY pixels: cells stay sharp."""
    k = max(1, min(16, DISPLAY // max(pixels.shape[:2])))
    return np.ascontiguousarray(pixels.repeat(k, axis=0).repeat(k, axis=1))


def heat_map(array: np.ndarray) -> tuple[np.ndarray, str]:
    """RGBA pixels of ``array`` laid out by ``tiles`` and a note of what they show."""
    grid, note = tiles(array)
    grid, k = shrink(grid)
    if k > 1:
        note += f", each cell the mean of a {k}×{k} block"
    return enlarge(colour(grid)), note


def histogram_pixels(counts: np.ndarray, width: int = DISPLAY, height: int = 70) -> np.ndarray:
    """Bars of ``counts`` (tallest = full height), RGBA, transparent background."""
    out = np.zeros((height, width, 4), np.uint8)
    top = max(int(counts.max()), 1) if counts.size else 1
    bar = width // max(len(counts), 1)
    for i, c in enumerate(counts):
        h = int(round((height - 1) * c / top)) + (1 if c else 0)
        out[height - h:, i * bar:(i + 1) * bar - (1 if bar > 2 else 0)] = BAR
    return out


def is_small(array: np.ndarray, batched: bool = False) -> bool:
    """Shown as a table: at most SMALL numbers (per sample, for a tensor with a batch axis)."""
    a = np.asarray(array)
    return a.size <= SMALL or (batched and a.ndim > 1 and a[0].size <= SMALL)


def picture(name: str, array: np.ndarray, batched: bool = False) -> TensorPicture:
    """The five numbers of the whole tensor; for a large one, the heat map (of the first
    sample when ``batched``) and the histogram of all its values."""
    s = stats(array)
    a = np.asarray(array)
    if is_small(a, batched):
        return TensorPicture(name, s, None, None, None, None)
    heat, note = heat_map(a[0] if batched and a.ndim > 1 else a)
    if batched and a.ndim > 1:
        note = f"first sample: {note}"
    finite = np.asarray(a, np.float64)
    finite = finite[np.isfinite(finite)]
    counts, edges = np.histogram(finite, bins=BINS) if finite.size else (np.zeros(BINS, int),
                                                                        np.zeros(BINS + 1))
    return TensorPicture(name, s, heat, histogram_pixels(counts), counts, edges, note)


def pictures(tensors: dict, batched: frozenset = frozenset()) -> dict:
    """``picture`` of every tensor, by name (what the Explain tab's worker computes)."""
    return {name: picture(name, a, name in batched) for name, a in tensors.items()}
