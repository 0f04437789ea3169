"""Conv3d and ConvTranspose3d, as ``torch.nn.Conv3d`` / ``ConvTranspose3d``: volumes
(N×C×D×H×W, video clips or scans), weights (out|in)×…×kd×kh×kw, padding, stride, dilation,
groups (and output_padding) as PyTorch.

They run on the 2-D kernels: each depth tap kd is a 2-D convolution of the input slices it reads
(all output depths at once, folded into the batch) with the weight's slice w[:, :, kd], and the
output is their sum; the backward sums the same way. A transposed one scatters each input slice's
2-D transposed convolution onto the depths it reaches. So every 2-D path (direct, matrix
products, grouped) serves volumes too.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.conv import conv_backward, conv_forward, conv_input_grad
from layerloom.engine.kernels.conv_transposed import conv_transpose_grads
from layerloom.engine.layers.image_ops import (channels_in_groups, check_groups, conv_param_shapes,
                                               conv_params, window_out)
from layerloom.engine.registry import register
from layerloom.engine.spec import (AttrError, Bool, Example, Int, IntTuple, Layer, ShapeError,
                                   TorchCode, fmt_shape)


def _triple(default: int, doc: str, low: int) -> IntTuple:
    return IntTuple((default,) * 3, doc, length=3, min=low)


def _slices(xp: np.ndarray, start: int, step: int, count: int) -> np.ndarray:
    """Depth slices start, start + step, … (count of them) as one batch of images
    (N·count, C, H, W)."""
    n, c, _, h, w = xp.shape
    part = xp[:, :, start:start + step * (count - 1) + 1:step]
    return np.ascontiguousarray(part.transpose(0, 2, 1, 3, 4)).reshape(n * count, c, h, w)


def _add_slices(t: np.ndarray, batch: np.ndarray, start: int, step: int, count: int) -> None:
    """The reverse of ``_slices``: add an (N·count, C, H, W) batch onto those depth slices."""
    n, c = t.shape[:2]
    back = batch.reshape(n, count, c, *batch.shape[2:]).transpose(0, 2, 1, 3, 4)
    t[:, :, start:start + step * (count - 1) + 1:step] += back


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
                _add_slices(dxp, dx2, i * dd, sd, od)
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


@register
class ConvTranspose3d(Layer):
    """Transposed 3-D convolution: learned upsampling of volumes (3-D decoders, U-Nets)."""

    category = "Convolution"
    parallel_kernels = True  # engine.threads: numba's threads run it, not the BLAS's
    formula = ("each input value x[c, position] adds x · W[c, f, tap] to output f at "
               "stride·position + dilation·tap ({out_channels} outputs, input positions "
               "{stride} apart), then padding is cropped from the faces and b[f] added")
    backward_formula = ("dL/dx = the convolution of dL/dy with W; dL/dW[c, f, tap] = "
                        "Σ<sub>batch, positions</sub> x[c] · dL/dy[f, …]; dL/db = Σ dL/dy")
    attrs = {
        "out_channels": Int(8, "number of output feature volumes", min=1, max=65536),
        "kernel_size": _triple(3, "filter depth, height and width", 1),
        "stride": _triple(1, "upsampling factor: input voxels land this far apart", 1),
        "padding": _triple(0, "cropped from each face of the output", 0),
        "output_padding": _triple(0, "extra depth, rows and columns at the end (< stride)", 0),
        "dilation": _triple(1, "spacing between filter taps", 1),
        "groups": Int(1, "split channels into groups", min=1, max=65536),
        "bias": Bool(True, "add a learned bias per output channel"),
    }
    examples = (Example({"out_channels": 3, "kernel_size": (2, 3, 2), "stride": (2, 1, 2),
                         "padding": (0, 1, 1), "output_padding": (1, 0, 1)},
                        ((2, 2, 3, 4, 3),)),
                Example({"out_channels": 4, "kernel_size": (2, 2, 3), "dilation": (2, 1, 1),
                         "groups": 2, "output_padding": (1, 0, 0), "bias": False},
                        ((2, 4, 3, 3, 2),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        check_groups(a)
        if any(o >= max(s, d) for o, s, d in zip(a["output_padding"], a["stride"],
                                                  a["dilation"])):
            raise AttrError("output_padding must be smaller than the stride or the dilation")

    @classmethod
    def label(cls, a) -> str:
        return f"{a['out_channels']}@" + "×".join(map(str, a["kernel_size"]))

    @staticmethod
    def full(a, sizes) -> list:
        """The output before cropping: (n − 1)·stride + dilation·(k − 1) + 1 + output_padding."""
        return [(n - 1) * s + d * (k - 1) + 1 + o for n, k, s, d, o in
                zip(sizes, a.kernel_size, a.stride, a.dilation, a.output_padding)]

    @staticmethod
    def infer(a, x):
        if len(x) != 5:
            raise ShapeError(f"expects volumes (channels×depth×height×width), got {fmt_shape(x)}")
        channels_in_groups(x[1], a.groups)
        outs = [f - 2 * p for f, p in zip(ConvTranspose3d.full(a, x[2:]), a.padding)]
        if min(outs) < 1:
            raise ShapeError(f"padding {max(a.padding)} leaves no output: use less padding")
        return (x[0], a.out_channels, *outs)

    @staticmethod
    def param_shapes(a, in_shapes):
        return conv_param_shapes((in_shapes[0][1], a.out_channels // a.groups, *a.kernel_size),
                                 a.bias, a.out_channels)

    @staticmethod
    def init(a, in_shapes, rng):
        opg = a.out_channels // a.groups  # PyTorch's fan in reads the weight's second axis
        return conv_params(rng, (in_shapes[0][1], opg, *a.kernel_size),
                           opg * int(np.prod(a.kernel_size)), a.bias, a.out_channels)

    @staticmethod
    def forward(a, p, ctx, x):
        n, c, d = x.shape[:3]
        fd, fh, fw = ConvTranspose3d.full(a, x.shape[2:])
        (kd, sd, dd), w = (a.kernel_size[0], a.stride[0], a.dilation[0]), \
            np.asarray(p["weight"], dtype=x.dtype)
        x2 = _slices(x, 0, 1, d)
        y = np.zeros((n, a.out_channels, fd, fh, fw), x.dtype)
        for i in range(kd):
            part = conv_input_grad(x2, np.ascontiguousarray(w[:, :, i]), fh, fw, a.stride[1:],
                                   a.dilation[1:], a.groups)
            _add_slices(y, part, i * dd, sd, d)
        (pd, ph, pw), (od, oh, ow) = a.padding, (fd - 2 * a.padding[0], fh - 2 * a.padding[1],
                                                 fw - 2 * a.padding[2])
        y = np.ascontiguousarray(y[:, :, pd:pd + od, ph:ph + oh, pw:pw + ow])
        if a.bias:
            y += np.asarray(p["bias"], dtype=x.dtype).reshape(1, -1, 1, 1, 1)
        ctx.save(x2, w, x.shape)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        x2, w, (n, c, d, h, wd) = ctx.saved
        (pd, ph, pw), (kd, sd, dd) = a.padding, (a.kernel_size[0], a.stride[0], a.dilation[0])
        dfull = np.pad(dy, ((0, 0), (0, 0), (pd, pd), (ph, ph), (pw, pw)))
        need, dw = ctx.needs_input_grad[0], np.empty_like(w)
        dx = np.zeros((n * d, c, h, wd), dy.dtype) if need else None
        for i in range(kd):
            dx_part, dw[:, :, i] = conv_transpose_grads(
                _slices(dfull, i * dd, sd, d), np.ascontiguousarray(w[:, :, i]), x2,
                a.stride[1:], a.dilation[1:], a.groups, need)
            if need:
                dx += dx_part
        if need:
            dx = np.ascontiguousarray(dx.reshape(n, d, c, h, wd).transpose(0, 2, 1, 3, 4))
        grads = {"weight": dw}
        if a.bias:
            grads["bias"] = dy.sum(axis=(0, 2, 3, 4))
        return (dx,), grads

    @staticmethod
    def to_torch(a, in_shapes):
        names = ("kernel_size", "stride", "padding", "output_padding", "dilation")
        args = ", ".join(f"{name}={tuple(a[name])}" for name in names)
        return TorchCode("{m}({x})", f"nn.ConvTranspose3d({in_shapes[0][1]}, {a.out_channels}, "
                                     f"{args}, groups={a.groups}, bias={a.bias})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        """As ConvTranspose2d's: an output_padding as large as the stride (which onnxruntime
        refuses) is written as less cropping at the end, zeros padded on, and the bias added."""
        k, s, p, op, d = (list(a[n]) for n in ("kernel_size", "stride", "padding",
                                                "output_padding", "dilation"))
        attrs = dict(kernel_shape=k, strides=s, dilations=d, group=a.groups)
        if all(o < si for o, si in zip(op, s)):
            return g.op("ConvTranspose", x, g.param("weight"), g.param("bias") if a.bias else "",
                        pads=p + p, output_padding=op, **attrs)
        ends = [pi - oi for pi, oi in zip(p, op)]
        y = g.op("ConvTranspose", x, g.param("weight"), pads=p + [max(e, 0) for e in ends],
                 **attrs)
        if any(e < 0 for e in ends):
            y = g.op("Pad", y, g.const([0] * 5 + [0, 0] + [max(-e, 0) for e in ends], np.int64))
        if not a.bias:
            return y
        return g.op("Add", y, g.op("Reshape", g.param("bias"), g.const([-1, 1, 1, 1], np.int64)))
