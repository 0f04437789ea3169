"""A project is a graph plus training settings and a data source; this binds the data to the graph.

The graph's Input node declares the sample shape and its Label node the target kind. When a data
set is chosen, ``fit_graph_to_data`` sets both from the data (through ``Graph.set_attr``, so the
canvas follows and an undo can record it) and ``check_fit`` says, in one line, why the rest of the
graph cannot take that data. The CLI and the GUI both call these.
"""
from __future__ import annotations

from layerloom.engine.data import DataError, Dataset
from layerloom.engine.graph import Graph
from layerloom.engine.layers.io import source_nodes
from layerloom.engine.serialize import Project, load_project, save_project
from layerloom.engine.shapes import infer_shapes
from layerloom.engine.spec import fmt_shape

__all__ = ["Project", "load_project", "save_project", "fit_graph_to_data", "check_fit",
           "data_attrs", "planned_fit"]


def _one(graph: Graph, type_id: str) -> str:
    ids = source_nodes(graph, type_id)
    if len(ids) != 1:
        raise DataError(f"the graph needs exactly one {type_id} node to take the data, "
                        f"found {len(ids)}")
    return ids[0]


def data_attrs(dataset: Dataset) -> dict[str, dict]:
    """The attributes the Input and Label nodes need for this data: {"Input": {...}, "Label": {...}}."""
    x_int = dataset.train.x.dtype.kind in "iu"
    kind = "class index" if dataset.task == "classification" else "values"
    return {"Input": {"shape": tuple(dataset.sample_shape), "dtype": "int64" if x_int else "float32"},
            "Label": {"kind": kind, "shape": tuple(dataset.target_shape)}}


def planned_fit(graph: Graph, dataset: Dataset) -> list[tuple[str, str, object, object]]:
    """The attribute edits that fit the graph to the data, as (node_id, name, old, new), without
    making them: the GUI pushes each as an undoable command."""
    edits = []
    for type_id, wanted in data_attrs(dataset).items():
        node_id = _one(graph, type_id)
        for name, value in wanted.items():
            old = graph.nodes[node_id].attrs.get(name)
            if (tuple(old) if isinstance(old, (list, tuple)) else old) != value:
                edits.append((node_id, name, old, value))
    return edits


def fit_graph_to_data(graph: Graph, dataset: Dataset) -> list[str]:
    """Set the Input's shape/dtype and the Label's kind/shape from the data; returns what changed,
    one readable line per attribute ("Input 'image': shape 1×28×28 -> 2")."""
    changes = []
    for node_id, name, old, new in planned_fit(graph, dataset):
        graph.set_attr(node_id, name, new)
        show = (lambda v: fmt_shape(v) if name == "shape" else v)  # noqa: E731
        changes.append(f"{graph.nodes[node_id].type} {node_id!r}: {name} {show(old)} -> {show(new)}")
    return changes


def check_fit(graph: Graph, dataset: Dataset) -> None:
    """Raise a one-line DataError when the graph (already fitted) cannot train on ``dataset``."""
    report = infer_shapes(graph)
    sample = fmt_shape(dataset.sample_shape)
    own = [msg for node_id, msg in report.errors.items() if not _sees_data(graph, node_id)]
    if own:  # an unconnected input or a node off the data's path: not the data's fault
        raise DataError(f"the graph has a problem of its own, whatever the data: {own[0]}")
    if report.errors:
        first = next(iter(report.errors.values()))
        raise DataError(f"data {dataset.name!r} has samples of {sample}, which the graph cannot "
                        f"take: {first}")
    if dataset.task != "classification":
        return
    label = _one(graph, "Label")
    for edge in graph.edges:
        node = graph.nodes[edge.dst[0]]
        if node.type != "CrossEntropyLoss" or edge.dst[1] != "target" or edge.src[0] != label:
            continue
        logits = graph.edge_into((node.id, "input"))
        shape = report.shapes.get(tuple(logits.src)) if logits else None
        k = dataset.num_classes
        if k and shape and shape[-1] is not None and shape[-1] != k:
            raise DataError(f"{logits.src[0]!r} gives {shape[-1]} class scores but data "
                            f"{dataset.name!r} has {k} classes: make it output {k}")


def _sees_data(graph: Graph, node_id: str) -> bool:
    """The node's inputs are all connected and it lies downstream of an Input node: its shape
    error can come from the samples."""
    from layerloom.engine.shapes import missing_inputs

    if missing_inputs(graph, node_id):
        return False
    inputs = source_nodes(graph, "Input")
    return any(graph.reaches(i, node_id) for i in inputs)
