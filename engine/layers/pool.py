"""Max and average pooling of images and signals, as ``torch.nn.MaxPool2d`` / ``AvgPool2d`` /
``MaxPool1d`` / ``AvgPool1d``: stride defaults to the kernel size; dilation (max pooling),
``ceil_mode`` and ``count_include_pad`` (average pooling, on by default) follow PyTorch.

A 1-D pool runs the 2-D kernels on a one-row image. In ceil mode the last windows may reach past
the padding: the input is padded further (with -inf for max, zeros for average) and an average
divides by what PyTorch divides by (``avg_divisor``), so the kernels stay the plain ones.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from layerloom.engine.kernels.pool import (avg_pool2d_backward, avg_pool2d_forward,
                                           max_pool2d_backward, max_pool2d_forward)
from layerloom.engine.layers.image_ops import (avg_divisor, extra_end, image_shape, pad_ends,
                                               signal_shape, window_out)
from layerloom.engine.registry import register
from layerloom.engine.spec import AttrError, Bool, Example, Int, IntPair, Layer, TorchCode

POOL_ATTRS = {
    "kernel_size": IntPair(2, "window height and width", min=1),
    "stride": IntPair(0, "step between windows; 0 means the kernel size", min=0),
    "padding": IntPair(0, "padding on each side (at most half the kernel)", min=0),
}
POOL_ATTRS_1D = {
    "kernel_size": Int(2, "window length", min=1, max=4096),
    "stride": Int(0, "step between windows; 0 means the kernel size", min=0, max=4096),
    "padding": Int(0, "padding at each end (at most half the kernel)", min=0, max=2048),
}
MAX_FORMULA = ("y = the largest x in each window of {kernel_size}, windows {stride} apart (0: the "
               "kernel size), over the input padded by {padding} with −∞")
MAX_BACKWARD = "dL/dx = dL/dy at each window's first maximum, 0 elsewhere"
AVG_FORMULA = ("y = the mean of each window of {kernel_size}, windows {stride} apart (0: the "
               "kernel size); zero padding {padding} counts in the mean if count_include_pad")
AVG_BACKWARD = "dL/dx: each dL/dy divided by its window's count, added over the window"
CEIL = Bool(False, "round the output size up: a last, partial window covers the end")
INCLUDE_PAD = Bool(True, "count the zero padding in each window's mean")


def geometry(a) -> tuple:
    """(kh, kw, sh, sw, ph, pw) of a 2-D pool (the fused conv + pool step reads it)."""
    (kh, kw), (sh, sw), (ph, pw) = a.kernel_size, a.stride, a.padding
    return kh, kw, sh or kh, sw or kw, ph, pw


def windows(a) -> tuple:
    """((kh, kw), (sh, sw), (ph, pw), (dh, dw)) of any pool; a 1-D pool is one row high."""
    if isinstance(a["kernel_size"], tuple):
        k = tuple(a["kernel_size"])
        s = tuple(si or ki for si, ki in zip(a["stride"], k))
        return k, s, tuple(a["padding"]), tuple(a.get("dilation", (1, 1)))
    k = a["kernel_size"]
    return (1, k), (1, a["stride"] or k), (0, a["padding"]), (1, a.get("dilation", 1))


def _ends(a, shape4) -> tuple:
    """The padding (top, bottom, left, right) the kernels see, ceil mode's extra included."""
    k, s, p, d = windows(a)
    ceil = a.get("ceil_mode", False)
    e = [extra_end(shape4[2 + i], k[i], s[i], p[i], d[i], ceil) for i in (0, 1)]
    return p[0], p[0] + e[0], p[1], p[1] + e[1]


def _avg_scale(a, shape4):
    """kh·kw / divisor per output position, or None where the kernel's own mean is right;
    made once per window and map size (16 µs a call, a quarter of a 2×2 pool's forward on
    64 × 32 × 16 × 16 over two cores)."""
    key = (windows(a), a.get("ceil_mode", False), a.get("count_include_pad", True),
           tuple(shape4[2:]))
    if key not in _SCALES:
        if len(_SCALES) >= 64:  # many map sizes (a sweep over inputs): start again
            _SCALES.clear()
        _SCALES[key] = _make_scale(a, shape4)
    return _SCALES[key]


_SCALES: dict = {}


def _make_scale(a, shape4):
    """``_avg_scale``'s value, made."""
    k, s, p, _ = windows(a)
    top, bottom, left, right = _ends(a, shape4)
    outs = [(shape4[2] + top + bottom - k[0]) // s[0] + 1,
            (shape4[3] + left + right - k[1]) // s[1] + 1]
    include = a.get("count_include_pad", True)
    div = np.multiply.outer(*[avg_divisor(shape4[2 + i], k[i], s[i], p[i], outs[i], include)
                              for i in (0, 1)])
    return None if np.all(div == k[0] * k[1]) else (k[0] * k[1]) / div


def max_forward(a, ctx, x4):
    top, bottom, left, right = _ends(a, x4.shape)
    k, s, _, d = windows(a)
    xp = pad_ends(x4, top, bottom, left, right, value=-np.inf)
    y, arg = max_pool2d_forward(xp, *k, *s, *d)
    ctx.save(arg, xp.shape, x4.shape, top, left)
    return y


def max_backward(ctx, dy4):
    arg, pshape, shape, top, left = ctx.saved
    dxp = max_pool2d_backward(np.ascontiguousarray(dy4), arg, pshape[2], pshape[3])
    return dxp[:, :, top:top + shape[2], left:left + shape[3]]


def avg_forward(a, ctx, x4):
    top, bottom, left, right = _ends(a, x4.shape)
    k, s, _, _ = windows(a)
    xp = pad_ends(x4, top, bottom, left, right)
    scale = _avg_scale(a, x4.shape)
    y = avg_pool2d_forward(xp, *k, *s)
    if scale is not None:
        scale = scale.astype(x4.dtype)
        y *= scale
    ctx.save(xp.shape, x4.shape, top, left, scale)
    return y


def avg_backward(a, ctx, dy4):
    pshape, shape, top, left, scale = ctx.saved
    k, s, _, _ = windows(a)
    dy4 = dy4 if scale is None else dy4 * scale
    dxp = avg_pool2d_backward(np.ascontiguousarray(dy4), *k, *s, pshape[2], pshape[3])
    return dxp[:, :, top:top + shape[2], left:left + shape[3]]


class _Pool(Layer):
    """Shared checks, shape rule and exports of the pooling layers."""

    category = "Pooling"
    parallel_kernels = True  # engine.threads: numba's threads run it, not the BLAS's
    one_d: ClassVar[bool] = False
    average: ClassVar[bool] = False

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        k, _, p, _ = windows(a)
        for ki, pi in zip(k, p):
            if 2 * pi > ki:
                raise AttrError(f"padding {pi} must be at most half the kernel size {ki}")

    @classmethod
    def label(cls, a) -> str:
        k, s, _, _ = windows(a)
        size = f"{k[1]}" if cls.one_d else f"{k[0]}×{k[1]}"
        return size + ("" if s == k else f" /{s[1] if cls.one_d else s[0]}")

    @classmethod
    def infer(cls, a, x):
        k, s, p, d = windows(a)
        ceil = a.ceil_mode
        if cls.one_d:
            c, length = signal_shape(x)
            return (x[0], c, window_out(length, k[1], s[1], p[1], "length", d[1], ceil))
        c, h, w = image_shape(x)
        return (x[0], c, window_out(h, k[0], s[0], p[0], "height", d[0], ceil),
                window_out(w, k[1], s[1], p[1], "width", d[1], ceil))

    @classmethod
    def to_torch(cls, a, in_shapes):
        k, s, p, d = windows(a)
        dims = "1d" if cls.one_d else "2d"
        k, s, p, d = ((v[1] for v in (k, s, p, d)) if cls.one_d else (k, s, p, d))
        if cls.average:
            return TorchCode(f"F.avg_pool{dims}({{x}}, {k}, {s}, {p}, ceil_mode={a.ceil_mode}, "
                             f"count_include_pad={a.count_include_pad})")
        return TorchCode(f"F.max_pool{dims}({{x}}, {k}, {s}, {p}, {d}, ceil_mode={a.ceil_mode})")

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        """Explicit end padding instead of ceil_mode, which runtimes round differently; for an
        average that counts its padding, the zeros as a Pad so that ceil mode's extra end does
        not count (as in PyTorch's own opset-9 export)."""
        shape = in_shapes[0] if not cls.one_d else (*in_shapes[0][:2], 1, in_shapes[0][2])
        top, bottom, left, right = _ends(a, shape)
        k, s, _, d = windows(a)
        axes = slice(1, 2) if cls.one_d else slice(0, 2)
        pads = ([top, left] + [bottom, right]) if not cls.one_d else [left, right]
        attrs = dict(kernel_shape=list(k[axes]), strides=list(s[axes]))
        if not cls.average:
            return g.op("MaxPool", x, pads=pads, dilations=list(d[axes]), **attrs)
        count = int(a.count_include_pad)
        if count and (bottom > top or right > left):
            count, rank = 0, len(in_shapes[0])
            if top or left:
                before = [0, 0] + ([top, left] if not cls.one_d else [left])
                x = g.op("Pad", x, g.const(before + before, np.int64), mode="constant")
                pads = [0] * (rank - 2) + [e - b for b, e in zip(before[2:], pads[rank - 2:])]
        return g.op("AveragePool", x, pads=pads, count_include_pad=count, **attrs)


@register
class MaxPool2D(_Pool):
    """Keeps the largest value of each window: downsamples feature maps."""

    formula = MAX_FORMULA
    backward_formula = MAX_BACKWARD

    attrs = {**POOL_ATTRS, "dilation": IntPair(1, "spacing between a window's taps", min=1),
             "ceil_mode": CEIL}
    examples = (Example({}, ((2, 3, 6, 5),)),
                Example({"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)}, ((2, 2, 7, 6),)),
                Example({"kernel_size": (3, 2), "stride": (2, 2), "padding": (1, 1),
                         "dilation": (2, 1), "ceil_mode": True}, ((2, 2, 8, 7),)))

    @staticmethod
    def forward(a, p, ctx, x):
        return max_forward(a, ctx, x)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (max_backward(ctx, dy),), {}


@register
class AvgPool2D(_Pool):
    """Averages each window: a smooth downsampling of feature maps."""

    formula = AVG_FORMULA
    backward_formula = AVG_BACKWARD

    average = True
    attrs = {**POOL_ATTRS, "ceil_mode": CEIL, "count_include_pad": INCLUDE_PAD}
    examples = (Example({}, ((2, 3, 6, 5),)),
                Example({"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 1)}, ((2, 2, 5, 6),)),
                Example({"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1),
                         "ceil_mode": True}, ((2, 2, 6, 8),)),
                Example({"kernel_size": (3, 2), "stride": (2, 2), "padding": (1, 1),
                         "ceil_mode": True, "count_include_pad": False}, ((2, 2, 6, 7),)))

    @staticmethod
    def forward(a, p, ctx, x):
        return avg_forward(a, ctx, x)

    @staticmethod
    def backward(a, p, ctx, dy):
        return (avg_backward(a, ctx, dy),), {}


@register
class MaxPool1d(_Pool):
    """Keeps the largest value of each window along a signal: downsamples sequences."""

    formula = MAX_FORMULA
    backward_formula = MAX_BACKWARD

    one_d = True
    attrs = {**POOL_ATTRS_1D, "dilation": Int(1, "spacing between a window's taps", min=1,
                                               max=4096), "ceil_mode": CEIL}
    examples = (Example({}, ((2, 3, 9),)),
                Example({"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2,
                         "ceil_mode": True}, ((2, 2, 12),)))

    @staticmethod
    def forward(a, p, ctx, x):
        return max_forward(a, ctx, x[:, :, None, :])[:, :, 0, :]

    @staticmethod
    def backward(a, p, ctx, dy):
        return (max_backward(ctx, dy[:, :, None, :])[:, :, 0, :],), {}


@register
class AvgPool1d(_Pool):
    """Averages each window along a signal: a smooth downsampling of sequences."""

    formula = AVG_FORMULA
    backward_formula = AVG_BACKWARD

    one_d = True
    average = True
    attrs = {**POOL_ATTRS_1D, "ceil_mode": CEIL, "count_include_pad": INCLUDE_PAD}
    examples = (Example({"kernel_size": 3}, ((2, 3, 10),)),
                Example({"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                        ((2, 2, 10),)),
                Example({"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True,
                         "count_include_pad": False}, ((2, 2, 11),)))

    @staticmethod
    def forward(a, p, ctx, x):
        return avg_forward(a, ctx, x[:, :, None, :])[:, :, 0, :]

    @staticmethod
    def backward(a, p, ctx, dy):
        return (avg_backward(a, ctx, dy[:, :, None, :])[:, :, 0, :],), {}
