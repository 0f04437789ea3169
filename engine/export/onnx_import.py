"""An ONNX model as a Layerloom graph with its weights: ``graph_from_onnx(data) -> (graph, params)``.

It reads the operators that a CNN or an MLP exported by PyTorch (or by Layerloom) is made of. A
constant input (an initializer, a Constant, or a Transpose of one) becomes a parameter in
PyTorch's layout, so the weights load unchanged. Anything else is refused in one line that names
the operator and its node, before anything is opened. The graph comes without a loss or a
Label: a person adds them to train further. Node ids come from the parameter names when those
are identifiers (a Layerloom export round-trips to the same ids), else from the layer type.
"""
from __future__ import annotations

import keyword
from collections import Counter
from os import PathLike
from pathlib import Path

import numpy as np

from layerloom.engine.export.onnx_checks import check_model
from layerloom.engine.export.onnx_errors import OnnxImportError
from layerloom.engine.export.onnx_errors import refused as _refused
from layerloom.engine.files import read_regular
from layerloom.engine.graph import Graph, Node
from layerloom.engine.spec import LayerloomError

READS = ("Conv, Gemm, MatMul (+ Add), Relu, LeakyRelu, Sigmoid, Tanh, Softmax, MaxPool, "
         "AveragePool, Flatten, Reshape, Add, Concat, BatchNormalization, LayerNormalization, "
         "Gather, ReduceMean, Dropout, Identity, Constant, Transpose of a constant")
STEMS = {"Conv2D": "conv", "Dense": "fc", "MaxPool2D": "pool", "AvgPool2D": "pool",
         "BatchNorm1d": "bn", "BatchNorm2d": "bn", "LayerNorm": "ln", "Embedding": "embed"}


def graph_from_onnx(data: bytes) -> tuple[Graph, dict]:
    """The graph (positions laid out in columns by depth) and ``{"<node_id>.<param>": array}``."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        raise OnnxImportError("reading ONNX needs the onnx package: pip install onnx") from None
    try:
        model = onnx.load_from_string(data)
    except Exception as err:  # noqa: BLE001 (protobuf's decode errors have no common base)
        raise OnnxImportError(f"not a readable ONNX model ({type(err).__name__})") from None
    check_model(model, OnnxImportError)  # every constant's dims against its data, then the checker
    try:
        model = shape_inference.infer_shapes(model)
    except Exception as err:  # noqa: BLE001 (onnx raises its C++ errors under several names)
        raise OnnxImportError(f"ONNX shape inference fails on it ({type(err).__name__})") from None
    if not model.graph.node:
        raise OnnxImportError("the ONNX model has no operators")
    reader = _Reader(model, numpy_helper)
    for node in model.graph.node:
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise _refused(node, f"Layerloom reads {READS}")
        try:
            handler(reader, node, _attrs(node, onnx))
        except OnnxImportError:
            raise
        except (LayerloomError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                OverflowError, ZeroDivisionError) as err:  # a malformed node: missing inputs, odd shapes
            raise _refused(node, f"malformed ({type(err).__name__}: {err})") from None
    reader.lay_out()
    return reader.graph, reader.params


def graph_from_onnx_file(path: str | PathLike) -> tuple[Graph, dict]:
    """``graph_from_onnx`` of a file: a regular file only, no larger than memory allows."""
    data = read_regular(path, OnnxImportError)  # its errors name the path already
    try:
        return graph_from_onnx(data)
    except OnnxImportError as err:
        raise OnnxImportError(f"{Path(path).name}: {err}") from None


def _attrs(node, onnx) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Reader:
    """The graph being built: which tensor names are constants and which are node outputs."""

    def __init__(self, model, numpy_helper):
        self.graph, self.params, self.to_array = Graph(), {}, numpy_helper.to_array
        self.consts = {i.name: self.to_array(i) for i in model.graph.initializer}
        self.values: dict = {}  # tensor name -> (node_id, port)
        self.uses = Counter(name for n in model.graph.node for name in n.input)
        self.ranks = {v.name: len(v.type.tensor_type.shape.dim)
                      for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)}
        for inp in model.graph.input:
            if inp.name not in self.consts:
                self._input(inp)

    def _input(self, inp) -> None:
        from onnx import TensorProto

        dims = inp.type.tensor_type.shape.dim
        shape = [d.dim_value for d in dims[1:]]
        if not dims or not all(shape):
            raise OnnxImportError(f"input {inp.name!r}: every size but the batch must be fixed")
        ints = inp.type.tensor_type.elem_type == TensorProto.INT64
        node_id = self._id(inp.name, "input")
        self.graph.add_node(Node(node_id, "Input", {"shape": shape,
                                                    "dtype": "int64" if ints else "float32"}))
        self.values[inp.name] = (node_id, "y")

    def _id(self, hint: str, stem: str) -> str:
        """``hint`` when it is a fresh identifier, else the stem numbered ("conv1")."""
        if hint.isidentifier() and not keyword.iskeyword(hint) and hint not in self.graph.nodes:
            return hint
        return self.graph.unique_id(stem)

    def const(self, node, i: int, what: str) -> np.ndarray | None:
        """Input ``i`` of ``node`` as a constant; None when absent; refused when computed."""
        if i >= len(node.input) or not node.input[i]:
            return None
        name = node.input[i]
        if name not in self.consts:
            raise _refused(node, f"its {what} is computed, Layerloom needs it fixed")
        return self.consts[name]

    def value(self, node, i: int = 0) -> tuple:
        name = node.input[i]
        if name not in self.values:
            raise _refused(node, f"input {name!r} is a constant, Layerloom needs a layer's "
                                 f"output")
        return self.values[name]

    def add(self, node, type_id: str, attrs: dict, inputs: list, params: dict | None = None,
            ports: tuple = ("x",)) -> str:
        """A Layerloom node for ``node``, named after its weight when that has a usable name."""
        weight = next((n for n in node.input[1:] if n in self.consts), "")
        prefix = weight.rsplit(".", 1)[0] if "." in weight else ""
        node_id = self._id(prefix, STEMS.get(type_id, type_id.lower()))
        self.graph.add_node(Node(node_id, type_id, attrs))
        for port, src in zip(ports, inputs):
            self.graph.connect(src, (node_id, port))
        for name, array in (params or {}).items():
            self.params[f"{node_id}.{name}"] = np.asarray(array, dtype=np.float32)
        self.values[node.output[0]] = (node_id, "y")
        return node_id

    def alias(self, node) -> None:
        """The output is the input (Identity, Dropout in inference)."""
        src = node.input[0]
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


def _pads(node, attrs: dict) -> list:
    """Symmetric [top, left] padding; refused otherwise."""
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or pads[:2] != pads[2:]:
        raise _refused(node, "only symmetric explicit padding is supported")
    return pads[:2]


def _conv(r: _Reader, node, a: dict) -> None:
    w, b = r.const(node, 1, "weight"), r.const(node, 2, "bias")
    if w.ndim != 4 or a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise _refused(node, "only 2-D convolutions without groups or dilation are supported")
    params = {"weight": w} if b is None else {"weight": w, "bias": b}
    r.add(node, "Conv2D", {"out_channels": w.shape[0], "kernel_size": list(w.shape[2:]),
                           "stride": list(a.get("strides", [1, 1])),
                           "padding": _pads(node, a), "bias": b is not None},
          [r.value(node)], params)


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
