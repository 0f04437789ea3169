"""Shape rules and padding shared by the image layers (Conv2D, pooling).

Their own module, importing no layer, so that layer files never import each other: the registry
imports every layer file, and a layer importing another could then see it half-initialised.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.spec import ShapeError, fmt_shape


def image_shape(x) -> tuple:
    """(C, H, W) of an image batch, or a ShapeError offering Reshape for vectors."""
    if len(x) != 4:
        raise ShapeError(f"expects images (channels×height×width), got {fmt_shape(x)}"
                         + (" — add Reshape" if len(x) == 2 else ""),
                         fix="Reshape" if len(x) == 2 else None)
    return x[1], x[2], x[3]


def window_out(size: int, k: int, stride: int, pad: int, axis: str) -> int:
    """Output length along one axis (PyTorch's floor rule), or a ShapeError when k cannot fit."""
    padded = size + 2 * pad
    if k > padded:
        raise ShapeError(f"kernel {k} does not fit the input {axis} {size} + padding {2 * pad}: "
                         f"use a smaller kernel_size or more padding")
    return (padded - k) // stride + 1


def pad2d(x: np.ndarray, ph: int, pw: int, value: float = 0.0) -> np.ndarray:
    """A C-contiguous copy padded on both sides of H and W (kernels index it without bounds checks)."""
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(x)
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)
