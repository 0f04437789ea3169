"""Padding layers as ``torch.nn.ZeroPad2d`` / ``ConstantPad2d`` / ``ReflectionPad2d`` /
``ReplicationPad2d`` and their 1-D and 3-D forms, with ``padding`` in PyTorch's order: (left,
right) for signals, (left, right, top, bottom) for images, then (front, back) for volumes.

Reflection mirrors around the edge without repeating it (as PyTorch and numpy's "reflect"),
replication repeats the edge. Their backward folds each padded position's gradient back onto the
input position it copied, one axis at a time.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import (Example, Float, IntTuple, Layer, ShapeError, TorchCode,
                                   fmt_shape)

NUMPY_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}
ONNX_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


def source_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each padded position along one axis, the input position it copies."""
    i = np.arange(-before, size + after)
    if mode == "reflect":
        return np.where(i < 0, -i, np.where(i >= size, 2 * (size - 1) - i, i))
    return np.clip(i, 0, size - 1)


def fold(dy: np.ndarray, axis: int, size: int, before: int, after: int, mode: str) -> np.ndarray:
    """The gradient of one axis's padding: the middle, plus every border position added onto
    the position it copied (a handful of slices: pads are small)."""
    idx = source_index(size, before, after, mode)
    moved = np.moveaxis(dy, axis, 0)
    out = moved[before:before + size].copy()
    for j in (*range(before), *range(before + size, before + size + after)):
        out[idx[j]] += moved[j]
    return np.moveaxis(out, 0, axis)


AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


class _Pad(Layer):
    """Shared shape rule, forward, backward and exports; subclasses set the mode and the number
    of padded axes (1: signals, 2: images, 3: volumes)."""

    category = "Padding"
    formula = "y = x with {padding} (left, right[, top, bottom[, front, back]]) added around it"
    backward_formula = ("dL/dx = the middle of dL/dy, plus (reflection, replication) each padded "
                        "position's gradient added onto the position it copied")
    mode: ClassVar[str] = "constant"
    dims: ClassVar[int] = 2

    @classmethod
    def sides(cls, a) -> list:
        """(before, after) per padded axis in array order, from PyTorch's order (the last axis
        first: left, right, then top, bottom, then front, back)."""
        p = tuple(a["padding"])
        return [(p[2 * i], p[2 * i + 1]) for i in reversed(range(cls.dims))]

    @classmethod
    def label(cls, a) -> str:
        return ",".join(str(v) for v in a["padding"])

    @classmethod
    def infer(cls, a, x):
        if len(x) != cls.dims + 2:
            what = ("signals (channels×length)", "images (channels×height×width)",
                    "volumes (channels×depth×height×width)")[cls.dims - 1]
            raise ShapeError(f"expects {what}, got {fmt_shape(x)}")
        if cls.mode == "reflect":
            for axis, size, pads in zip(AXES[cls.dims], x[2:], cls.sides(a)):
                if max(pads) >= size:
                    raise ShapeError(f"reflection padding {max(pads)} must be smaller than the "
                                     f"input {axis} {size}")
        return (*x[:2], *[size + sum(pads) for size, pads in zip(x[2:], cls.sides(a))])

    @classmethod
    def forward(cls, a, p, ctx, x):
        ctx.save(x.shape)
        kw = {"constant_values": a.value} if cls.mode == "constant" and "value" in a else {}
        return np.pad(x, ((0, 0), (0, 0), *cls.sides(a)), mode=NUMPY_MODES[cls.mode], **kw)

    @classmethod
    def backward(cls, a, p, ctx, dy):
        (shape,) = ctx.saved
        dx = dy
        for axis, (before, after) in enumerate(cls.sides(a), start=2):
            if cls.mode == "constant":
                dx = np.moveaxis(np.moveaxis(dx, axis, 0)[before:before + shape[axis]], 0, axis)
            else:
                dx = fold(dx, axis, shape[axis], before, after, cls.mode)
        return (np.ascontiguousarray(dx),), {}

    @classmethod
    def to_torch(cls, a, in_shapes):
        value = f", value={a.value!r}" if cls.mode == "constant" and "value" in a else ""
        return TorchCode(f"F.pad({{x}}, {tuple(a.padding)}, mode={cls.mode!r}{value})")

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        sides = cls.sides(a)
        pads = g.const([0, 0, *[b for b, _ in sides], 0, 0, *[e for _, e in sides]], np.int64)
        value = g.const(np.asarray(a.value)) if cls.mode == "constant" and "value" in a else ""
        return g.op("Pad", x, pads, value, mode=ONNX_MODES[cls.mode])


PAD_2D = IntTuple((1, 1, 1, 1), "added (left, right, top, bottom)", length=4, min=0)
PAD_1D = IntTuple((1, 1), "added (left, right)", length=2, min=0)
PAD_3D = IntTuple((1,) * 6, "added (left, right, top, bottom, front, back)", length=6, min=0)
VALUE = Float(0.0, "the value padded in")
EXAMPLES_2D = (Example({"padding": (1, 2, 0, 3)}, ((2, 3, 4, 5),)),)
EXAMPLES_1D = (Example({"padding": (2, 1)}, ((2, 3, 5),)),)


@register
class ZeroPad2d(_Pad):
    """Adds rows and columns of zeros around each image."""

    attrs = {"padding": PAD_2D}
    examples = EXAMPLES_2D


@register
class ConstantPad2d(_Pad):
    """Adds rows and columns of a constant around each image."""

    attrs = {"padding": PAD_2D, "value": VALUE}
    examples = (Example({"padding": (2, 0, 1, 1), "value": -0.5}, ((2, 3, 4, 5),)),)


@register
class ReflectionPad2d(_Pad):
    """Pads each image with its own mirror image at the edges (no seam of zeros)."""

    mode = "reflect"
    attrs = {"padding": PAD_2D}
    examples = (Example({"padding": (1, 3, 2, 0)}, ((2, 3, 4, 5),)),)


@register
class ReplicationPad2d(_Pad):
    """Pads each image by repeating its edge rows and columns."""

    mode = "replicate"
    attrs = {"padding": PAD_2D}
    examples = (Example({"padding": (3, 1, 0, 2)}, ((2, 3, 4, 2),)),)


@register
class ZeroPad1d(_Pad):
    """Adds zeros at both ends of each signal."""

    dims = 1
    attrs = {"padding": PAD_1D}
    examples = EXAMPLES_1D


@register
class ConstantPad1d(_Pad):
    """Adds a constant at both ends of each signal."""

    dims = 1
    attrs = {"padding": PAD_1D, "value": VALUE}
    examples = (Example({"padding": (1, 3), "value": 2.0}, ((2, 3, 5),)),)


@register
class ReflectionPad1d(_Pad):
    """Pads each signal with its own mirror image at the ends."""

    dims = 1
    mode = "reflect"
    attrs = {"padding": PAD_1D}
    examples = (Example({"padding": (3, 2)}, ((2, 3, 5),)),)


@register
class ReplicationPad1d(_Pad):
    """Pads each signal by repeating its end values."""

    dims = 1
    mode = "replicate"
    attrs = {"padding": PAD_1D}
    examples = (Example({"padding": (4, 1)}, ((2, 3, 3),)),)


@register
class ZeroPad3d(_Pad):
    """Adds zeros around each volume."""

    dims = 3
    attrs = {"padding": PAD_3D}
    examples = (Example({"padding": (1, 0, 2, 1, 0, 2)}, ((2, 2, 3, 4, 3),)),)


@register
class ConstantPad3d(_Pad):
    """Adds a constant around each volume."""

    dims = 3
    attrs = {"padding": PAD_3D, "value": VALUE}
    examples = (Example({"padding": (0, 2, 1, 0, 1, 1), "value": 1.5}, ((2, 2, 3, 3, 4),)),)


@register
class ReflectionPad3d(_Pad):
    """Pads each volume with its own mirror image at the faces."""

    dims = 3
    mode = "reflect"
    attrs = {"padding": PAD_3D}
    examples = (Example({"padding": (2, 1, 0, 2, 1, 2)}, ((2, 2, 3, 4, 3),)),)


@register
class ReplicationPad3d(_Pad):
    """Pads each volume by repeating its faces."""

    dims = 3
    mode = "replicate"
    attrs = {"padding": PAD_3D}
    examples = (Example({"padding": (3, 0, 1, 2, 2, 1)}, ((2, 2, 2, 3, 2),)),)
