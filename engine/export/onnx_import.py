"""An ONNX model as a Layerloom graph with its weights: ``read_onnx(data) -> OnnxImport``.

The model is first upgraded to opset 17 by onnx's version converter (so old exports read like new
ones), its batch axis made symbolic, and its shapes inferred. Every tensor computable without the
input is folded to a constant (weights, Constant nodes, the shape arithmetic PyTorch writes
around Reshape and Expand: ``engine.export.onnx_fold``); known decompositions are put back
together (``onnx_patterns``: LayerNorm and GroupNorm as old opsets write them); every other
operator goes to its handler (``onnx_ops*`` modules), which adds Layerloom nodes checked as the
graph checks them. A constant input becomes a parameter in PyTorch's layout, so the weights load
unchanged. Anything else is refused in one line that names the operator, its node and the real
reason, before anything is opened. The graph comes without a loss or a Label: a person adds them
to train further. Node ids come from the parameter names when those are identifiers (a Layerloom
export round-trips to the same ids), else from the layer type.
"""
from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from layerloom.engine.export import (  # noqa: F401 (they register their handlers)
    onnx_import_conv, onnx_ops, onnx_ops_nn, onnx_ops_shape)
from layerloom.engine.export.onnx_checks import check_model
from layerloom.engine.export.onnx_fold import FoldError, Folded, evaluate, shape_of, upgrade
from layerloom.engine.export.onnx_patterns import rewrite
from layerloom.engine.export.onnx_reader import HANDLERS, OnnxImportError, Reader, refused
from layerloom.engine.files import read_regular
from layerloom.engine.graph import Graph
from layerloom.engine.spec import LayerloomError

__all__ = ["OnnxImport", "OnnxImportError", "graph_from_onnx", "graph_from_onnx_file", "read_onnx",
           "read_onnx_file"]

FLOATS = {1: "float32", 11: "float64", 10: "float16", 16: "bfloat16"}  # TensorProto codes


@dataclass(frozen=True)
class OnnxImport:
    """What an import gives: the graph, its weights, which node output each of the model's
    outputs became (``{onnx name: (node_id, port)}``), and notes a person should read (a float64
    model computed in float32, say)."""

    graph: Graph
    params: dict
    outputs: dict
    notes: tuple = ()


def graph_from_onnx(data: bytes) -> tuple[Graph, dict]:
    """The graph (positions laid out in columns by depth) and ``{"<node_id>.<param>": array}``."""
    result = read_onnx(data)
    return result.graph, result.params


def graph_from_onnx_file(path: str | PathLike) -> tuple[Graph, dict]:
    """``graph_from_onnx`` of a file: a regular file only, no larger than memory allows."""
    result = read_onnx_file(path)
    return result.graph, result.params


def read_onnx_file(path: str | PathLike) -> OnnxImport:
    """``read_onnx`` of a file (a regular file only); its errors name the file."""
    data = read_regular(path, OnnxImportError)  # its errors name the path already
    try:
        return read_onnx(data)
    except OnnxImportError as err:
        raise OnnxImportError(f"{Path(path).name}: {err}") from None


def read_onnx(data: bytes) -> OnnxImport:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise OnnxImportError("reading ONNX needs the onnx package: pip install onnx") from None
    model, declared, opset = _load(data, onnx)
    consts = {i.name: Folded.fixed_value(numpy_helper.to_array(i))
              for i in model.graph.initializer}
    reader = Reader(model, consts, _inferred_shapes(model), numpy_helper.to_array)
    reader.declared_batches, reader.opset = declared, opset
    for inp in model.graph.input:
        if inp.name not in consts:
            _input(reader, inp)
    _prefold(model, reader)
    for node in rewrite(list(model.graph.node), reader):
        _translate(reader, node, onnx)
    for out in model.graph.output:
        if out.name in reader.consts:  # a tensor of the model's own: a Parameter node
            constant = onnx.helper.make_node("Identity", [out.name], [out.name], name=out.name)
            reader.values[out.name] = reader.parameter(
                constant, out.name, len(reader.onnx_shapes.get(out.name) or [1]))
        if out.name not in reader.values:
            raise OnnxImportError(f"output {out.name!r} does not depend on the input; Layerloom "
                                  f"imports what a model computes from its input")
    reader.lay_out()
    outputs = {o.name: reader.values[o.name] for o in model.graph.output}
    return OnnxImport(reader.graph, reader.params, outputs, tuple(dict.fromkeys(reader.notes)))


def _load(data: bytes, onnx):
    try:
        model = onnx.load_from_string(data)
    except Exception as err:  # noqa: BLE001 (protobuf's decode errors have no common base)
        raise OnnxImportError(f"not a readable ONNX model ({type(err).__name__})") from None
    check_model(model, OnnxImportError)  # every constant's dims against its data, then the checker
    if not model.graph.node:
        raise OnnxImportError("the ONNX model has no operators")
    other = sorted({o.domain for o in model.opset_import} - {"", "ai.onnx"})
    if other:
        raise OnnxImportError(f"the model uses operators of domain {other[0]!r}; Layerloom reads "
                              f"standard ONNX operators only")
    try:
        model, opset = upgrade(model, onnx)
    except Exception as err:  # noqa: BLE001 (the converter raises RuntimeError and others)
        line = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise OnnxImportError(f"cannot upgrade the model to opset 17: {line}") from None
    initialized, declared = {i.name for i in model.graph.initializer}, set()
    for value in (*model.graph.input, *model.graph.output):  # the batch is whatever is fed
        dims = value.type.tensor_type.shape.dim
        if value.name not in initialized and len(dims):
            if dims[0].HasField("dim_value"):
                declared.add(dims[0].dim_value)
            dims[0].Clear()
            dims[0].dim_param = "batch"
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True), declared, opset
    except Exception as err:  # noqa: BLE001 (onnx raises its C++ errors under several names)
        raise OnnxImportError(f"ONNX shape inference fails on it ({type(err).__name__})") from None


def _inferred_shapes(model) -> dict:
    """Tensor name -> dims (an int, or None where unknown or symbolic) from shape inference."""
    out = {}
    for v in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        t = v.type.tensor_type
        if t.HasField("shape"):
            out[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return out


def _input(reader: Reader, inp) -> None:
    t = inp.type.tensor_type
    dims = t.shape.dim
    shape = [d.dim_value for d in dims[1:]]
    if not dims or not all(shape):
        raise OnnxImportError(f"input {inp.name!r}: every size but the batch must be fixed")
    ints = t.elem_type in (6, 7)  # INT32, INT64: token ids
    if not ints and t.elem_type not in FLOATS:
        raise OnnxImportError(f"input {inp.name!r}: Layerloom reads float or integer inputs")
    if FLOATS.get(t.elem_type, "float32") != "float32":
        reader.notes.append(f"the model computes in {FLOATS[t.elem_type]}; Layerloom imported it "
                            f"as float32 (weights converted)")
    reader.add_input(inp.name, shape, ints)


def _prefold(model, reader: Reader) -> None:
    """Fold what is constant before the patterns look (they read weights and eps values), using
    ONNX's inferred shapes for ``Shape``; what fails here is tried again, and refused with its
    reason, in translation."""
    for node in model.graph.node:
        try:
            if node.op_type == "Shape" and node.input[0] not in reader.consts:
                dims = reader.onnx_shapes.get(node.input[0])
                if dims is None or node.input[0] not in reader.values:
                    continue
                _fold_shape(reader, node, (None, *dims[1:]))
            elif all(name in reader.consts for name in node.input if name):
                _fold(reader, node)
        except (FoldError, OnnxImportError):
            continue


def _fold(reader: Reader, node) -> None:
    inputs = [reader.consts[name] if name else None for name in node.input]
    learned = any(name in reader.learned for name in node.input)
    for name, value in zip(node.output, evaluate(node, inputs, reader.opset)):
        reader.consts[name] = value
        if learned:  # a transposed or reshaped weight is still the model's weight
            reader.learned.add(name)


def _fold_shape(reader: Reader, node, shape: tuple) -> None:
    """``Shape`` (with its start/end) of a value whose shape is known but for the batch."""
    full = shape_of(shape)
    start = next((a.i for a in node.attribute if a.name == "start"), 0)
    end = next((a.i for a in node.attribute if a.name == "end"), None)
    reader.consts[node.output[0]] = Folded(full.one[start:end], full.two[start:end])


def _translate(reader: Reader, node, onnx) -> None:
    if node.output and all(name in reader.consts for name in node.output if name):
        return  # folded before
    try:
        if node.op_type == "Shape" and node.input[0] in reader.values:
            _fold_shape(reader, node, reader.shape(reader.values[node.input[0]]))
            return
        if all(name in reader.consts for name in node.input if name):
            _fold(reader, node)
            return
    except FoldError as err:
        raise refused(node, f"cannot compute its constant value ({err})") from None
    handler = HANDLERS.get(node.op_type)
    if handler is None:
        known = ", ".join(sorted(op for op in HANDLERS if "." not in op))
        raise refused(node, f"no Layerloom layer computes it (Layerloom reads {known})")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    try:
        handler(reader, node, attrs)
    except OnnxImportError:
        raise
    except (LayerloomError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, ZeroDivisionError) as err:  # a malformed node: missing inputs, odd shapes
        raise refused(node, f"malformed ({type(err).__name__}: {err})") from None
