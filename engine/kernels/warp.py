"""Affine warps of image batches with bilinear sampling (augmentation's rotation and shift).

Each image has its own 2×3 matrix taking an output pixel (column u, row v) to the source point
(su, sv) = m · (u, v, 1); the four pixels around it are blended, and pixels outside the image
count as ``fill`` (one value per channel). The numpy twin gathers whole batches with
``take_along_axis`` (~40 ms for 64 colour 32×32 images here); the kernel does it in one pass
without the GIL (~1 ms), so the loader thread keeps up with a LeNet-size training step.
"""
from __future__ import annotations

import numpy as np
from numba import njit


def warp_bilinear_reference(x: np.ndarray, m: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """x float32 N×C×H×W, m float64 N×2×3, fill float32 C -> the warped batch."""
    n, c, h, w = x.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    su = m[:, 0, 0, None, None] * u + m[:, 0, 1, None, None] * v + m[:, 0, 2, None, None]
    sv = m[:, 1, 0, None, None] * u + m[:, 1, 1, None, None] * v + m[:, 1, 2, None, None]
    y0, x0 = np.floor(sv).astype(np.int64), np.floor(su).astype(np.int64)
    fy, fx = (sv - y0).astype(np.float32), (su - x0).astype(np.float32)
    flat = x.reshape(n, c, h * w)
    base = fill.reshape(1, c, 1)
    out = np.zeros((n, c, h * w), dtype=np.float32)
    for oy, ox, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                           (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + oy, x0 + ox
        inside = ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)).reshape(n, 1, h * w)
        index = (np.clip(yy, 0, h - 1) * w + np.clip(xx, 0, w - 1)).reshape(n, 1, h * w)
        taken = np.take_along_axis(flat, np.broadcast_to(index, (n, c, h * w)), axis=2)
        out += weight.reshape(n, 1, h * w) * np.where(inside, taken, base)
    return out.reshape(n, c, h, w)


@njit(cache=True, nogil=True)
def warp_bilinear(x, m, fill, out):
    """The twin, into ``out`` (float32 N×C×H×W); same corner order, so the same rounding."""
    n, c, h, w = x.shape
    one = np.float32(1.0)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                su = m[b, 0, 0] * j + m[b, 0, 1] * i + m[b, 0, 2]
                sv = m[b, 1, 0] * j + m[b, 1, 1] * i + m[b, 1, 2]
                x0, y0 = int(np.floor(su)), int(np.floor(sv))
                fx, fy = np.float32(su - x0), np.float32(sv - y0)
                w00, w01 = (one - fy) * (one - fx), (one - fy) * fx
                w10, w11 = fy * (one - fx), fy * fx
                in_y0, in_y1 = 0 <= y0 < h, 0 <= y0 + 1 < h
                in_x0, in_x1 = 0 <= x0 < w, 0 <= x0 + 1 < w
                for ch in range(c):
                    f = fill[ch]
                    acc = np.float32(0.0)
                    acc += w00 * (x[b, ch, y0, x0] if in_y0 and in_x0 else f)
                    acc += w01 * (x[b, ch, y0, x0 + 1] if in_y0 and in_x1 else f)
                    acc += w10 * (x[b, ch, y0 + 1, x0] if in_y1 and in_x0 else f)
                    acc += w11 * (x[b, ch, y0 + 1, x0 + 1] if in_y1 and in_x1 else f)
                    out[b, ch, i, j] = acc
