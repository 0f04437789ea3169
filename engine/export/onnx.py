"""A network as an ONNX model, for inference in other runtimes: ``onnx_bytes(net) -> bytes``.

The inference graph only: loss and label nodes are left out, dropout passes its input through,
batch norm uses its running statistics. The inputs are the Input nodes, named by their ids,
with a symbolic batch axis. The outputs are the values the losses read (for a graph without a
loss, every value no node reads), named by their node ("fc3", or "lstm.seq" for one of several
ports; "enc" for what leaves block instance ``enc``). A model with blocks is exported flat: the
layers inside an instance are ordinary nodes whose values and initializers carry their path
("enc.2.fc1.weight"). Each node's operators come from its layer's ``to_onnx`` through ``OnnxGraph``.
Parameters become initializers under their weights-file keys. Opset 17 is the first with
LayerNormalization. The ``onnx`` package is imported only here, when an export is asked for.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerloom.engine.export.onnx_graph import OnnxGraph
from layerloom.engine.export.outputs import ExportError, model_outputs
from layerloom.engine.network import Network

OPSET = 17


def onnx_bytes(net: Network, title: str = "layerloom", metadata: dict | None = None) -> bytes:
    """The serialized ModelProto of ``net`` with its current parameters, checked by onnx;
    ``metadata`` (str -> str) goes into the model's metadata_props (how inputs are prepared)."""
    plan = net.plan
    feeds = [Value((s.node_id, s.outputs[0]), s.node_id, s.layer.infer(s.attrs),
                   np.dtype(np.int64) if s.attrs.dtype == "int64" else net.dtype)
             for s in plan.steps if s.layer.type_id == "Input"]
    # (a loss reading the data itself has nothing to compute: its input is no output)
    outputs = [Value(ref, plan.public_name(ref), plan.shapes.shapes[ref], net.dtype)
               for ref in model_outputs(plan) if not plan.step(ref[0]).layer.is_source]
    return model_bytes(net, plan.steps, feeds, outputs, title, metadata)


@dataclass(frozen=True)
class Value:
    """A model input or output: the step output it is, its name, sample shape and type."""

    ref: tuple
    name: str
    shape: tuple  # with the batch axis first (its size is not used)
    dtype: np.dtype


def model_bytes(net: Network, steps, feeds: list, outputs: list, title: str,
                metadata: dict | None = None, full_check: bool = False) -> bytes:
    """A checked ModelProto computing ``outputs`` (Values) from ``feeds`` (Values given as the
    graph's inputs) through ``steps``, in run order; source and loss steps are skipped, and so
    is a step whose outputs are all fed. ``full_check`` also runs onnx's type inference (a
    model cut from a larger one: the types of the values that cross are checked)."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install onnx") from None
    g = OnnxGraph(net.params, net.dtype)
    names = {v.ref: v.name for v in feeds}
    for s in steps:
        if s.layer.is_source or s.layer.is_loss or all((s.node_id, p) in names
                                                        for p in s.outputs):
            continue
        g.node_id = s.node_id
        outs = s.layer.to_onnx(s.attrs, s.in_shapes, g,
                               *[names[r] if r is not None else "" for r in s.inputs])
        for port, name in zip(s.outputs, (outs,) if len(s.outputs) == 1 else outs):
            names.setdefault((s.node_id, port), name)
    nodes = [helper.make_node(op.op_type, list(op.inputs), list(op.outputs), **op.attrs)
             for op in g.ops]
    nodes += [helper.make_node("Identity", [names[v.ref]], [v.name]) for v in outputs]
    if not outputs:
        raise ExportError("the graph computes nothing to export: connect a layer after the Input")
    graph = helper.make_graph(
        nodes, title, [_value_info(helper, v.name, v.dtype, v.shape) for v in feeds],
        [_value_info(helper, v.name, v.dtype, v.shape) for v in outputs],
        [numpy_helper.from_array(v, name) for name, v in g.initializers.items()])
    model = helper.make_model(graph, producer_name="Layerloom",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    if metadata:
        helper.set_model_props(model, dict(metadata))
    try:
        onnx.checker.check_model(model, full_check=full_check)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ExportError(f"the ONNX checker refused the model: "  # a translation bug: one line
                          f"{str(err).strip().splitlines()[0]}") from None
    return model.SerializeToString()


def _value_info(helper, name: str, dtype, shape: tuple):
    """A typed input or output whose batch axis (and any unknown size) is symbolic."""
    from onnx import TensorProto

    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
            np.dtype(np.int64): TensorProto.INT64}[np.dtype(dtype)]
    dims = ["batch" if i == 0 else (d if d is not None else f"{name}_{i}")
            for i, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, elem, dims)
