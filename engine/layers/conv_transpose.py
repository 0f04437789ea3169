"""Transposed convolutions as ``torch.nn.ConvTranspose2d`` / ``ConvTranspose1d``: weight
in×(out/groups)×kernel, stride, padding, output_padding, groups and dilation as PyTorch.

A transposed convolution is the input gradient of the convolution with the same weight, so it
runs the convolution kernels backwards: the forward is ``conv_input_grad`` over the full output
(cropped by ``padding``), the input gradient is the convolution's forward, the weight gradient
the convolution's weight gradient with the roles of input and output swapped.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from layerloom.engine.kernels.conv import conv_input_grad, pad_sides
from layerloom.engine.kernels.conv_transposed import conv_transpose_grads
from layerloom.engine.layers.image_ops import (channels_in_groups, check_groups, conv_param_shapes,
                                               conv_params, image_shape, signal_shape)
from layerloom.engine.registry import register
from layerloom.engine.spec import (AttrError, Bool, Example, Int, IntPair, Layer, ShapeError,
                                   TorchCode)


class _ConvTranspose(Layer):
    category = "Convolution"
    parallel_kernels = True  # engine.threads: numba's threads run it, not the BLAS's
    formula = ("each input value x[c, position] adds x · W[c, f, tap] to output f at "
               "stride·position + dilation·tap ({out_channels} outputs, input positions "
               "{stride} apart), then padding is cropped from the edges and b[f] added")
    backward_formula = ("dL/dx = the convolution of dL/dy with W; dL/dW[c, f, tap] = "
                        "Σ<sub>batch, positions</sub> x[c] · dL/dy[f, …]; dL/db = Σ dL/dy")
    one_d: ClassVar[bool] = False

    @classmethod
    def pairs(cls, a) -> tuple:
        """(kernel, stride, padding, output_padding, dilation), each (height, width)."""
        names = ("kernel_size", "stride", "padding", "output_padding", "dilation")
        if not cls.one_d:
            return tuple(tuple(a[n]) for n in names)
        return tuple((0 if "padding" in n else 1, a[n]) for n in names)  # one row high

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        check_groups(a)
        _, s, _, op, d = cls.pairs(a)
        if any(o >= max(si, di) for o, si, di in zip(op, s, d)):
            raise AttrError("output_padding must be smaller than the stride or the dilation")

    @classmethod
    def label(cls, a) -> str:
        k, s, _, _, _ = cls.pairs(a)
        size = f"{k[1]}" if cls.one_d else f"{k[0]}×{k[1]}"
        return f"{a['out_channels']}@{size}" + (f" ×{s[1]}" if s[1] != 1 else "")

    @classmethod
    def infer(cls, a, x):
        c, *sizes = signal_shape(x) if cls.one_d else image_shape(x)
        channels_in_groups(c, a.groups)
        k, s, p, op, d = cls.pairs(a)
        sizes = [1, *sizes] if cls.one_d else sizes
        outs = [(n - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
                for n, ki, si, pi, oi, di in zip(sizes, k, s, p, op, d)]
        if min(outs) < 1:
            raise ShapeError(f"padding {max(p)} leaves no output: use less padding")
        return (x[0], a.out_channels, *(outs[1:] if cls.one_d else outs))

    @classmethod
    def param_shapes(cls, a, in_shapes):
        k, *_ = cls.pairs(a)
        shape = (in_shapes[0][1], a.out_channels // a.groups, *((k[1],) if cls.one_d else k))
        return conv_param_shapes(shape, a.bias, a.out_channels)

    @classmethod
    def init(cls, a, in_shapes, rng):
        k, *_ = cls.pairs(a)
        opg = a.out_channels // a.groups  # PyTorch's fan in reads the weight's second axis
        shape = cls.param_shapes(a, in_shapes)["weight"]
        return conv_params(rng, shape, opg * k[0] * k[1], a.bias, a.out_channels)

    @classmethod
    def forward(cls, a, p, ctx, x):
        x4 = x[:, :, None, :] if cls.one_d else x
        w = np.ascontiguousarray(p["weight"], dtype=x.dtype)
        w4 = w[:, :, None, :] if cls.one_d else w
        k, s, pad, op, d = cls.pairs(a)
        full = [(n - 1) * si + di * (ki - 1) + 1 + oi
                for n, ki, si, oi, di in zip(x4.shape[2:], k, s, op, d)]
        y = conv_input_grad(x4, w4, *full, s, d, a.groups)
        y = y[:, :, pad[0]:full[0] - pad[0], pad[1]:full[1] - pad[1]]
        if a.bias:
            y = y + np.asarray(p["bias"], dtype=x.dtype).reshape(1, -1, 1, 1)
        ctx.save(x4, w4)
        return y[:, :, 0, :] if cls.one_d else np.ascontiguousarray(y)

    @classmethod
    def backward(cls, a, p, ctx, dy):
        x4, w4 = ctx.saved
        dy4 = dy[:, :, None, :] if cls.one_d else dy
        _, s, pad, _, d = cls.pairs(a)
        dfull = pad_sides(dy4, pad[0], pad[0], pad[1], pad[1])
        dx, dw = conv_transpose_grads(dfull, w4, x4, s, d, a.groups, ctx.needs_input_grad[0])
        dx = dx[:, :, 0, :] if cls.one_d and dx is not None else dx
        grads = {"weight": dw[:, :, 0, :] if cls.one_d else dw}
        if a.bias:
            grads["bias"] = dy4.sum(axis=(0, 2, 3))
        return (dx,), grads

    @classmethod
    def to_torch(cls, a, in_shapes):
        names = ("kernel_size", "stride", "padding", "output_padding", "dilation")
        args = ", ".join(f"{n}={a[n] if cls.one_d else tuple(a[n])}" for n in names)
        return TorchCode("{m}({x})", f"nn.ConvTranspose{'1' if cls.one_d else '2'}d("
                                     f"{in_shapes[0][1]}, {a.out_channels}, {args}, "
                                     f"groups={a.groups}, bias={a.bias})")

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        """onnxruntime refuses an output_padding as large as the stride (PyTorch allows it below
        the dilation): those last rows get no filter tap, only the bias, so they are written as
        less cropping at the end, then zeros padded on and the bias added."""
        k, s, p, op, d = (list(v[1:] if cls.one_d else v) for v in cls.pairs(a))
        attrs = dict(kernel_shape=k, strides=s, dilations=d, group=a.groups)
        if all(o < si for o, si in zip(op, s)):
            return g.op("ConvTranspose", x, g.param("weight"), g.param("bias") if a.bias else "",
                        pads=p + p, output_padding=op, **attrs)
        ends = [pi - oi for pi, oi in zip(p, op)]
        y = g.op("ConvTranspose", x, g.param("weight"), pads=p + [max(e, 0) for e in ends],
                 **attrs)
        extra = [max(-e, 0) for e in ends]
        if any(extra):
            y = g.op("Pad", y, g.const([0, 0] + [0] * len(p) + [0, 0] + extra, np.int64))
        if not a.bias:
            return y
        bias = g.op("Reshape", g.param("bias"), g.const([-1] + [1] * len(p), np.int64))
        return g.op("Add", y, bias)


COMMON = {
    "out_channels": Int(8, "number of output feature maps", min=1, max=65536),
    "groups": Int(1, "split channels into groups; = in channels is depthwise", min=1, max=65536),
    "bias": Bool(True, "add a learned bias per output channel"),
}


@register
class ConvTranspose2d(_ConvTranspose):
    """Transposed 2-D convolution: learned upsampling (decoders, GAN generators, U-Nets)."""

    attrs = {
        "out_channels": COMMON["out_channels"],
        "kernel_size": IntPair(3, "filter height and width", min=1),
        "stride": IntPair(1, "upsampling factor: input pixels land this far apart", min=1),
        "padding": IntPair(0, "rows and columns cropped from each side of the output", min=0),
        "output_padding": IntPair(0, "extra rows and columns added at the end (< stride)",
                                  min=0),
        "dilation": IntPair(1, "spacing between filter taps", min=1),
        "groups": COMMON["groups"], "bias": COMMON["bias"],
    }
    examples = (Example({"out_channels": 3, "kernel_size": (3, 2)}, ((2, 2, 4, 3),)),
                Example({"out_channels": 4, "kernel_size": (3, 3), "stride": (2, 2),
                         "padding": (1, 1), "output_padding": (1, 1), "groups": 2},
                        ((2, 4, 3, 4),)),
                Example({"out_channels": 2, "kernel_size": (2, 3), "stride": (2, 2),
                         "dilation": (2, 1), "output_padding": (1, 0), "padding": (0, 1),
                         "bias": False}, ((2, 3, 3, 3),)),
                Example({"out_channels": 2, "kernel_size": (2, 3), "stride": (1, 2),
                         "dilation": (2, 1), "output_padding": (1, 0), "padding": (0, 1)},
                        ((2, 3, 3, 3),)))


@register
class ConvTranspose1d(_ConvTranspose):
    """Transposed 1-D convolution: learned upsampling of signals."""

    one_d = True
    attrs = {
        "out_channels": COMMON["out_channels"],
        "kernel_size": Int(3, "filter length", min=1, max=4096),
        "stride": Int(1, "upsampling factor: input steps land this far apart", min=1, max=4096),
        "padding": Int(0, "steps cropped from each end of the output", min=0, max=4096),
        "output_padding": Int(0, "extra steps added at the end (< stride)", min=0, max=4096),
        "dilation": Int(1, "spacing between filter taps", min=1, max=4096),
        "groups": COMMON["groups"], "bias": COMMON["bias"],
    }
    examples = (Example({"out_channels": 3, "kernel_size": 4, "stride": 2, "padding": 1},
                        ((2, 2, 5),)),
                Example({"out_channels": 4, "kernel_size": 3, "stride": 3, "output_padding": 2,
                         "groups": 2, "dilation": 2}, ((2, 4, 4),)))
