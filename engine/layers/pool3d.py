"""MaxPool3d and AvgPool3d, as ``torch.nn``'s: volumes pooled by windows of depth×height×width,
stride defaulting to the kernel, padding, dilation (max), ceil_mode and count_include_pad (average)
as PyTorch.

A 3-D window's maximum (or sum) is the maximum (sum) over its depth taps of each depth slice's
2-D window maximum (sum): every depth slice is pooled by the 2-D kernels (the slices are planes of
one batch), then the taps combine along the depth. The first maximum is found depth first, then in
the slice's row-major order: PyTorch's order. Ceil mode pads the end further, as in ``pool``.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from layerloom.engine.kernels.pool import (avg_pool2d_backward, avg_pool2d_forward,
                                           max_pool2d_backward, max_pool2d_forward)
from layerloom.engine.layers.image_ops import avg_divisor, extra_end, window_out
from layerloom.engine.registry import register
from layerloom.engine.spec import (AttrError, Bool, Example, IntTuple, Layer, ShapeError,
                                   TorchCode, fmt_shape)

AXES = ("depth", "height", "width")


def _triple(default: int, doc: str, low: int) -> IntTuple:
    return IntTuple((default,) * 3, doc, length=3, min=low)


def windows3(a) -> tuple:
    """(kernel, stride, padding, dilation), each (depth, height, width); stride 0 = kernel."""
    k = tuple(a["kernel_size"])
    return (k, tuple(s or ki for s, ki in zip(a["stride"], k)), tuple(a["padding"]),
            tuple(a.get("dilation", (1, 1, 1))))


def _padded(a, x: np.ndarray, value: float) -> tuple[np.ndarray, list]:
    """x padded on every face (and further at the ends in ceil mode); the padding before."""
    k, s, p, d = windows3(a)
    ends = [pi + extra_end(n, ki, si, pi, di, a.ceil_mode)
            for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, d)]
    return np.pad(x, ((0, 0), (0, 0), *zip(p, ends)), constant_values=value), list(p)


def _depth_taps(z: np.ndarray, kd: int, sd: int, dd: int, od: int) -> list:
    return [z[:, :, i * dd:i * dd + sd * (od - 1) + 1:sd] for i in range(kd)]


class _Pool3d(Layer):
    category = "Pooling"
    parallel_kernels = True  # engine.threads: numba's threads run it, not the BLAS's
    average: ClassVar[bool] = False

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        for ki, pi in zip(a["kernel_size"], a["padding"]):
            if 2 * pi > ki:
                raise AttrError(f"padding {pi} must be at most half the kernel size {ki}")

    @classmethod
    def label(cls, a) -> str:
        return "×".join(map(str, a["kernel_size"]))

    @staticmethod
    def infer(a, x):
        if len(x) != 5:
            raise ShapeError(f"expects volumes (channels×depth×height×width), got {fmt_shape(x)}")
        k, s, p, d = windows3(a)
        return (*x[:2], *[window_out(n, ki, si, pi, axis, di, a.ceil_mode) for n, ki, si, pi, di,
                          axis in zip(x[2:], k, s, p, d, AXES)])

    @classmethod
    def to_torch(cls, a, in_shapes):
        k, s, p, d = windows3(a)
        if cls.average:
            return TorchCode(f"F.avg_pool3d({{x}}, {k}, {s}, {p}, ceil_mode={a.ceil_mode}, "
                             f"count_include_pad={a.count_include_pad})")
        return TorchCode(f"F.max_pool3d({{x}}, {k}, {s}, {p}, {d}, ceil_mode={a.ceil_mode})")

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        """Explicit end padding instead of ceil_mode (as ``pool``); an average whose counted
        padding meets ceil mode's extra end gets its zeros from a Pad."""
        k, s, p, d = windows3(a)
        ends = [pi + extra_end(n, ki, si, pi, di, a.ceil_mode)
                for n, ki, si, pi, di in zip(in_shapes[0][2:], k, s, p, d)]
        attrs = dict(kernel_shape=list(k), strides=list(s))
        if not cls.average:
            return g.op("MaxPool", x, pads=list(p) + ends, dilations=list(d), **attrs)
        count, pads = int(a.count_include_pad), list(p) + ends
        if count and ends != list(p):
            count = 0
            if any(p):
                x = g.op("Pad", x, g.const([0, 0, *p] * 2, np.int64), mode="constant")
                pads = [0] * 3 + [e - b for b, e in zip(p, ends)]
        return g.op("AveragePool", x, pads=pads, count_include_pad=count, **attrs)


@register
class MaxPool3d(_Pool3d):
    """Keeps the largest value of each window of a volume: downsamples 3-D feature maps."""

    formula = ("y = the largest x in each window of {kernel_size}, windows {stride} apart (0: the "
               "kernel size), over the input padded by {padding} with −∞")
    backward_formula = "dL/dx = dL/dy at each window's first maximum, 0 elsewhere"
    attrs = {"kernel_size": _triple(2, "window depth, height and width", 1),
             "stride": _triple(0, "step between windows; 0 means the kernel size", 0),
             "padding": _triple(0, "padding on each face (at most half the kernel)", 0),
             "dilation": _triple(1, "spacing between a window's taps", 1),
             "ceil_mode": Bool(False, "round the output size up: a last, partial window "
                                      "covers the end")}
    examples = (Example({}, ((2, 2, 4, 5, 4),)),
                Example({"kernel_size": (3, 2, 3), "stride": (2, 1, 2), "padding": (1, 0, 1),
                         "dilation": (1, 2, 1), "ceil_mode": True}, ((2, 2, 6, 5, 6),)))

    @staticmethod
    def forward(a, p, ctx, x):
        xp, before = _padded(a, x, -np.inf)
        (kd, kh, kw), (sd, sh, sw), _, (dd, dh, dw) = windows3(a)
        n, c, dp, hp, wp = xp.shape
        z, arg2 = max_pool2d_forward(np.ascontiguousarray(xp).reshape(n, c * dp, hp, wp),
                                     kh, kw, sh, sw, dh, dw)
        z = z.reshape(n, c, dp, *z.shape[2:])
        od = (dp - dd * (kd - 1) - 1) // sd + 1
        taps = np.stack(_depth_taps(z, kd, sd, dd, od), axis=2)
        argd = taps.argmax(axis=2)  # the first maximum, or the first NaN, as PyTorch
        ctx.save(arg2, argd, xp.shape, x.shape, before)
        return np.take_along_axis(taps, argd[:, :, None], axis=2)[:, :, 0]

    @staticmethod
    def backward(a, p, ctx, dy):
        arg2, argd, (n, c, dp, hp, wp), shape, (fd, fh, fw) = ctx.saved
        (kd, _, _), (sd, _, _), _, (dd, _, _) = windows3(a)
        dz = np.zeros((n, c, dp, *dy.shape[3:]), dy.dtype)
        for i, tap in enumerate(_depth_taps(dz, kd, sd, dd, dy.shape[2])):
            tap += np.where(argd == i, dy, 0)
        dxp = max_pool2d_backward(dz.reshape(n, c * dp, *dy.shape[3:]), arg2, hp, wp)
        dxp = dxp.reshape(n, c, dp, hp, wp)
        return (dxp[:, :, fd:fd + shape[2], fh:fh + shape[3], fw:fw + shape[4]],), {}


@register
class AvgPool3d(_Pool3d):
    """Averages each window of a volume: a smooth downsampling of 3-D feature maps."""

    average = True
    formula = ("y = the mean of each window of {kernel_size}, windows {stride} apart (0: the "
               "kernel size); zero padding {padding} counts in the mean if count_include_pad")
    backward_formula = "dL/dx: each dL/dy divided by its window's count, added over the window"
    attrs = {"kernel_size": _triple(2, "window depth, height and width", 1),
             "stride": _triple(0, "step between windows; 0 means the kernel size", 0),
             "padding": _triple(0, "padding on each face (at most half the kernel)", 0),
             "ceil_mode": Bool(False, "round the output size up: a last, partial window "
                                      "covers the end"),
             "count_include_pad": Bool(True, "count the zero padding in each window's mean")}
    examples = (Example({}, ((2, 2, 4, 5, 4),)),
                Example({"kernel_size": (3, 2, 3), "stride": (2, 1, 2), "padding": (1, 1, 1),
                         "ceil_mode": True}, ((2, 2, 6, 5, 6),)),
                Example({"kernel_size": (2, 3, 2), "stride": (2, 2, 1), "padding": (1, 1, 0),
                         "ceil_mode": True, "count_include_pad": False}, ((2, 2, 5, 6, 3),)))

    @staticmethod
    def divisor(a, shape: tuple, outs: tuple) -> np.ndarray:
        k, s, p, _ = windows3(a)
        per_axis = [avg_divisor(n, ki, si, pi, o, a.count_include_pad)
                    for n, ki, si, pi, o in zip(shape[2:], k, s, p, outs)]
        return np.multiply.outer(np.multiply.outer(*per_axis[:2]), per_axis[2])

    @staticmethod
    def forward(a, p, ctx, x):
        xp, before = _padded(a, x, 0.0)
        (kd, kh, kw), (sd, sh, sw), _, _ = windows3(a)
        n, c, dp, hp, wp = xp.shape
        z = avg_pool2d_forward(np.ascontiguousarray(xp).reshape(n, c * dp, hp, wp), kh, kw, sh,
                               sw) * (kh * kw)  # window sums
        z = z.reshape(n, c, dp, *z.shape[2:])
        od = (dp - kd) // sd + 1
        div = AvgPool3d.divisor(a, x.shape, (od, *z.shape[3:])).astype(x.dtype)
        ctx.save(xp.shape, x.shape, before, div)
        return sum(_depth_taps(z, kd, sd, 1, od)) / div

    @staticmethod
    def backward(a, p, ctx, dy):
        (n, c, dp, hp, wp), shape, (fd, fh, fw), div = ctx.saved
        (kd, kh, kw), (sd, sh, sw), _, _ = windows3(a)
        dz = np.zeros((n, c, dp, *dy.shape[3:]), dy.dtype)
        for tap in _depth_taps(dz, kd, sd, 1, dy.shape[2]):
            tap += dy / div
        dxp = avg_pool2d_backward(dz.reshape(n, c * dp, *dy.shape[3:]) * (kh * kw), kh, kw, sh,
                                  sw, hp, wp).reshape(n, c, dp, hp, wp)
        return (dxp[:, :, fd:fd + shape[2], fh:fh + shape[3], fw:fw + shape[4]],), {}
