"""The graph an ONNX import builds, and the table of operator handlers that build it.

A handler module registers ``@handles("Relu", …)`` functions ``handler(reader, node, attrs)``;
``engine.export.onnx_import`` imports every handler module and dispatches each ONNX node to its
handler. A handler reads its inputs as constants (``reader.const``) or as the outputs of earlier
layers (``reader.value``) and adds Layerloom nodes through ``reader.add``, which checks each node
as the graph would (attributes, shapes) and against the shape ONNX's own inference gives, so an
import that succeeds is a graph ``Network`` runs.
"""
from __future__ import annotations

import keyword
from collections import Counter
from typing import Callable

import numpy as np

from layerloom.engine.export.onnx_errors import OnnxImportError, refused
from layerloom.engine.export.onnx_fold import Folded
from layerloom.engine.graph import Graph, Node
from layerloom.engine.registry import LAYERS
from layerloom.engine.spec import AttrError, ShapeError, fmt_shape

__all__ = ["HANDLERS", "OnnxImportError", "Reader", "handles", "refused"]  # errors: onnx_errors

HANDLERS: dict[str, Callable] = {}
STEMS = {"Conv2D": "conv", "Dense": "fc", "MaxPool2D": "pool", "AvgPool2D": "pool",
         "BatchNorm1d": "bn", "BatchNorm2d": "bn", "BatchNorm3d": "bn", "LayerNorm": "ln",
         "Embedding": "embed", "GroupNorm": "gn", "InstanceNorm1d": "inorm",
         "InstanceNorm2d": "inorm", "InstanceNorm3d": "inorm"}


def handles(*op_types: str):
    """Registers a handler for these ONNX operator types (a later registration replaces one)."""
    def register(fn: Callable) -> Callable:
        for op in op_types:
            HANDLERS[op] = fn
        return fn
    return register


class Reader:
    """The graph being built: which tensor names are constants and which are node outputs."""

    def __init__(self, model, consts: dict, onnx_shapes: dict, to_array):
        self.graph, self.params, self.to_array = Graph(), {}, to_array
        self.consts: dict[str, Folded] = consts
        self.values: dict = {}  # tensor name -> (node_id, port)
        self.shapes: dict = {}  # (node_id, port) -> Layerloom shape (batch first, None)
        self.onnx_shapes = onnx_shapes  # tensor name -> dims from ONNX shape inference
        self.uses = Counter(name for n in model.graph.node for name in n.input)
        self.uses.update(o.name for o in model.graph.output)
        self.notes: list[str] = []
        self.declared_batches: set = set()  # batch sizes the model's inputs were fixed to
        # Tensors the model learned: its initializers (PyTorch's parameters; Layerloom's own
        # constants are named "<node>/const_<n>"), and what is folded from them.
        self.learned = {i.name for i in model.graph.initializer if "/" not in i.name}
        self.opset = 17  # the opset the model is read at (17, or a newer one as written)

    def add_input(self, name: str, shape: list, ints: bool) -> None:
        node_id = self._id(name, "input")
        self.graph.add_node(Node(node_id, "Input", {"shape": shape,
                                                    "dtype": "int64" if ints else "float32"}))
        self.values[name] = (node_id, "y")
        self.shapes[(node_id, "y")] = (None, *shape)

    def _id(self, hint: str, stem: str) -> str:
        """``hint`` when it is a fresh identifier, else the stem numbered ("conv1")."""
        if hint.isidentifier() and not keyword.iskeyword(hint) and hint not in self.graph.nodes:
            return hint
        return self.graph.unique_id(stem)

    # ------------------------------------------------------------------------------ inputs
    def is_const(self, node, i: int) -> bool:
        return i < len(node.input) and node.input[i] in self.consts

    def const(self, node, i: int, what: str) -> np.ndarray | None:
        """Input ``i`` of ``node`` as a fixed constant; None when absent; refused when it is
        computed from the model's input or depends on the batch size."""
        if i >= len(node.input) or not node.input[i]:
            return None
        folded = self.consts.get(node.input[i])
        if folded is None:
            raise refused(node, f"its {what} is computed from the input, Layerloom needs it fixed")
        if not folded.fixed:
            raise refused(node, f"its {what} depends on the batch size")
        return folded.one

    def value(self, node, i: int = 0) -> tuple:
        name = node.input[i] if i < len(node.input) else ""
        if name not in self.values:
            what = "a constant" if name in self.consts else "missing"
            raise refused(node, f"input {i} ({name!r}) is {what}, Layerloom needs a layer's "
                                f"output there")
        return self.values[name]

    def shape(self, ref: tuple) -> tuple:
        return self.shapes[ref]

    # ------------------------------------------------------------------------------ output
    def add(self, node, type_id: str, attrs: dict, inputs: list, params: dict | None = None,
            ports: tuple = ("x",), bind: tuple | None = None, stem: str | None = None,
            frozen: bool = False) -> str:
        """A Layerloom node for ``node``: its attributes and shapes checked as the graph checks
        them, its output shapes checked against ONNX's. ``bind``: the ONNX tensor names its
        output ports stand for (default: the node's outputs; None entries stay unnamed)."""
        cls = LAYERS[type_id]
        try:
            a = cls.validate_attrs(attrs)
            out = cls.infer(a, *[self.shapes[ref] for ref in inputs])
        except (AttrError, ShapeError) as err:
            raise refused(node, f"as {type_id}: {err}") from None
        out_ports = cls.outputs_for(a)
        outs = (out,) if len(out_ports) == 1 else tuple(out)
        names = tuple(node.output) if bind is None else bind
        for name, shape in zip(names, outs):
            self._check_shape(node, type_id, name, shape)
        weight = next((n for n in node.input[1:] if n in self.consts), "")
        prefix = weight.rsplit(".", 1)[0] if "." in weight and params else ""
        node_id = self._id(prefix, stem or STEMS.get(type_id, type_id.lower()))
        self.graph.add_node(Node(node_id, type_id, dict(attrs), frozen=frozen))
        for port, src in zip(ports, inputs):
            self.graph.connect(src, (node_id, port))
        self._params(node, type_id, node_id, a, inputs, params or {})
        for port, name, shape in zip(out_ports, names, outs):
            self.shapes[(node_id, port)] = tuple(shape)
            if name:
                self.values[name] = (node_id, port)
        return node_id

    def _check_shape(self, node, type_id: str, name: str, shape: tuple) -> None:
        """Refuse a translation whose shape differs from the one ONNX infers (a rank, or a size
        after the batch)."""
        dims = self.onnx_shapes.get(name) if name else None
        if dims is None:
            return
        if len(dims) != len(shape) or any(d is not None and s is not None and d != s
                                          for d, s in zip(dims[1:], shape[1:])):
            want = "×".join("?" if d is None else str(d) for d in dims[1:]) or "scalar"
            raise refused(node, f"as {type_id} it would give {fmt_shape(shape)} per sample, the "
                                f"model says {want}")

    def _params(self, node, type_id, node_id, a, inputs, params: dict) -> None:
        """Store the parameters under the node's keys, each with the shape its layer makes."""
        wanted = LAYERS[type_id].init(a, tuple(self.shapes[r] for r in inputs),
                                      np.random.default_rng(0)) if params else {}
        for name, array in params.items():
            array = np.asarray(array)
            if name not in wanted or tuple(wanted[name].shape) != array.shape:
                raise refused(node, f"its {name} has shape {array.shape}, {type_id} needs "
                                    f"{tuple(wanted[name].shape) if name in wanted else 'none'}")
            self.params[f"{node_id}.{name}"] = np.asarray(array, dtype=np.float32)

    def parameter(self, node, name: str, rank: int) -> tuple:
        """The constant tensor ``name`` as a Parameter node that broadcasts against a value of
        ``rank`` dims (the batch included) as it did in the model; frozen unless the model
        learned it. Its output reference."""
        folded = self.consts[name]
        value = folded.one if folded.fixed else folded.per_sample()
        if value is None:
            raise refused(node, f"its constant operand {name!r} depends on the batch size")
        value = np.asarray(value)
        if value.ndim >= rank:
            if value.ndim > rank or value.shape[0] != 1:
                raise refused(node, f"its constant operand of shape {value.shape} has a batch "
                                    f"axis of its own")
            value = value[0]
        value = value.reshape((1,) * (rank - 1 - value.ndim) + value.shape)
        node_id = self.add(node, "Parameter", {"shape": list(value.shape)}, [],
                           {"value": value}, bind=("",), stem="parameter",
                           frozen=name not in self.learned)
        return (node_id, "y")

    def chain(self, node, type_id: str, attrs: dict, src: tuple, last: bool = False,
              ports: tuple = ("x",)) -> tuple:
        """One node of a several-node translation (an output-less helper unless ``last``): its
        output reference."""
        node_id = self.add(node, type_id, attrs, [src], ports=ports,
                           bind=None if last else ("",))
        return (node_id, LAYERS[type_id].outputs[0])

    def alias(self, node, src: str | None = None) -> None:
        """The output is the input (Identity, Dropout in inference)."""
        src = node.input[0] if src is None else src
        if src in self.consts:
            self.consts[node.output[0]] = self.consts[src]
        else:
            self.values[node.output[0]] = self.values[src]

    def lay_out(self) -> None:
        """Columns by depth from the inputs, one row per node in a column."""
        depth, rows = {}, Counter()
        for node_id in self.graph.topological_order():
            d = max((depth[e.src[0]] + 1 for e in self.graph.edges_into(node_id)), default=0)
            depth[node_id] = d
            self.graph.move(node_id, (240.0 * d, 130.0 * rows[d]))
            rows[d] += 1
