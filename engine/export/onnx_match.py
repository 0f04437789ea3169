"""What the ONNX import's pattern matchers share: who produces and reads each tensor, constants
as numbers, and the synthetic nodes a matched sequence is replaced by."""
from __future__ import annotations

import numpy as np

from layerloom.engine.export.onnx_fold import Folded
from layerloom.engine.export.onnx_reader import Reader


class View:
    """Who produces and who reads each tensor, for the matchers."""

    def __init__(self, nodes: list, r: Reader):
        self.r = r
        self.producer = {o: n for n in nodes for o in n.output}
        self.readers: dict = {}
        for n in nodes:
            for name in n.input:
                self.readers.setdefault(name, []).append(n)

    def only_reader(self, name: str, op_type: str):
        """The one node reading ``name`` when it is of ``op_type`` (and nothing else reads it)."""
        readers = self.readers.get(name, [])
        if len(readers) == 1 and readers[0].op_type == op_type and self.r.uses[name] == 1:
            return readers[0]
        return None

    def made_by(self, name: str, op_type: str, uses: int = 1):
        """The node producing ``name`` when it is of ``op_type`` and ``name`` is read ``uses``
        times (by the sequence being matched)."""
        node = self.producer.get(name)
        if node is None or node.op_type != op_type or self.r.uses[name] != uses:
            return None
        return node

    def const(self, name: str):
        folded = self.r.consts.get(name)
        return folded.one if folded is not None and folded.fixed else None

    def other(self, node, name: str) -> str:
        """The input of a two-input node that is not ``name``."""
        return node.input[1] if node.input[0] == name else node.input[0]

    def affine_tail(self, node):
        """An optional Mul by a constant then Add of a constant after ``node``: (last node,
        scale name or None, shift name or None, nodes)."""
        out, scale, shift, taken = node, None, None, []
        mul = self.only_reader(node.output[0], "Mul")
        if mul is not None and self.const(self.other(mul, node.output[0])) is not None:
            out, scale, taken = mul, self.other(mul, node.output[0]), [mul]
        add = self.only_reader(out.output[0], "Add")
        if add is not None and self.const(self.other(add, out.output[0])) is not None:
            out, shift, taken = add, self.other(add, out.output[0]), [*taken, add]
        return out, scale, shift, taken


def axes_of(node, view: View):
    for a in node.attribute:
        if a.name == "axes":
            return list(a.ints)
    return [int(v) for v in view.const(node.input[1])] if len(node.input) > 1 else None


def scalar(view: View, name: str):
    c = view.const(name)
    return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None


def synthetic(view: View, value: np.ndarray, name: str, parameter: bool = False) -> str:
    """A constant for a synthetic node; ``parameter`` marks it as learned (a norm's affine)."""
    view.r.consts[name] = Folded.fixed_value(value)
    if parameter:
        view.r.learned.add(name)
    return name


def make_node(op_type: str, inputs: list, output: str, name: str, **attrs):
    """A synthetic node; domain "layerloom" tells a handler it is not ONNX's own operator of that
    name (GroupNormalization with one gain per channel at any opset)."""
    from onnx import helper  # only when a model is read: the engine runs without onnx

    return helper.make_node(op_type, inputs, [output], name=name or output, domain="layerloom",
                            **attrs)
