"""Model-level checks on an ONNX file before any of its tensors becomes a numpy array.

Whatever operators the importer reads, every constant tensor of a model (initializers, and the
tensors in node attributes such as Constant's ``value``, in subgraphs too) must be numeric, stored
inside the file (external data would make Layerloom read another file a model names), and hold
exactly the values its ``dims`` claim: ``numpy_helper.to_array`` trusts the dims and fails with
``cannot reshape`` (or allocates what they claim) otherwise. The onnx checker then checks the
model's structure. Each refusal is one ``OnnxImportError`` line naming the tensor.
"""
from __future__ import annotations

import math
from typing import Iterator

from layerloom.engine.files import memory_cap, size_text

# ONNX data type -> (bytes per value, the typed field that holds the values when raw_data does not)
NUMERIC = {1: (4, "float_data"), 2: (1, "int32_data"), 3: (1, "int32_data"),
           4: (2, "int32_data"), 5: (2, "int32_data"), 6: (4, "int32_data"),
           7: (8, "int64_data"), 9: (1, "int32_data"), 10: (2, "int32_data"),
           11: (8, "double_data"), 12: (4, "uint64_data"), 13: (8, "uint64_data"),
           16: (2, "int32_data")}
MAX_DIMS = 64


def check_model(model, error: type[Exception]) -> None:
    """Raise ``error`` for the first constant tensor that is not plain numbers matching its
    dims, then for anything the onnx checker refuses."""
    import onnx

    if len(model.graph.sparse_initializer):
        raise error("sparse initializers are not supported")
    total = 0
    try:
        for where, tensor in _tensors(model.graph, "initializer"):
            total += check_tensor(tensor, where, error)
    except UnicodeError:  # protobuf decodes names lazily: text that is not UTF-8 fails here
        raise error("a name in the model is not UTF-8 text") from None
    if total > memory_cap():
        raise error(f"its constants take {size_text(total)}, more than this machine can hold")
    # The checker wants a shape on every graph input and output; exporters may leave one out
    # (rank unknown), which the importer does not need: give it an empty one for the check only.
    bare = [v.type.tensor_type for v in (*model.graph.input, *model.graph.output)
            if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape")]
    try:
        for tensor_type in bare:
            tensor_type.shape.SetInParent()
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else "invalid"
        raise error(f"the onnx checker refuses the model: {first}") from None
    except Exception as err:  # noqa: BLE001 (its C++ side also fails as UnicodeDecodeError, ...)
        raise error(f"the onnx checker refuses the model ({type(err).__name__})") from None
    finally:
        for tensor_type in bare:
            tensor_type.ClearField("shape")


def _tensors(graph, what: str) -> Iterator[tuple[str, object]]:
    """(description, TensorProto) of every constant in ``graph`` and its subgraphs."""
    for tensor in graph.initializer:
        yield f"{what} {_name(tensor.name)}", tensor
    for node in graph.node:
        label = f"node {_name(node.name or (node.output[0] if node.output else node.op_type))}"
        for attr in node.attribute:
            if attr.HasField("t"):
                yield f"{label} attribute {attr.name}", attr.t
            for tensor in attr.tensors:
                yield f"{label} attribute {attr.name}", tensor
            if attr.HasField("sparse_tensor") or len(attr.sparse_tensors):
                yield f"{label} attribute {attr.name}", None
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub, f"{label} subgraph initializer")


def _name(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def check_tensor(tensor, where: str, error: type[Exception]) -> int:
    """The bytes ``tensor`` holds, after checking its type, dims and data agree."""
    if tensor is None:
        raise error(f"{where}: sparse tensors are not supported")
    if tensor.data_location == 1:  # TensorProto.EXTERNAL
        raise error(f"{where}: its data is in another file; Layerloom reads only models whose "
                    f"weights are inside the .onnx file")
    if tensor.HasField("segment"):
        raise error(f"{where}: segmented tensors are not supported")
    if tensor.data_type not in NUMERIC:
        raise error(f"{where}: data type {tensor.data_type} is not a number type Layerloom reads")
    dims = list(tensor.dims)
    if len(dims) > MAX_DIMS or any(d < 0 for d in dims):
        raise error(f"{where}: dims {dims[:8]} are not valid sizes")
    count = math.prod(dims)
    itemsize, field = NUMERIC[tensor.data_type]
    want = count * itemsize
    if want > memory_cap():
        raise error(f"{where}: dims {dims[:8]} claim {size_text(want)}, more than this "
                    f"machine can hold")
    if tensor.raw_data:
        held = len(tensor.raw_data)
        if held != want:
            raise error(f"{where}: dims {dims[:8]} need {want:,} bytes of data, the tensor "
                        f"holds {held:,}")
        return held
    held = len(getattr(tensor, field))
    if held != count:
        raise error(f"{where}: dims {dims[:8]} need {count:,} values, the tensor holds {held:,}")
    return want
