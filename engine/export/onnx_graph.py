"""What a layer's ``to_onnx`` writes into: operators, constants and the node's parameters.

Plain Python and numpy only, so layer files never import onnx (``engine.export.onnx`` turns
this into a ModelProto). A layer calls ``g.op("Conv", x, g.param("weight"), ...)`` and gets the
output's value name back; parameters become initializers under their state-dict keys
("conv1.weight"), so a tool reading the ONNX file sees the same names as the weights file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Op:
    op_type: str
    inputs: tuple
    outputs: tuple
    attrs: dict


@dataclass
class OnnxGraph:
    params: dict  # the network's parameters, "<node_id>.<param>" -> array
    dtype: np.dtype = np.dtype(np.float32)
    ops: list = field(default_factory=list)
    initializers: dict = field(default_factory=dict)  # name -> array
    node_id: str = ""  # the node being translated: names its values and parameters
    _count: int = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{self.node_id}/{hint}_{self._count}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs):
        """Adds an operator; returns its output name, or a tuple of ``outputs`` names. An input
        given as "" is an omitted optional input."""
        names = tuple(self._name(op_type.lower()) for _ in range(outputs))
        while inputs and inputs[-1] == "":  # trailing omitted inputs are simply left off
            inputs = inputs[:-1]
        self.ops.append(Op(op_type, inputs, names, attrs))
        return names[0] if outputs == 1 else names

    def const(self, value, dtype=None) -> str:
        """A constant (an initializer); floats take the model's type unless ``dtype`` says."""
        array = np.asarray(value)
        if dtype is not None:
            array = array.astype(dtype)
        elif array.dtype.kind == "f":
            array = array.astype(self.dtype)
        name = self._name("const")
        self.initializers[name] = array
        return name

    def param(self, name: str) -> str:
        """The current node's parameter ``name``, as an initializer under its full key."""
        key = f"{self.node_id}.{name}"
        if key not in self.initializers:
            self.initializers[key] = np.asarray(self.params[key], dtype=self.dtype)
        return key

    def value(self, name: str) -> np.ndarray:
        """The current node's parameter as an array (for a layout ONNX wants otherwise)."""
        return np.asarray(self.params[f"{self.node_id}.{name}"], dtype=self.dtype)
