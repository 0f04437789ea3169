"""Conv3d, as ``torch.nn.Conv3d``: volumes (N×C×D×H×W, video frames or scans), weight
out×(in/groups)×kd×kh×kw, zero padding, stride, dilation and groups.

It runs on the 2-D kernels: each depth tap kd is a 2-D convolution of the input slices it reads
(all output depths at once, folded into the batch) with the weight's slice w[:, :, kd], and the
output is their sum; the backward sums the same way. So every 2-D path (direct, matrix products,
grouped) serves volumes too.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.conv import conv_backward, conv_forward
from layerloom.engine.layers.image_ops import (channels_in_groups, check_groups, conv_param_shapes,
                                               conv_params, window_out)
from layerloom.engine.registry import register
from layerloom.engine.spec import (Bool, Example, Int, IntTuple, Layer, ShapeError, TorchCode,
                                   fmt_shape)


def _triple(default: int, doc: str, low: int) -> IntTuple:
    return IntTuple((default,) * 3, doc, length=3, min=low)


def _slices(xp: np.ndarray, start: int, step: int, count: int) -> np.ndarray:
    """Depth slices start, start + step, … (count of them) as one batch of images
    (N·count, C, H, W)."""
    n, c, _, h, w = xp.shape
    part = xp[:, :, start:start + step * (count - 1) + 1:step]
    return np.ascontiguousarray(part.transpose(0, 2, 1, 3, 4)).reshape(n * count, c, h, w)


@register
class Conv3d(Layer):
    """3-D convolution over volumes (depth×height×width): video clips, medical scans."""

    category = "Convolution"
    parallel_kernels = True  # engine.threads: numba's threads run it, not the BLAS's
    formula = ("y[f] = b[f] + Σ<sub>c, taps</sub> W[f, c, tap] · x[c, stride·position + "
               "dilation·tap − padding] for each of {out_channels} filters; filter f reads only "
               "the channels of its group ({groups} groups)")
    backward_formula = ("dL/dW[f, c, tap] = Σ<sub>batch, positions</sub> dL/dy[f] · x[c, …]; "
                        "dL/dx = dL/dy spread back through every tap (a transposed "
                        "convolution); dL/db = Σ dL/dy")
    attrs = {
        "out_channels": Int(8, "number of filters (output feature volumes)", min=1, max=65536),
        "kernel_size": _triple(3, "filter depth, height and width", 1),
        "stride": _triple(1, "step between filter positions", 1),
        "padding": _triple(0, "zeros added on each side", 0),
        "dilation": _triple(1, "spacing between filter taps", 1),
        "groups": Int(1, "split channels into groups; = in channels is depthwise", min=1,
                      max=65536),
        "bias": Bool(True, "add a learned bias per filter"),
    }
    examples = (Example({"out_channels": 3, "kernel_size": (2, 3, 2)}, ((2, 2, 4, 5, 4),)),
                Example({"out_channels": 4, "kernel_size": (3, 2, 2), "stride": (2, 1, 2),
                         "padding": (1, 0, 1), "dilation": (1, 2, 1), "groups": 2,
                         "bias": False}, ((2, 4, 5, 5, 4),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        check_groups(a)

    @classmethod
    def label(cls, a) -> str:
        return f"{a['out_channels']}@" + "×".join(map(str, a["kernel_size"]))

    @staticmethod
    def infer(a, x):
        if len(x) != 5:
            raise ShapeError(f"expects volumes (channels×depth×height×width), got {fmt_shape(x)}")
        channels_in_groups(x[1], a.groups)
        return (x[0], a.out_channels, *[window_out(n, k, s, p, axis, d) for n, k, s, p, d, axis in
                                        zip(x[2:], a.kernel_size, a.stride, a.padding,
                                            a.dilation, ("depth", "height", "width"))])

    @staticmethod
    def param_shapes(a, in_shapes):
        cpg = in_shapes[0][1] // a.groups
        return conv_param_shapes((a.out_channels, cpg, *a.kernel_size), a.bias)

    @staticmethod
    def init(a, in_shapes, rng):
        cpg = in_shapes[0][1] // a.groups
        return conv_params(rng, (a.out_channels, cpg, *a.kernel_size),
                           cpg * int(np.prod(a.kernel_size)), a.bias)

    @staticmethod
    def forward(a, p, ctx, x):
        (pd, ph, pw), (kd, sd, dd) = a.padding, (a.kernel_size[0], a.stride[0], a.dilation[0])
        xp = np.pad(x, ((0, 0), (0, 0), (pd, pd), (ph, ph), (pw, pw)))
        od = (xp.shape[2] - dd * (kd - 1) - 1) // sd + 1
        w = np.asarray(p["weight"], dtype=x.dtype)
        zero = np.zeros(a.out_channels, x.dtype)
        y = None
        for i in range(kd):
            part = conv_forward(_slices(xp, i * dd, sd, od), np.ascontiguousarray(w[:, :, i]),
                                zero, a.stride[1:], a.dilation[1:], a.groups)
            y = part if y is None else y + part
        n, f, oh, ow = len(x), a.out_channels, y.shape[2], y.shape[3]
        y = np.ascontiguousarray(y.reshape(n, od, f, oh, ow).transpose(0, 2, 1, 3, 4))
        if a.bias:
            y += np.asarray(p["bias"], dtype=x.dtype).reshape(1, -1, 1, 1, 1)
        ctx.save(xp, w, x.shape)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        xp, w, shape = ctx.saved
        (pd, ph, pw), (kd, sd, dd) = a.padding, (a.kernel_size[0], a.stride[0], a.dilation[0])
        n, f, od = dy.shape[:3]
        dy2 = np.ascontiguousarray(dy.transpose(0, 2, 1, 3, 4)).reshape(n * od, f, *dy.shape[3:])
        need = ctx.needs_input_grad[0]
        dw = np.empty_like(w)
        dxp = np.zeros_like(xp) if need else None
        for i in range(kd):
            dx2, dw[:, :, i], _ = conv_backward(_slices(xp, i * dd, sd, od),
                                                np.ascontiguousarray(w[:, :, i]), dy2,
                                                a.stride[1:], a.dilation[1:], a.groups, need)
            if need:
                back = dx2.reshape(n, od, *dx2.shape[1:]).transpose(0, 2, 1, 3, 4)
                dxp[:, :, i * dd:i * dd + sd * (od - 1) + 1:sd] += back
        dx = None if dxp is None else dxp[:, :, pd:pd + shape[2], ph:ph + shape[3],
                                          pw:pw + shape[4]]
        grads = {"weight": dw}
        if a.bias:
            grads["bias"] = dy.sum(axis=(0, 2, 3, 4))
        return (dx,), grads

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.Conv3d({in_shapes[0][1]}, {a.out_channels}, "
                                     f"kernel_size={tuple(a.kernel_size)}, "
                                     f"stride={tuple(a.stride)}, padding={tuple(a.padding)}, "
                                     f"dilation={tuple(a.dilation)}, groups={a.groups}, "
                                     f"bias={a.bias})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Conv", x, g.param("weight"), g.param("bias") if a.bias else "",
                    kernel_shape=list(a.kernel_size), strides=list(a.stride),
                    pads=list(a.padding) * 2, dilations=list(a.dilation), group=a.groups)
