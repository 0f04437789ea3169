"""Adaptive pooling as ``torch.nn.AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` and their 1-D forms:
the output size is fixed and the windows adapt to the input, window i covering positions
⌊i·L/O⌋ to ⌈(i+1)·L/O⌉ (ATen's rule; neighbouring windows may overlap). With an output of 1 it
is global pooling, what ResNets end with before their classifier.

Windows are rectangles, so both poolings are separable: the average is ``resample`` with
averaging matrices (a reshape-mean when the sizes divide), the max a maximum over each window.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from layerloom.engine.layers.image_ops import image_shape, resample, signal_shape
from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Int, IntPair, Layer, TorchCode


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """(start, end) of each of ``out`` windows over ``size`` positions."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def average_matrix(size: int, out: int) -> np.ndarray:
    """(out, size): row i averages window i."""
    a = np.zeros((out, size))
    for i, (s, e) in enumerate(adaptive_windows(size, out)):
        a[i, s:e] = 1.0 / (e - s)
    return a


class _Adaptive(Layer):
    """Shared shape rule, forwards, backwards and exports of the adaptive pools."""

    category = "Pooling"
    one_d: ClassVar[bool] = False
    average: ClassVar[bool] = True

    @classmethod
    def out_size(cls, a) -> tuple:
        return (1, a["output_size"]) if cls.one_d else tuple(a["output_size"])

    @classmethod
    def label(cls, a) -> str:
        oh, ow = cls.out_size(a)
        return "global" if (oh, ow) == (1, 1) else (f"→{ow}" if cls.one_d else f"→{oh}×{ow}")

    @classmethod
    def infer(cls, a, x):
        oh, ow = cls.out_size(a)
        if cls.one_d:
            return (x[0], signal_shape(x)[0], ow)
        return (x[0], image_shape(x)[0], oh, ow)

    @classmethod
    def forward(cls, a, p, ctx, x):
        x4 = x[:, :, None, :] if cls.one_d else x
        y = _avg(ctx, x4, *cls.out_size(a)) if cls.average else _max(ctx, x4, *cls.out_size(a))
        return y[:, :, 0, :] if cls.one_d else y

    @classmethod
    def backward(cls, a, p, ctx, dy):
        dy4 = dy[:, :, None, :] if cls.one_d else dy
        dx = _avg_back(ctx, dy4) if cls.average else _max_back(ctx, dy4)
        return (dx[:, :, 0, :] if cls.one_d else dx,), {}

    @classmethod
    def to_torch(cls, a, in_shapes):
        kind, dims = ("avg" if cls.average else "max"), ("1d" if cls.one_d else "2d")
        size = a.output_size if cls.one_d else tuple(a.output_size)
        return TorchCode(f"F.adaptive_{kind}_pool{dims}({{x}}, {size})")

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        """Global pooling; equal windows as a plain pool; other averages as one matrix product
        over the flattened plane (which reads back as Reshape → Dense → Reshape); other maxima
        as a ReduceMax per window row, then per window column."""
        sizes, outs = in_shapes[0][2:], cls.out_size(a)[2 - len(in_shapes[0][2:]):]
        op = "Average" if cls.average else "Max"
        if all(o == 1 for o in outs):
            return g.op(f"Global{op}Pool", x)
        if all(s % o == 0 for s, o in zip(sizes, outs)):
            k = [s // o for s, o in zip(sizes, outs)]
            return g.op(f"{op}Pool", x, kernel_shape=k, strides=k)
        if cls.average:
            mat = average_matrix(sizes[-1], outs[-1])
            if len(sizes) == 2:
                mat = np.kron(average_matrix(sizes[0], outs[0]), mat)
                x = g.op("Reshape", x, g.const([0, in_shapes[0][1], -1], np.int64))
            y = g.op("MatMul", x, g.const(mat.T))
            return y if len(sizes) == 1 else g.op(
                "Reshape", y, g.const([0, in_shapes[0][1], *outs], np.int64))
        for axis, (size, out) in enumerate(zip(sizes, outs), start=2):
            parts = [g.op("ReduceMax", g.op("Slice", x, g.const([s], np.int64),
                                            g.const([e], np.int64), g.const([axis], np.int64)),
                          axes=[axis], keepdims=1) for s, e in adaptive_windows(size, out)]
            x = g.op("Concat", *parts, axis=axis) if len(parts) > 1 else parts[0]
        return x


def _avg(ctx, x4, oh, ow):
    n, c, h, w = x4.shape
    ctx.save(x4.shape, oh, ow)
    if h % oh == 0 and w % ow == 0:
        return x4.reshape(n, c, oh, h // oh, ow, w // ow).mean(axis=(3, 5))
    return resample(x4, average_matrix(h, oh), average_matrix(w, ow))


def _avg_back(ctx, dy4):
    (n, c, h, w), oh, ow = ctx.saved
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        g = (dy4 / (kh * kw))[:, :, :, None, :, None]
        return np.broadcast_to(g, (n, c, oh, kh, ow, kw)).reshape(n, c, h, w).copy()
    return resample(dy4, average_matrix(h, oh).T, average_matrix(w, ow).T)


def _max(ctx, x4, oh, ow):
    """Each window's maximum and the flat index (row · W + column) of its first maximum (a NaN
    wins, so it is never pooled away)."""
    n, c, h, w = x4.shape
    y = np.empty((n, c, oh, ow), x4.dtype)
    arg = np.empty((n, c, oh, ow), np.int64)
    for i, (hs, he) in enumerate(adaptive_windows(h, oh)):
        for j, (ws, we) in enumerate(adaptive_windows(w, ow)):
            window = x4[:, :, hs:he, ws:we].reshape(n, c, -1)
            k = window.argmax(axis=2)
            y[:, :, i, j] = np.take_along_axis(window, k[:, :, None], axis=2)[:, :, 0]
            arg[:, :, i, j] = (hs + k // (we - ws)) * w + ws + k % (we - ws)
    ctx.save(x4.shape, arg)
    return y


def _max_back(ctx, dy4):
    (n, c, h, w), arg = ctx.saved
    dx = np.zeros((n * c, h * w), dy4.dtype)
    np.add.at(dx, (np.arange(n * c)[:, None], arg.reshape(n * c, -1)), dy4.reshape(n * c, -1))
    return dx.reshape(n, c, h, w)


@register
class AdaptiveAvgPool2d(_Adaptive):
    """Averages each image to a fixed size; at 1×1 it is global average pooling."""

    formula = "y[i, j] = the mean of window (i, j) of a {output_size} grid of windows"
    backward_formula = "dL/dx: each dL/dy[i, j] divided by its window's size, added over it"

    attrs = {"output_size": IntPair(1, "output height and width (1×1: global pooling)", min=1)}
    examples = (Example({}, ((2, 3, 5, 4),)), Example({"output_size": (3, 2)}, ((2, 2, 7, 6),)),
                Example({"output_size": (2, 3)}, ((2, 2, 6, 3),)))


@register
class AdaptiveMaxPool2d(_Adaptive):
    """Keeps each image's largest values in a fixed-size grid; at 1×1 global max pooling."""

    formula = "y[i, j] = the largest x in window (i, j) of a {output_size} grid of windows"
    backward_formula = "dL/dx = dL/dy at each window's first maximum, 0 elsewhere"

    average = False
    attrs = {"output_size": IntPair(1, "output height and width (1×1: global pooling)", min=1)}
    examples = (Example({}, ((2, 3, 5, 4),)), Example({"output_size": (2, 2)}, ((2, 2, 6, 4),)))


@register
class AdaptiveAvgPool1d(_Adaptive):
    """Averages each signal to a fixed length; at 1 it is global average pooling."""

    formula = "y[i] = the mean of window i of {output_size} windows along the signal"
    backward_formula = "dL/dx: each dL/dy[i] divided by its window's length, added over it"

    one_d = True
    attrs = {"output_size": Int(1, "output length (1: global pooling)", min=1, max=65536)}
    examples = (Example({}, ((2, 3, 7),)), Example({"output_size": 3}, ((2, 2, 8),)))


@register
class AdaptiveMaxPool1d(_Adaptive):
    """Keeps each signal's largest values in a fixed number of windows; at 1 global max pooling."""

    formula = "y[i] = the largest x in window i of {output_size} windows along the signal"
    backward_formula = "dL/dx = dL/dy at each window's first maximum, 0 elsewhere"

    one_d = True
    average = False
    attrs = {"output_size": Int(1, "output length (1: global pooling)", min=1, max=65536)}
    examples = (Example({}, ((2, 3, 7),)), Example({"output_size": 3}, ((2, 2, 9),)))
