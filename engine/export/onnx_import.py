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
    onnx_ops, onnx_ops_conv, onnx_ops_nn, onnx_ops_shape)
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
    for name, value in zip(node.output, evaluate(node, inputs, reader.opset)):
        reader.consts[name] = value


def _fold_shape(reader: Reader, node, shape: tuple) -> None:
    """``Shape`` (with its start/end) of a value whose shape is known but for the batch."""
    full = shape_of(shape)
    start = next((a.i for a in node.attribute if a.name == "start"), 0)
    end = next((a.i for a in node.attribute if a.name == "end"), None)
    reader.consts[node.output[0]] = Folded(full.one[start:end], full.two[start:end])


<<<<<<< HEAD
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
=======
def _gemm(r: _Reader, node, a: dict) -> None:
    w, b = r.const(node, 1, "weight"), r.const(node, 2, "bias")
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
        raise _refused(node, "only y = x·Bᵀ + c (or x·B + c) is supported")
    w = w if a.get("transB", 0) else w.T
    if b is not None and b.shape != (w.shape[0],):
        raise _refused(node, "the bias must hold one value per output")
    params = {"weight": w} if b is None else {"weight": w, "bias": b}
    r.add(node, "Dense", {"out_features": w.shape[0], "bias": b is not None},
          [r.value(node)], params)


def _matmul(r: _Reader, node, a: dict) -> None:
    w = r.const(node, 1, "weight")
    r.add(node, "Dense", {"out_features": w.shape[1], "bias": False}, [r.value(node)],
          {"weight": w.T})


def _add(r: _Reader, node, a: dict) -> None:
    names = list(node.input)
    if all(n in r.values for n in names):
        r.add(node, "Add", {}, [r.values[n] for n in names], ports=("a", "b"))
        return
    src = next((n for n in names if n in r.values), None)
    bias = next((r.consts[n] for n in names if n in r.consts), None)
    dense = r.values.get(src, (None,))[0] if src else None
    fits = (dense is not None and r.graph.nodes[dense].type == "Dense"
            and not r.graph.nodes[dense].attrs["bias"] and r.uses[src] == 1
            and bias.shape == (r.graph.nodes[dense].attrs["out_features"],))
    if not fits:
        raise _refused(node, "a constant is added only as the bias of a MatMul just before it")
    r.graph.set_attr(dense, "bias", True)  # MatMul then Add: one Dense with a bias
    r.params[f"{dense}.bias"] = np.asarray(bias, dtype=np.float32)
    r.values[node.output[0]] = (dense, "y")


def _pool(type_id: str):
    def read(r: _Reader, node, a: dict) -> None:
        kernel, pads = list(a["kernel_shape"]), _pads(node, a)
        if len(kernel) != 2 or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations",
                                                                                 [1, 1])):
            raise _refused(node, "only 2-D pooling without ceil mode or dilation is supported")
        if type_id == "AvgPool2D" and any(pads) and not a.get("count_include_pad", 0):
            raise _refused(node, "padding must count in the mean")
        r.add(node, type_id, {"kernel_size": kernel, "stride": list(a.get("strides", [1, 1])),
                              "padding": pads}, [r.value(node)])
    return read


def _reshape(r: _Reader, node, a: dict) -> None:
    shape = [int(d) for d in r.const(node, 1, "shape")]
    rest = shape[1:]
    if not rest or 0 in rest or (shape[0] == -1 and -1 in rest):
        raise _refused(node, f"only a reshape that keeps the batch first is supported "
                             f"(got {shape})")
    r.add(node, "Reshape", {"shape": rest}, [r.value(node)])


def _batch_norm(r: _Reader, node, a: dict) -> None:
    scale, shift, mean, var = (r.const(node, i, what) for i, what in
                               enumerate(("scale", "bias", "mean", "variance"), 1))
    rank = r.ranks.get(node.input[0], 4)
    r.add(node, "BatchNorm2d" if rank == 4 else "BatchNorm1d",
          {"eps": float(a.get("epsilon", 1e-5)),  # ONNX keeps the old statistics' share
           "momentum": round(1.0 - float(a.get("momentum", 0.9)), 12)},
          [r.value(node)], {"weight": scale, "bias": shift, "running_mean": mean,
                            "running_var": var})


def _layer_norm(r: _Reader, node, a: dict) -> None:
    scale, shift = r.const(node, 1, "scale"), r.const(node, 2, "bias")
    rank = r.ranks.get(node.input[0])
    if a.get("axis", -1) not in (-1, (rank or 0) - 1):
        raise _refused(node, "only over the last axis")
    params = {"weight": scale} if shift is None else {"weight": scale, "bias": shift}
    r.add(node, "LayerNorm", {"eps": float(a.get("epsilon", 1e-5)), "bias": shift is not None},
          [r.value(node)], params)


def _gather(r: _Reader, node, a: dict) -> None:
    if node.input[0] in r.consts and node.input[1] in r.values and a.get("axis", 0) == 0:
        w = r.consts[node.input[0]]  # a table looked up by token ids: an embedding
        r.add(node, "Embedding", {"num_embeddings": w.shape[0], "embedding_dim": w.shape[1]},
              [r.values[node.input[1]]], {"weight": w})
        return
    index = r.consts.get(node.input[1])
    if index is None or index.shape != () or int(index) != -1 or a.get("axis", 0) != 1:
        raise _refused(node, "only an embedding lookup or the last step of a sequence is "
                             "supported")
    r.add(node, "TakeLast", {}, [r.value(node)])


def _reduce_mean(r: _Reader, node, a: dict) -> None:
    axes = list(a.get("axes", []))
    if len(node.input) > 1:
        axes = [int(v) for v in r.const(node, 1, "axes")]
    if axes != [1] or a.get("keepdims", 1):
        raise _refused(node, "only the mean over the steps (axis 1, dropped) is supported")
    r.add(node, "MeanPool", {}, [r.value(node)])


def _simple(type_id: str, **attr_map):
    def read(r: _Reader, node, a: dict) -> None:
        attrs = {ours: cast(a.get(theirs, default)) for ours, (theirs, default, cast)
                 in attr_map.items()}
        r.add(node, type_id, attrs, [r.value(node)])
    return read


def _constant(r: _Reader, node, a: dict) -> None:
    r.consts[node.output[0]] = r.to_array(a["value"]) if "value" in a else np.asarray(
        next(iter(a.values())))


def _transpose(r: _Reader, node, a: dict) -> None:
    w = r.const(node, 0, "input")  # a transposed weight (Layerloom writes x·Wᵀ as MatMul)
    r.consts[node.output[0]] = np.transpose(w, a.get("perm"))


def _flatten(r: _Reader, node, a: dict) -> None:
    if a.get("axis", 1) != 1:
        raise _refused(node, "only flattening after the batch axis")
    r.add(node, "Flatten", {}, [r.value(node)])


def _concat(r: _Reader, node, a: dict) -> None:
    if len(node.input) != 2:
        raise _refused(node, "only two inputs are supported")
    r.add(node, "Concat", {"dim": int(a["axis"])}, [r.value(node, 0), r.value(node, 1)],
          ports=("a", "b"))


HANDLERS = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Add": _add, "Reshape": _reshape,
    "MaxPool": _pool("MaxPool2D"), "AveragePool": _pool("AvgPool2D"), "Flatten": _flatten,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm, "Gather": _gather,
    "ReduceMean": _reduce_mean, "Concat": _concat, "Constant": _constant,
    "Transpose": _transpose, "Identity": lambda r, n, a: r.alias(n),
    "Dropout": lambda r, n, a: r.alias(n),  # inference: its input passes through
    "Relu": _simple("ReLU"), "Sigmoid": _simple("Sigmoid"), "Tanh": _simple("Tanh"),
    "LeakyRelu": _simple("LeakyReLU", negative_slope=("alpha", 0.01, float)),
    "Softmax": _simple("Softmax", dim=("axis", -1, int)),
}


# Convolution, pooling, padding and resampling operators read in their own module.
from layerloom.engine.export import onnx_import_conv  # noqa: E402  (after the names it uses)

HANDLERS.update(onnx_import_conv.HANDLERS)
STEMS.update(onnx_import_conv.STEMS)
READS = f"{READS}, {onnx_import_conv.READS}"
>>>>>>> main
