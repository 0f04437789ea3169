"""A learned tensor as a node: ``nn.Parameter`` of a chosen shape, broadcast against the batch.

What a PyTorch model multiplies or adds as a tensor of its own (a per-channel scale ``gamma``, a
bias of shape (C, 1, 1), a table of positions) is drawn as a Parameter node wired into Multiply
or Add. Its output has batch size 1, so it broadcasts against every sample; its gradient is the
sum over the batch. Freeze the node to keep it constant (the ONNX import freezes the tensors a
model writes as Constant nodes; its initializers, parameters and buffers alike since ONNX does
not tell them apart, come in trainable).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Float, IntTuple, Layer, TorchCode

TORCH_LEARNED = '''
class LearnedTensor(nn.Module):
    """A tensor of its own, with a batch axis of 1 (Layerloom's Parameter)."""

    def __init__(self, shape, init):
        super().__init__()
        self.value = nn.Parameter(torch.full(shape, float(init)))

    def forward(self):  # a copy: under no_grad a view of a parameter would still want a grad
        return self.value[None].clone()
'''


@register
class Parameter(Layer):
    """A learned tensor (nn.Parameter) broadcast against the batch: a scale, a bias, a table."""

    formula = ("y = W, a learned tensor of shape {shape} (every entry starting at {init}) with a "
               "batch axis of 1, broadcast by the layer it feeds")
    backward_formula = ("dL/dW = dL/dy (its batch axis of 1 dropped); no input to pass a gradient "
                        "on to")
    category = "Math"
    inputs = ()
    attrs = {"shape": IntTuple((1,), "its shape after the batch; it broadcasts against the other "
                                     "input from the right (e.g. C×1×1 per channel)", min=1),
             "init": Float(0.0, "the value every entry starts at")}
    examples = (Example({"shape": (3, 1, 1), "init": 0.5}), Example({"shape": (4,)}))

    @classmethod
    def label(cls, a) -> str:
        return "×".join(map(str, a["shape"]))

    @staticmethod
    def infer(a):
        return (1, *a.shape)

    @staticmethod
    def param_shapes(a, in_shapes):
        return {"value": tuple(a.shape)}

    @staticmethod
    def init(a, in_shapes, rng):
        return {"value": np.full(a.shape, a.init)}

    @staticmethod
    def forward(a, p, ctx):
        return p["value"][None]

    @staticmethod
    def backward(a, p, ctx, dy):
        return (), {"value": dy.sum(axis=0)}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}()", f"LearnedTensor({tuple(a.shape)}, {a.init!r})", (TORCH_LEARNED,))

    @staticmethod
    def to_onnx(a, in_shapes, g):
        return g.op("Unsqueeze", g.param("value"), g.const([0], np.int64))
