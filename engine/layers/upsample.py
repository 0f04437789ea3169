"""Upsample, as ``torch.nn.Upsample`` on images and signals: to a ``size``, or by a
``scale_factor``; nearest neighbour, bilinear (images) or linear (signals), with ``align_corners``
as PyTorch. A signal is a one-row image whose height stays 1.

Both modes are separable linear maps: each output row (column) reads one input row (nearest) or
blends two (bilinear), so the layer is ``resample`` with one matrix per axis, built with ATen's
own index arithmetic (its float32 scale for nearest, half-pixel centres unless align_corners),
and its gradient is the transposed map. Integer nearest scales take a repeat instead.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.layers.image_ops import resample
from layerloom.engine.registry import register
from layerloom.engine.spec import (AttrError, Bool, Choice, Example, Float, IntPair, Layer,
                                   ShapeError, TorchCode, fmt_shape)


def out_sizes(a, h: int, w: int, one_d: bool = False) -> tuple[int, int]:
    if tuple(a["size"]) != (0, 0):
        return (1, a["size"][1]) if one_d else tuple(a["size"])
    oh = 1 if one_d else int(np.floor(h * a["scale_factor"]))
    return oh, int(np.floor(w * a["scale_factor"]))


def _dims(a, x) -> tuple:
    """(C, H, W) of an image batch or (C, 1, L) of a signal batch, with the mode checked."""
    if len(x) not in (3, 4):
        raise ShapeError(f"expects images or signals, got {fmt_shape(x)}")
    want = "linear" if len(x) == 3 else "bilinear"
    if a["mode"] not in ("nearest", want):
        what = "signals" if len(x) == 3 else "images"
        raise ShapeError(f"{a['mode']} mode does not fit {what} ({fmt_shape(x)}): use {want}")
    return (x[1], 1, x[2]) if len(x) == 3 else tuple(x[1:])


def _scale(a, size: int, out: int) -> float:
    """ATen's ``compute_scales_value``: 1 / scale_factor when one is given, else in / out."""
    return 1.0 / a["scale_factor"] if tuple(a["size"]) == (0, 0) else size / out


def axis_matrix(a, size: int, out: int) -> np.ndarray:
    """(out, size): the rows of input each output row blends, and with what weights."""
    m = np.zeros((out, size))
    dst = np.arange(out)
    if a["mode"] == "nearest":
        scale = np.float32(_scale(a, size, out))  # ATen computes the nearest index in float32
        src = np.minimum(np.floor(dst.astype(np.float32) * scale).astype(np.int64), size - 1)
        m[dst, src] = 1.0
        return m
    if a["align_corners"]:
        src = dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        src = np.maximum(_scale(a, size, out) * (dst + 0.5) - 0.5, 0.0)
    lo = np.minimum(src.astype(np.int64), size - 1)
    hi = np.minimum(lo + 1, size - 1)
    frac = src - lo
    np.add.at(m, (dst, lo), 1.0 - frac)
    np.add.at(m, (dst, hi), frac)
    return m


def _repeats(a, h: int, w: int, oh: int, ow: int):
    """(rh, rw) when nearest upsampling is a plain repeat of every value, else None."""
    if a["mode"] != "nearest" or oh % h or ow % w:
        return None
    rh, rw = oh // h, ow // w
    if tuple(a["size"]) != (0, 0):
        return rh, rw
    sf = a["scale_factor"]
    return (rh, rw) if float(sf).is_integer() and rw == sf and rh in (1, sf) else None


def _fold_repeats(dy: np.ndarray, n: int, c: int, h: int, w: int, rh: int, rw: int) -> np.ndarray:
    """Each input's gradient, the sum of its rh × rw copies': the copies' rows added as whole
    rows, then the columns as strided slices. ``sum(axis=(3, 5))`` over the two short axes ran
    loops of length 2 (a ×2 upsample to (64, 32, 32, 32) float32: 16.5 → ~2 ms)."""
    rows = dy.reshape(n, c, h, rh, w * rw)
    t = rows[:, :, :, 0]
    for i in range(1, rh):
        t = t + rows[:, :, :, i]
    cols = t.reshape(n, c, h, w, rw)
    dx = cols[..., 0]
    for k in range(1, rw):
        dx = dx + cols[..., k]
    return np.ascontiguousarray(dx)


@register
class Upsample(Layer):
    """Enlarges images or signals by nearest-neighbour or (bi)linear interpolation (decoders)."""

    category = "Pooling"
    formula = ("y at each output position = the input value nearest to it (nearest), or a blend "
               "of the two nearest input values along each axis (bilinear, linear); now {mode}")
    backward_formula = "dL/dx: each dL/dy added back onto the inputs it read, with the same weights"
    attrs = {
        "size": IntPair(0, "output height and width (signals: 1 × length); 0 × 0 uses "
                           "scale_factor", min=0),
        "scale_factor": Float(2.0, "output size over input size (when size is 0 × 0)",
                              min=0.01, max=1000.0),
        "mode": Choice("nearest", "how output values are computed: bilinear for images, "
                                  "linear for signals", ("nearest", "bilinear", "linear")),
        "align_corners": Bool(False, "(bi)linear: corner values of input and output coincide"),
    }
    examples = (Example({}, ((2, 3, 3, 4),)),
                Example({"mode": "bilinear", "scale_factor": 1.5}, ((2, 2, 4, 5),)),
                Example({"mode": "bilinear", "scale_factor": 2.0, "align_corners": True},
                        ((2, 2, 3, 4),)),
                Example({"mode": "linear", "scale_factor": 2.5}, ((2, 3, 5),)),
                Example({"scale_factor": 3.0}, ((2, 2, 4),)),
                Example({"size": (5, 7)}, ((2, 2, 3, 4),)),
                Example({"mode": "bilinear", "size": (7, 5), "align_corners": True},
                        ((2, 2, 3, 4),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if 0 in a["size"] and tuple(a["size"]) != (0, 0):
            raise AttrError("size: give both height and width, or 0 × 0 to use scale_factor")
        if a["align_corners"] and a["mode"] == "nearest":
            raise AttrError("align_corners: only for (bi)linear mode (as PyTorch)")

    @classmethod
    def label(cls, a) -> str:
        size = tuple(a["size"])
        how = f"→{size[0]}×{size[1]}" if size != (0, 0) else f"×{a['scale_factor']:g}"
        return f"{how} {a['mode']}"

    @staticmethod
    def infer(a, x):
        c, h, w = _dims(a, x)
        oh, ow = out_sizes(a, h, w, len(x) == 3)
        if oh < 1 or ow < 1:
            raise ShapeError(f"scale_factor {a.scale_factor:g} shrinks {fmt_shape(x)} to nothing")
        return (x[0], c, ow) if len(x) == 3 else (x[0], c, oh, ow)

    @staticmethod
    def forward(a, p, ctx, x):
        x4 = x[:, :, None, :] if x.ndim == 3 else x
        n, c, h, w = x4.shape
        oh, ow = out_sizes(a, h, w, x.ndim == 3)
        reps = _repeats(a, h, w, oh, ow)
        if reps is not None:
            y = x4.repeat(reps[0], axis=2).repeat(reps[1], axis=3)
            ctx.save(x4.shape, reps, None, None)
        else:
            ah, aw = axis_matrix(a, h, oh), axis_matrix(a, w, ow)
            ctx.save(x4.shape, None, ah, aw)
            y = resample(x4, ah, aw)
        return y[:, :, 0, :] if x.ndim == 3 else y

    @staticmethod
    def backward(a, p, ctx, dy):
        (n, c, h, w), reps, ah, aw = ctx.saved
        dy4 = dy[:, :, None, :] if dy.ndim == 3 else dy
        if reps is not None:
            dx = _fold_repeats(dy4, n, c, h, w, *reps)
        else:
            dx = resample(dy4, ah.T, aw.T)
        return (dx[:, :, 0, :] if dy.ndim == 3 else dx,), {}

    @staticmethod
    def to_torch(a, in_shapes):
        one_d = len(in_shapes[0]) == 3
        size = (a.size[1],) if one_d else tuple(a.size)
        how = f"size={size}" if tuple(a.size) != (0, 0) else f"scale_factor={a.scale_factor!r}"
        corners = f", align_corners={a.align_corners}" if a.mode != "nearest" else ""
        return TorchCode(f"F.interpolate({{x}}, {how}, mode={a.mode!r}{corners})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        spatial = len(in_shapes[0]) - 2
        if a.mode == "nearest":
            modes = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                         nearest_mode="floor")
        else:
            modes = dict(mode="linear", coordinate_transformation_mode="align_corners"
                         if a.align_corners else "pytorch_half_pixel")
        if tuple(a.size) == (0, 0):
            scales = g.const([1.0, 1.0] + [a.scale_factor] * spatial, np.float32)
            return g.op("Resize", x, "", scales, **modes)
        batch_channels = g.op("Shape", x, start=0, end=2)  # the batch size is only known then
        sizes = g.op("Concat", batch_channels, g.const(list(a.size)[-spatial:], np.int64),
                     axis=0)
        return g.op("Resize", x, "", "", sizes, **modes)
