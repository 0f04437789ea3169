"""Shape rules and padding shared by the image and signal layers (convolutions, pooling).

Their own module, importing no layer, so that layer files never import each other: the registry
imports every layer file, and a layer importing another could then see it half-initialised.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.spec import AttrError, ShapeError, fmt_shape, uniform_fan_in


def image_shape(x) -> tuple:
    """(C, H, W) of an image batch, or a ShapeError offering Reshape for vectors."""
    if len(x) != 4:
        raise ShapeError(f"expects images (channels×height×width), got {fmt_shape(x)}"
                         + (" — add Reshape" if len(x) == 2 else ""),
                         fix="Reshape" if len(x) == 2 else None)
    return x[1], x[2], x[3]


def signal_shape(x) -> tuple:
    """(C, L) of a batch of signals (N×C×L, as Conv1d), or a ShapeError naming the fix."""
    if len(x) != 3:
        hint = " — add Reshape to (channels, length)" if len(x) == 2 else ""
        raise ShapeError(f"expects signals (channels×length), got {fmt_shape(x)}{hint}",
                         fix="Reshape" if len(x) == 2 else None)
    return x[1], x[2]


def window_out(size: int, k: int, stride: int, pad: int, axis: str, dilation: int = 1,
               ceil: bool = False) -> int:
    """Output length along one axis by PyTorch's rule (floor, or ceil where the last window
    must still start inside the input or its left padding), or a ShapeError when k cannot fit."""
    padded, span = size + 2 * pad, dilation * (k - 1) + 1
    if span > padded:
        what = f"kernel {k}" if dilation == 1 else \
            f"kernel {k} at dilation {dilation} (spans {span})"
        raise ShapeError(f"{what} does not fit the input {axis} {size} + padding {2 * pad}: "
                         f"use a smaller kernel_size or more padding")
    if not ceil:
        return (padded - span) // stride + 1
    out = -(-(padded - span) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + pad else out


def pad2d(x: np.ndarray, ph: int, pw: int, value: float = 0.0) -> np.ndarray:
    """A C-contiguous copy padded on both sides of H and W (kernels index it without bounds checks)."""
    return pad_ends(x, ph, ph, pw, pw, value)


def pad_ends(x: np.ndarray, top: int, bottom: int, left: int, right: int,
             value: float = 0.0) -> np.ndarray:
    """``pad2d`` with a size per side (a ceil-mode pool's extra windows reach past the padding).
    A filled array and one copy: ``np.pad`` took several times as long on a training step's
    small batches."""
    if top == bottom == left == right == 0:
        return np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def resample(x: np.ndarray, ah: np.ndarray, aw: np.ndarray) -> np.ndarray:
    """ah · x · awᵀ on every plane of an (N, C, H, W) batch: a separable linear map (adaptive
    average pooling, bilinear or nearest upsampling), as two matrix products through the BLAS.
    Its gradient is ``resample(dy, ahᵀ, awᵀ)``."""
    n, c, h, w = x.shape
    ah, aw = ah.astype(x.dtype, copy=False), aw.astype(x.dtype, copy=False)
    t = (x.reshape(n * c * h, w) @ aw.T).reshape(n * c, h, len(aw))
    return np.matmul(ah, t).reshape(n, c, len(ah), len(aw))


# ------------------------------------------------------------------ pooling's shared rules
def extra_end(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """How far the last window reaches past the end padding (ceil mode only)."""
    out = window_out(size, k, s, p, "", d, ceil)
    return max(0, (out - 1) * s + d * (k - 1) + 1 - size - 2 * p)


def avg_divisor(size: int, k: int, s: int, p: int, out: int, include_pad: bool) -> np.ndarray:
    """What PyTorch divides each window's sum by along one axis: the window clipped to the
    padded input, or with ``include_pad`` off to the input itself (ATen's AvgPool kernels)."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


# ------------------------------------------------------------------ convolutions' shared rules
def check_groups(a: dict, channels_name: str = "out_channels") -> None:
    if a[channels_name] % a["groups"]:
        raise AttrError(f"{channels_name} {a[channels_name]} must be divisible by groups "
                        f"{a['groups']}")


def channels_in_groups(c: int, groups: int) -> int:
    """Input channels per group, or a ShapeError when the groups do not divide them."""
    if c % groups:
        raise ShapeError(f"{c} input channels cannot be split into {groups} groups: make "
                         f"groups divide the channels")
    return c // groups


def conv_param_shapes(shape: tuple, bias: bool, out_channels: int | None = None) -> dict:
    """The shapes ``conv_params`` makes, without making them (shape inference sizes from these)."""
    return {"weight": tuple(shape), **({"bias": (out_channels or shape[0],)} if bias else {})}


def conv_params(rng, shape: tuple, fan_in: int, bias: bool,
                out_channels: int | None = None) -> dict:
    """PyTorch's default init: U(±1/√fan_in) for the weight and the bias alike (one bias per
    output channel: the weight's first axis, unless it is transposed)."""
    p = {"weight": uniform_fan_in(rng, shape, fan_in)}
    if bias:
        p["bias"] = uniform_fan_in(rng, (out_channels or shape[0],), fan_in)
    return p
