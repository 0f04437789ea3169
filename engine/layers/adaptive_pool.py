"""Adaptive pooling as ``torch.nn.AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` and their 1-D and
3-D forms: the output size is fixed and the windows adapt to the input, window i covering
positions ⌊i·L/O⌋ to ⌈(i+1)·L/O⌉ (ATen's rule; neighbouring windows may overlap). With an output
of 1 it is global pooling, what ResNets end with before their classifier.

Windows are boxes, so the average is separable: one averaging matrix per axis (a reshape-mean
when the sizes divide); the max is a maximum over each window, whose first maximum (in PyTorch's
row-major order) takes the gradient.
"""
from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import (Example, Int, IntPair, IntTuple, Layer, ShapeError,
                                   TorchCode, fmt_shape)

AXES = {1: "signals (channels×length)", 2: "images (channels×height×width)",
        3: "volumes (channels×depth×height×width)"}


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
    dims: ClassVar[int] = 2
    average: ClassVar[bool] = True

    @classmethod
    def out_size(cls, a) -> tuple:
        size = a["output_size"]
        return (size,) if cls.dims == 1 else tuple(size)

    @classmethod
    def label(cls, a) -> str:
        outs = cls.out_size(a)
        return "global" if set(outs) == {1} else "→" + "×".join(map(str, outs))

    @classmethod
    def infer(cls, a, x):
        if len(x) != cls.dims + 2:
            raise ShapeError(f"expects {AXES[cls.dims]}, got {fmt_shape(x)}")
        return (x[0], x[1], *cls.out_size(a))

    @classmethod
    def forward(cls, a, p, ctx, x):
        return _avg(ctx, x, cls.out_size(a)) if cls.average else _max(ctx, x, cls.out_size(a))

    @classmethod
    def backward(cls, a, p, ctx, dy):
        return (_avg_back(ctx, dy) if cls.average else _max_back(ctx, dy),), {}

    @classmethod
    def to_torch(cls, a, in_shapes):
        kind = "avg" if cls.average else "max"
        size = a.output_size if cls.dims == 1 else tuple(a.output_size)
        return TorchCode(f"F.adaptive_{kind}_pool{cls.dims}d({{x}}, {size})")

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        """Global pooling; equal windows as a plain pool; other averages as one matrix product
        over the flattened plane (which reads back as Reshape → Dense → Reshape); other maxima
        as a max pool over each window's rows, then over each window's columns."""
        sizes, outs = in_shapes[0][2:], cls.out_size(a)
        op = "Average" if cls.average else "Max"
        if all(o == 1 for o in outs):
            return g.op(f"Global{op}Pool", x)
        if all(s % o == 0 for s, o in zip(sizes, outs)):
            k = [s // o for s, o in zip(sizes, outs)]
            return g.op(f"{op}Pool", x, kernel_shape=k, strides=k)
        if cls.average:
            mat = average_matrix(sizes[-1], outs[-1])
            for size, out in zip(sizes[-2::-1], outs[-2::-1]):
                mat = np.kron(average_matrix(size, out), mat)
            if len(sizes) > 1:
                x = g.op("Reshape", x, g.const([0, in_shapes[0][1], -1], np.int64))
            y = g.op("MatMul", x, g.const(mat.T))
            return y if len(sizes) == 1 else g.op(
                "Reshape", y, g.const([0, in_shapes[0][1], *outs], np.int64))
        for axis, (size, out) in enumerate(zip(sizes, outs), start=2):
            parts = []
            for s, e in adaptive_windows(size, out):
                k = [e - s if a == axis else 1 for a in range(2, 2 + len(sizes))]
                window = g.op("Slice", x, g.const([s], np.int64), g.const([e], np.int64),
                              g.const([axis], np.int64))
                parts.append(g.op("MaxPool", window, kernel_shape=k, strides=[1] * len(k)))
            x = g.op("Concat", *parts, axis=axis) if len(parts) > 1 else parts[0]
        return x


def _divides(shape: tuple, outs: tuple) -> bool:
    return all(n % o == 0 for n, o in zip(shape[2:], outs))


def _avg(ctx, x, outs):
    ctx.save(x.shape, outs)
    if all(o == 1 for o in outs):
        # a global average (a ResNet's head) as one BLAS product: numpy's mean over the spatial
        # axes ran a row at a time (0.68 → 0.06 ms for 64 × 256 × 8 × 8)
        size = int(np.prod(x.shape[2:]))
        y = np.ascontiguousarray(x).reshape(-1, size) @ np.ones(size, x.dtype)
        return (y / x.dtype.type(size)).reshape(*x.shape[:2], *outs)
    if _divides(x.shape, outs):  # equal windows: a reshape and a mean
        split = [v for o, n in zip(outs, x.shape[2:]) for v in (o, n // o)]
        return x.reshape(*x.shape[:2], *split).mean(axis=tuple(range(3, 2 + 2 * len(outs), 2)))
    return _apply(x, [average_matrix(n, o) for n, o in zip(x.shape[2:], outs)])


def _apply(x, mats: list):
    """Each matrix applied along its spatial axis (a separable linear map)."""
    for axis, m in enumerate(mats, start=2):
        x = np.moveaxis(np.tensordot(m.astype(x.dtype), x, axes=(1, axis)), 0, axis)
    return np.ascontiguousarray(x)


def _avg_back(ctx, dy):
    shape, outs = ctx.saved
    if _divides(shape, outs):  # each window's share written once, in dy's dtype
        ks = [n // o for n, o in zip(shape[2:], outs)]
        share = dy / dy.dtype.type(np.prod(ks))  # = the float64 quotient rounded: exact
        g = np.empty(shape, share.dtype)
        g.reshape(*shape[:2], *[v for o, k in zip(outs, ks) for v in (o, k)])[...] = \
            share.reshape(*shape[:2], *[v for o in outs for v in (o, 1)])
        return g
    return _apply(dy, [average_matrix(n, o).T for n, o in zip(shape[2:], outs)])


def _max(ctx, x, outs):
    """Each window's maximum and the flat index of its first maximum in the sample's plane or
    volume (a NaN wins, so it is never pooled away)."""
    n, c, *sizes = x.shape
    y = np.empty((n, c, *outs), x.dtype)
    arg = np.empty((n, c, *outs), np.int64)
    for index in itertools.product(*[range(o) for o in outs]):
        box = [adaptive_windows(s, o)[i] for s, o, i in zip(sizes, outs, index)]
        window = x[(slice(None), slice(None), *[slice(b, e) for b, e in box])]
        k = window.reshape(n, c, -1).argmax(axis=2)
        at = np.unravel_index(k, window.shape[2:])
        y[(slice(None), slice(None), *index)] = window.reshape(n, c, -1)[
            np.arange(n)[:, None], np.arange(c)[None, :], k]
        arg[(slice(None), slice(None), *index)] = np.ravel_multi_index(
            tuple(a + b for a, (b, _) in zip(at, box)), sizes)
    ctx.save(x.shape, arg)
    return y


def _max_back(ctx, dy):
    shape, arg = ctx.saved
    n, c = shape[:2]
    dx = np.zeros((n * c, int(np.prod(shape[2:]))), dy.dtype)
    np.add.at(dx, (np.arange(n * c)[:, None], arg.reshape(n * c, -1)), dy.reshape(n * c, -1))
    return dx.reshape(shape)


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
    examples = (Example({}, ((2, 3, 5, 4),)), Example({"output_size": (2, 2)}, ((2, 2, 6, 4),)),
                Example({"output_size": (3, 2)}, ((2, 2, 7, 5),)))


@register
class AdaptiveAvgPool1d(_Adaptive):
    """Averages each signal to a fixed length; at 1 it is global average pooling."""

    formula = "y[i] = the mean of window i of {output_size} windows along the signal"
    backward_formula = "dL/dx: each dL/dy[i] divided by its window's length, added over it"

    dims = 1
    attrs = {"output_size": Int(1, "output length (1: global pooling)", min=1, max=65536)}
    examples = (Example({}, ((2, 3, 7),)), Example({"output_size": 3}, ((2, 2, 8),)))


@register
class AdaptiveMaxPool1d(_Adaptive):
    """Keeps each signal's largest values in a fixed number of windows; at 1 global max pooling."""

    formula = "y[i] = the largest x in window i of {output_size} windows along the signal"
    backward_formula = "dL/dx = dL/dy at each window's first maximum, 0 elsewhere"

    dims = 1
    average = False
    attrs = {"output_size": Int(1, "output length (1: global pooling)", min=1, max=65536)}
    examples = (Example({}, ((2, 3, 7),)), Example({"output_size": 3}, ((2, 2, 9),)),
                Example({"output_size": 4}, ((2, 3, 6),)))


@register
class AdaptiveAvgPool3d(_Adaptive):
    """Averages each volume to a fixed size; at 1×1×1 it is global average pooling."""

    dims = 3
    formula = "y[i, j, k] = the mean of window (i, j, k) of a {output_size} grid of windows"
    backward_formula = "dL/dx: each dL/dy divided by its window's size, added over it"
    attrs = {"output_size": IntTuple((1, 1, 1), "output depth, height and width (1×1×1: "
                                                "global pooling)", length=3, min=1)}
    examples = (Example({}, ((2, 3, 3, 4, 2),)), Example({"output_size": (2, 3, 2)},
                                                          ((2, 2, 5, 6, 4),)))


@register
class AdaptiveMaxPool3d(_Adaptive):
    """Keeps each volume's largest values in a fixed-size grid; at 1×1×1 global max pooling."""

    dims = 3
    average = False
    formula = "y[i, j, k] = the largest x in window (i, j, k) of a {output_size} grid of windows"
    backward_formula = "dL/dx = dL/dy at each window's first maximum, 0 elsewhere"
    attrs = {"output_size": IntTuple((1, 1, 1), "output depth, height and width (1×1×1: "
                                                "global pooling)", length=3, min=1)}
    examples = (Example({}, ((2, 3, 3, 4, 2),)), Example({"output_size": (2, 2, 3)},
                                                          ((2, 2, 4, 3, 5),)))
