"""Upsample, as ``torch.nn.Upsample`` on images: to a ``size``, or by a ``scale_factor``; nearest
neighbour or bilinear, with ``align_corners`` as PyTorch.

Both modes are separable linear maps: each output row (column) reads one input row (nearest) or
blends two (bilinear), so the layer is ``resample`` with one matrix per axis, built with ATen's
own index arithmetic (its float32 scale for nearest, half-pixel centres unless align_corners),
and its gradient is the transposed map. Integer nearest scales take a repeat instead.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.layers.image_ops import image_shape, resample
from layerloom.engine.registry import register
from layerloom.engine.spec import (AttrError, Bool, Choice, Example, Float, IntPair, Layer,
                                   ShapeError, TorchCode, fmt_shape)


def out_sizes(a, h: int, w: int) -> tuple[int, int]:
    if tuple(a["size"]) != (0, 0):
        return tuple(a["size"])
    return int(np.floor(h * a["scale_factor"])), int(np.floor(w * a["scale_factor"]))


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
    """(rh, rw) when nearest upsampling is a plain repeat of every pixel, else None."""
    if a["mode"] != "nearest" or oh % h or ow % w:
        return None
    rh, rw = oh // h, ow // w
    exact = tuple(a["size"]) != (0, 0) or a["scale_factor"] in (rh, float(rh)) and rh == rw
    return (rh, rw) if exact else None


@register
class Upsample(Layer):
    """Enlarges each image by nearest-neighbour or bilinear interpolation (decoders, U-Nets)."""

    category = "Pooling"
    attrs = {
        "size": IntPair(0, "output height and width; 0 × 0 uses scale_factor", min=0),
        "scale_factor": Float(2.0, "output size over input size (when size is 0 × 0)",
                              min=0.01, max=1000.0),
        "mode": Choice("nearest", "how output pixels are computed", ("nearest", "bilinear")),
        "align_corners": Bool(False, "bilinear: corner pixels of input and output coincide"),
    }
    examples = (Example({}, ((2, 3, 3, 4),)),
                Example({"mode": "bilinear", "scale_factor": 1.5}, ((2, 2, 4, 5),)),
                Example({"mode": "bilinear", "scale_factor": 2.0, "align_corners": True},
                        ((2, 2, 3, 4),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if 0 in a["size"] and tuple(a["size"]) != (0, 0):
            raise AttrError("size: give both height and width, or 0 × 0 to use scale_factor")
        if a["align_corners"] and a["mode"] == "nearest":
            raise AttrError("align_corners: only for bilinear mode (as PyTorch)")

    @classmethod
    def label(cls, a) -> str:
        size = tuple(a["size"])
        how = f"→{size[0]}×{size[1]}" if size != (0, 0) else f"×{a['scale_factor']:g}"
        return f"{how} {a['mode']}"

    @staticmethod
    def infer(a, x):
        c, h, w = image_shape(x)
        oh, ow = out_sizes(a, h, w)
        if oh < 1 or ow < 1:
            raise ShapeError(f"scale_factor {a.scale_factor:g} shrinks {fmt_shape(x)} to nothing")
        return (x[0], c, oh, ow)

    @staticmethod
    def forward(a, p, ctx, x):
        n, c, h, w = x.shape
        oh, ow = out_sizes(a, h, w)
        reps = _repeats(a, h, w, oh, ow)
        if reps is not None:
            ctx.save(x.shape, reps, None, None)
            return x.repeat(reps[0], axis=2).repeat(reps[1], axis=3)
        ah, aw = axis_matrix(a, h, oh), axis_matrix(a, w, ow)
        ctx.save(x.shape, None, ah, aw)
        return resample(x, ah, aw)

    @staticmethod
    def backward(a, p, ctx, dy):
        (n, c, h, w), reps, ah, aw = ctx.saved
        if reps is not None:
            return (dy.reshape(n, c, h, reps[0], w, reps[1]).sum(axis=(3, 5)),), {}
        return (resample(dy, ah.T, aw.T),), {}

    @staticmethod
    def to_torch(a, in_shapes):
        how = f"size={tuple(a.size)}" if tuple(a.size) != (0, 0) else \
            f"scale_factor={a.scale_factor!r}"
        corners = f", align_corners={a.align_corners}" if a.mode == "bilinear" else ""
        return TorchCode(f"F.interpolate({{x}}, {how}, mode={a.mode!r}{corners})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        if a.mode == "nearest":
            modes = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                         nearest_mode="floor")
        else:
            modes = dict(mode="linear", coordinate_transformation_mode="align_corners"
                         if a.align_corners else "pytorch_half_pixel")
        if tuple(a.size) == (0, 0):
            scales = g.const([1.0, 1.0, a.scale_factor, a.scale_factor], np.float32)
            return g.op("Resize", x, "", scales, **modes)
        batch_channels = g.op("Shape", x, start=0, end=2)  # the batch size is only known then
        sizes = g.op("Concat", batch_channels, g.const(list(a.size), np.int64), axis=0)
        return g.op("Resize", x, "", "", sizes, **modes)
