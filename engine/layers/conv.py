"""Conv2D, as ``torch.nn.Conv2d`` (weight out×in×kh×kw, zero padding, stride)."""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.conv import conv2d_backward, conv2d_forward
from layerloom.engine.layers.image_ops import image_shape, pad2d, window_out
from layerloom.engine.registry import register
from layerloom.engine.spec import Bool, Example, Int, IntPair, Layer, TorchCode, uniform_fan_in


@register
class Conv2D(Layer):
    """2-D convolution: learned filters slide over the image, one feature map per filter."""

    category = "Convolution"
    attrs = {
        "out_channels": Int(8, "number of filters (output feature maps)", min=1, max=65536),
        "kernel_size": IntPair(3, "filter height and width", min=1),
        "stride": IntPair(1, "step between filter positions", min=1),
        "padding": IntPair(0, "zeros added on each side", min=0),
        "bias": Bool(True, "add a learned bias per filter"),
    }
    examples = (Example({"out_channels": 3, "kernel_size": (3, 2)}, ((2, 2, 6, 5),)),
                Example({"out_channels": 2, "kernel_size": (3, 3), "stride": (2, 1),
                         "padding": (1, 2), "bias": False}, ((2, 3, 7, 6),)))

    @classmethod
    def label(cls, a) -> str:
        kh, kw = a["kernel_size"]
        s = f"{a['out_channels']}@{kh}×{kw}"
        if tuple(a["stride"]) != (1, 1):
            s += f" /{a['stride'][0]}"
        return s

    @staticmethod
    def infer(a, x):
        c, h, w = image_shape(x)
        (kh, kw), (sh, sw), (ph, pw) = a.kernel_size, a.stride, a.padding
        return (x[0], a.out_channels, window_out(h, kh, sh, ph, "height"),
                window_out(w, kw, sw, pw, "width"))

    @staticmethod
    def param_shapes(a, in_shapes):
        weight = (a.out_channels, in_shapes[0][1], *a.kernel_size)
        return {"weight": weight, **({"bias": (a.out_channels,)} if a.bias else {})}

    @staticmethod
    def init(a, in_shapes, rng):
        c = in_shapes[0][1]
        kh, kw = a.kernel_size
        fan_in = c * kh * kw
        p = {"weight": uniform_fan_in(rng, (a.out_channels, c, kh, kw), fan_in)}
        if a.bias:
            p["bias"] = uniform_fan_in(rng, (a.out_channels,), fan_in)
        return p

    @staticmethod
    def forward(a, p, ctx, x):
        xp = pad2d(x, *a.padding)
        w = np.ascontiguousarray(p["weight"], dtype=x.dtype)
        b = p["bias"] if a.bias else np.zeros(len(w))
        y = conv2d_forward(xp, w, np.ascontiguousarray(b, dtype=x.dtype), *a.stride)
        ctx.save(xp, w, x.shape)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        xp, w, shape = ctx.saved
        dxp, dw, db = conv2d_backward(xp, w, dy, *a.stride, ctx.needs_input_grad[0])
        grads = {"weight": dw, "bias": db} if a.bias else {"weight": dw}
        dx = None
        if dxp is not None:
            ph, pw = a.padding
            dx = dxp[:, :, ph:ph + shape[2], pw:pw + shape[3]]
        return (dx,), grads

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.Conv2d({in_shapes[0][1]}, {a.out_channels}, "
                                     f"kernel_size={tuple(a.kernel_size)}, "
                                     f"stride={tuple(a.stride)}, padding={tuple(a.padding)}, "
                                     f"bias={a.bias})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        (kh, kw), (ph, pw) = a.kernel_size, a.padding
        return g.op("Conv", x, g.param("weight"), g.param("bias") if a.bias else "",
                    kernel_shape=[kh, kw], strides=list(a.stride), pads=[ph, pw, ph, pw])
