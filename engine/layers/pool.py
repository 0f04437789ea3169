"""Max and average 2-D pooling, as ``torch.nn.MaxPool2d`` / ``AvgPool2d`` (stride defaults to the
kernel size; average pooling counts the zero padding, PyTorch's default)."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from layerloom.engine.kernels.pool import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                 max_pool2d_forward)
from layerloom.engine.layers.image_ops import image_shape, pad2d, window_out
from layerloom.engine.registry import register
from layerloom.engine.spec import AttrError, Example, IntPair, Layer, TorchCode

POOL_ATTRS = {
    "kernel_size": IntPair(2, "window height and width", min=1),
    "stride": IntPair(0, "step between windows; 0 means the kernel size", min=0),
    "padding": IntPair(0, "padding on each side (at most half the kernel)", min=0),
}


def geometry(a) -> tuple:
    (kh, kw), (sh, sw), (ph, pw) = a.kernel_size, a.stride, a.padding
    return kh, kw, sh or kh, sw or kw, ph, pw


class _Pool2D(Layer):
    """Shared attributes, checks, shape rule and exports of the two pooling layers."""

    parallel_kernels = True  # both poolings run numba-parallel kernels (kernels/pool.py)
    category = "Pooling"
    attrs = POOL_ATTRS
    torch_fn: ClassVar[str] = ""  # F.<torch_fn> in exported PyTorch code
    onnx_op: ClassVar[str] = ""
    onnx_attrs: ClassVar[dict] = {}

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        for k, p in zip(a["kernel_size"], a["padding"]):
            if 2 * p > k:
                raise AttrError(f"padding {p} must be at most half the kernel size {k}")

    @classmethod
    def label(cls, a) -> str:
        kh, kw = a["kernel_size"]
        stride = tuple(s or k for s, k in zip(a["stride"], a["kernel_size"]))
        return f"{kh}×{kw}" + ("" if stride == (kh, kw) else f" /{stride[0]}")

    @staticmethod
    def infer(a, x):
        c, h, w = image_shape(x)
        kh, kw, sh, sw, ph, pw = geometry(a)
        return (x[0], c, window_out(h, kh, sh, ph, "height"), window_out(w, kw, sw, pw, "width"))

    @classmethod
    def to_torch(cls, a, in_shapes):
        kh, kw, sh, sw, ph, pw = geometry(a)
        return TorchCode(f"F.{cls.torch_fn}({{x}}, {(kh, kw)}, {(sh, sw)}, {(ph, pw)})")

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        kh, kw, sh, sw, ph, pw = geometry(a)
        return g.op(cls.onnx_op, x, kernel_shape=[kh, kw], strides=[sh, sw],
                    pads=[ph, pw, ph, pw], **cls.onnx_attrs)


@register
class MaxPool2D(_Pool2D):
    """Keeps the largest value of each window: downsamples feature maps."""

    torch_fn, onnx_op = "max_pool2d", "MaxPool"

    examples = (Example({}, ((2, 3, 6, 5),)),
                Example({"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)}, ((2, 2, 7, 6),)))

    @staticmethod
    def forward(a, p, ctx, x):
        kh, kw, sh, sw, ph, pw = geometry(a)
        xp = pad2d(x, ph, pw, value=-np.inf)
        y, arg = max_pool2d_forward(xp, kh, kw, sh, sw)
        ctx.save(arg, xp.shape, x.shape)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        arg, pshape, shape = ctx.saved
        _, _, _, _, ph, pw = geometry(a)
        dxp = max_pool2d_backward(np.ascontiguousarray(dy), arg, pshape[2], pshape[3])
        return (dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]],), {}


@register
class AvgPool2D(_Pool2D):
    """Averages each window: a smooth downsampling of feature maps."""

    torch_fn, onnx_op = "avg_pool2d", "AveragePool"
    onnx_attrs = {"count_include_pad": 1}  # padding counts in the mean, as torch's default

    examples = (Example({}, ((2, 3, 6, 5),)),
                Example({"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 1)}, ((2, 2, 5, 6),)))

    @staticmethod
    def forward(a, p, ctx, x):
        kh, kw, sh, sw, ph, pw = geometry(a)
        xp = pad2d(x, ph, pw)
        ctx.save(xp.shape, x.shape)
        return avg_pool2d_forward(xp, kh, kw, sh, sw)

    @staticmethod
    def backward(a, p, ctx, dy):
        pshape, shape = ctx.saved
        kh, kw, sh, sw, ph, pw = geometry(a)
        dxp = avg_pool2d_backward(np.ascontiguousarray(dy), kh, kw, sh, sw, pshape[2], pshape[3])
        return (dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]],), {}
