"""Convolutions as ``torch.nn.Conv1d`` / ``Conv2d``: weight out×(in/groups)×kernel, zero padding,
stride, dilation and groups (depthwise when groups = in_channels).

Conv1d runs the 2-D kernels on a one-row image: its (N, C, L) signals are (N, C, 1, L) images and
its (out, in/groups, k) weight an (out, in/groups, 1, k) one, so both share every kernel.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.conv import (conv_backward, conv_backward_unpadded, conv_forward,
                                          conv_forward_unpadded, pad_free_route)
from layerloom.engine.layers.image_ops import (channels_in_groups, check_groups, conv_param_shapes,
                                               conv_params, image_shape, pad2d, signal_shape,
                                               window_out)
from layerloom.engine.registry import register
from layerloom.engine.spec import Bool, Example, Int, IntPair, Layer, TorchCode


def conv_run(a, p, ctx, x4, weight4, pad: tuple, stride: tuple, dilation: tuple,
             relu: bool = False):
    """Forward of a 2-D (or one-row) convolution; saves what ``conv_grads`` needs: the padded
    input, or, where Winograd reads the padding in place or the phases are padded as they are
    made, what that route keeps (x or its phases, and the filters' transform). ``relu``:
    max(·, 0) of the output (NaN kept), in Winograd's own parallel pass where it runs, in place
    by numpy otherwise."""
    w = np.ascontiguousarray(weight4, dtype=x4.dtype)
    b = p["bias"] if a.bias else np.zeros(len(w))
    b = np.ascontiguousarray(b, dtype=x4.dtype)
    route = pad_free_route(x4.shape, w.shape, x4.dtype, pad, stride, dilation, a.groups)
    if route:
        y, kept = conv_forward_unpadded(np.ascontiguousarray(x4), w, b, tuple(pad), route, relu)
        ctx.save(kept, w, x4.shape, route)
        return y
    xp = pad2d(x4, *pad)
    y = conv_forward(xp, w, b, stride, dilation, a.groups, relu)
    ctx.save(xp, w, x4.shape, route)
    return y


def conv_grads(a, ctx, dy4, pad: tuple, stride: tuple, dilation: tuple) -> tuple:
    """(d input or None, d weight in the 4-D layout, d bias) of ``conv_run``."""
    xp, w, shape, route = ctx.saved  # route "": xp is the padded input; else what it kept
    if route:
        return conv_backward_unpadded(xp, w.shape, dy4, tuple(pad), route, shape,
                                      ctx.needs_input_grad[0])
    return conv_backward(xp, w, dy4, stride, dilation, a.groups, ctx.needs_input_grad[0], pad,
                         bool(a.bias))


def _extras(a, one_d: bool) -> str:
    """The constructor's optional arguments that differ from PyTorch's defaults."""
    out = ""
    for name in ("dilation", "groups"):
        value = a[name]
        if value not in (1, (1, 1)):
            out += f", {name}={value if one_d or name == 'groups' else tuple(value)}"
    return out


@register
class Conv2D(Layer):
    """2-D convolution: learned filters slide over the image, one feature map per filter."""

    parallel_kernels = True  # numba-parallel kernels (kernels/conv.py)
    # each output position reads a kh×kw window of the input: the Explain tab draws an output
    # element's receptive field (a trait only Conv2D has, read with getattr by gui.explain_field)
    sliding_window = True
    category = "Convolution"
    formula = ("y[f] = b[f] + Σ<sub>c, taps</sub> W[f, c, tap] · x[c, stride·position + "
               "dilation·tap − padding] for each of {out_channels} filters; filter f reads only "
               "the channels of its group ({groups} groups)")
    backward_formula = ("dL/dW[f, c, tap] = Σ<sub>batch, positions</sub> dL/dy[f] · x[c, …]; "
                        "dL/dx = dL/dy spread back through every tap (a transposed "
                        "convolution); dL/db = Σ dL/dy")
    attrs = {
        "out_channels": Int(8, "number of filters (output feature maps)", min=1, max=65536),
        "kernel_size": IntPair(3, "filter height and width", min=1),
        "stride": IntPair(1, "step between filter positions", min=1),
        "padding": IntPair(0, "zeros added on each side", min=0),
        "dilation": IntPair(1, "spacing between filter taps (atrous convolution)", min=1),
        "groups": Int(1, "split channels into groups; = in channels is depthwise", min=1,
                      max=65536),
        "bias": Bool(True, "add a learned bias per filter"),
    }
    examples = (Example({"out_channels": 3, "kernel_size": (3, 2)}, ((2, 2, 6, 5),)),
                Example({"out_channels": 2, "kernel_size": (3, 3), "stride": (2, 1),
                         "padding": (1, 2), "bias": False}, ((2, 3, 7, 6),)),
                Example({"out_channels": 8, "kernel_size": (3, 3), "padding": (1, 1),
                         "groups": 4}, ((2, 4, 6, 5),)),
                Example({"out_channels": 4, "kernel_size": (2, 3), "stride": (2, 1),
                         "dilation": (2, 2), "groups": 2, "padding": (1, 0)}, ((2, 6, 8, 7),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        check_groups(a)

    @classmethod
    def label(cls, a) -> str:
        kh, kw = a["kernel_size"]
        s = f"{a['out_channels']}@{kh}×{kw}"
        if tuple(a["stride"]) != (1, 1):
            s += f" /{a['stride'][0]}"
        if a.get("groups", 1) != 1:
            s += f" g{a['groups']}"
        return s

    @staticmethod
    def infer(a, x):
        c, h, w = image_shape(x)
        channels_in_groups(c, a.groups)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = a.kernel_size, a.stride, a.padding, a.dilation
        return (x[0], a.out_channels, window_out(h, kh, sh, ph, "height", dh),
                window_out(w, kw, sw, pw, "width", dw))

    @staticmethod
    def param_shapes(a, in_shapes):
        cpg = in_shapes[0][1] // a.groups
        return conv_param_shapes((a.out_channels, cpg, *a.kernel_size), a.bias)

    @staticmethod
    def init(a, in_shapes, rng):
        cpg = in_shapes[0][1] // a.groups
        kh, kw = a.kernel_size
        return conv_params(rng, (a.out_channels, cpg, kh, kw), cpg * kh * kw, a.bias)

    @staticmethod
    def forward(a, p, ctx, x):
        return conv_run(a, p, ctx, x, p["weight"], a.padding, a.stride, a.dilation)

    @staticmethod
    def backward(a, p, ctx, dy):
        dx, dw, db = conv_grads(a, ctx, dy, a.padding, a.stride, a.dilation)
        return (dx,), ({"weight": dw, "bias": db} if a.bias else {"weight": dw})

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.Conv2d({in_shapes[0][1]}, {a.out_channels}, "
                                     f"kernel_size={tuple(a.kernel_size)}, "
                                     f"stride={tuple(a.stride)}, padding={tuple(a.padding)}"
                                     f"{_extras(a, False)}, bias={a.bias})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        (kh, kw), (ph, pw) = a.kernel_size, a.padding
        return g.op("Conv", x, g.param("weight"), g.param("bias") if a.bias else "",
                    kernel_shape=[kh, kw], strides=list(a.stride), pads=[ph, pw, ph, pw],
                    dilations=list(a.dilation), group=a.groups)


@register
class Conv1d(Layer):
    """1-D convolution over signals (channels×length): sequences, audio, time series."""

    category = "Convolution"
    parallel_kernels = True  # engine.threads: numba's threads run it, not the BLAS's
    formula = ("y[f] = b[f] + Σ<sub>c, taps</sub> W[f, c, tap] · x[c, stride·position + "
               "dilation·tap − padding] for each of {out_channels} filters; filter f reads only "
               "the channels of its group ({groups} groups)")
    backward_formula = ("dL/dW[f, c, tap] = Σ<sub>batch, positions</sub> dL/dy[f] · x[c, …]; "
                        "dL/dx = dL/dy spread back through every tap (a transposed "
                        "convolution); dL/db = Σ dL/dy")
    attrs = {
        "out_channels": Int(8, "number of filters (output channels)", min=1, max=65536),
        "kernel_size": Int(3, "filter length", min=1, max=4096),
        "stride": Int(1, "step between filter positions", min=1, max=4096),
        "padding": Int(0, "zeros added at each end", min=0, max=4096),
        "dilation": Int(1, "spacing between filter taps (atrous convolution)", min=1, max=4096),
        "groups": Int(1, "split channels into groups; = in channels is depthwise", min=1,
                      max=65536),
        "bias": Bool(True, "add a learned bias per filter"),
    }
    examples = (Example({"out_channels": 3, "kernel_size": 3}, ((2, 2, 9),)),
                Example({"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 2,
                         "dilation": 2, "bias": False}, ((2, 3, 11),)),
                Example({"out_channels": 6, "kernel_size": 5, "padding": 2, "groups": 3},
                        ((3, 3, 10),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        check_groups(a)

    @classmethod
    def label(cls, a) -> str:
        s = f"{a['out_channels']}@{a['kernel_size']}"
        s += f" /{a['stride']}" if a["stride"] != 1 else ""
        return s + (f" g{a['groups']}" if a.get("groups", 1) != 1 else "")

    @staticmethod
    def infer(a, x):
        c, length = signal_shape(x)
        channels_in_groups(c, a.groups)
        return (x[0], a.out_channels,
                window_out(length, a.kernel_size, a.stride, a.padding, "length", a.dilation))

    @staticmethod
    def param_shapes(a, in_shapes):
        cpg = in_shapes[0][1] // a.groups
        return conv_param_shapes((a.out_channels, cpg, a.kernel_size), a.bias)

    @staticmethod
    def init(a, in_shapes, rng):
        cpg = in_shapes[0][1] // a.groups
        return conv_params(rng, (a.out_channels, cpg, a.kernel_size), cpg * a.kernel_size, a.bias)

    @staticmethod
    def forward(a, p, ctx, x):
        y = conv_run(a, p, ctx, x[:, :, None, :], p["weight"][:, :, None, :], (0, a.padding),
                     (1, a.stride), (1, a.dilation))
        return y[:, :, 0, :]

    @staticmethod
    def backward(a, p, ctx, dy):
        dx, dw, db = conv_grads(a, ctx, dy[:, :, None, :], (0, a.padding), (1, a.stride),
                                (1, a.dilation))
        grads = {"weight": dw[:, :, 0, :]}
        if a.bias:
            grads["bias"] = db
        return (None if dx is None else dx[:, :, 0, :],), grads

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.Conv1d({in_shapes[0][1]}, {a.out_channels}, "
                                     f"kernel_size={a.kernel_size}, stride={a.stride}, "
                                     f"padding={a.padding}{_extras(a, True)}, bias={a.bias})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Conv", x, g.param("weight"), g.param("bias") if a.bias else "",
                    kernel_shape=[a.kernel_size], strides=[a.stride],
                    pads=[a.padding, a.padding], dilations=[a.dilation], group=a.groups)
