"""Shape inference over a whole graph: a shape per output port and at most one error per node.

Runs on every edit (the canvas colours nodes from it), so it never raises: problems are data.
A node downstream of a failed node is skipped silently: only the root cause turns red.

It also sizes the graph from shapes alone (each layer's ``param_shapes``, never its ``init``):
parameter counts and bytes per node, output bytes at the batch size, and a node error when
training the graph would exceed the memory budget (``engine.budget``), so nothing is allocated
for a graph that cannot fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from layerloom.engine import budget as mem
from layerloom.engine.graph import Graph, GraphError, PortRef
from layerloom.engine.registry import LAYERS
from layerloom.engine.spec import AttrValues, LayerloomError, Shape, ShapeError

DEFAULT_BATCH = 64  # TrainConfig's default batch size, for a report that is not told one


def batch_size_of(training: dict) -> int:
    """The batch size a project's training settings name, or the default when they name none
    (or a value its checks will refuse): what the memory estimate is made for."""
    value = training.get("batch_size", DEFAULT_BATCH) if isinstance(training, dict) else None
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2**31
    return value if ok else DEFAULT_BATCH


@dataclass
class ShapeReport:
    shapes: dict = field(default_factory=dict)  # (node_id, port) -> shape (batch first, None)
    errors: dict = field(default_factory=dict)  # node_id -> one-line message
    fixes: dict = field(default_factory=dict)  # node_id -> layer type to insert before it
    in_shapes: dict = field(default_factory=dict)  # node_id -> tuple of input shapes
    params: dict = field(default_factory=dict)  # node_id -> {param name: shape}
    param_counts: dict = field(default_factory=dict)  # node_id -> number of parameters
    param_bytes: dict = field(default_factory=dict)  # node_id -> bytes of its parameters
    activation_bytes: dict = field(default_factory=dict)  # node_id -> its outputs at the batch
    batch_size: int = DEFAULT_BATCH
    budget: int = 0  # bytes; 0 when not checked
    itemsize: int = 4  # bytes per value (float32)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def training_bytes(self) -> int:
        """What training the graph would hold: parameters with their gradients, optimiser
        state and last good copy, outputs with their gradients."""
        return (mem.PARAM_COPIES * sum(self.param_bytes.values())
                + mem.ACTIVATION_COPIES * sum(self.activation_bytes.values()))


def missing_inputs(graph: Graph, node_id: str) -> list[str]:
    cls = graph.layer(node_id)
    return [p for p in cls.inputs
            if p not in cls.optional_inputs and graph.edge_into((node_id, p)) is None]


def infer_shapes(graph: Graph, batch_size: int = DEFAULT_BATCH, budget: int | None = None,
                 itemsize: int = 4) -> ShapeReport:
    """Shapes, sizes and errors of every node; ``budget`` in bytes (default: the memory budget
    setting) is checked for training at ``batch_size`` with values of ``itemsize`` bytes."""
    report = ShapeReport(batch_size=int(batch_size), itemsize=int(itemsize),
                         budget=mem.memory_budget() if budget is None else int(budget))
    try:
        order = graph.topological_order()
    except GraphError as err:
        for n in graph.nodes:
            report.errors[n] = str(err)
        return report
    for node_id in order:
        node = graph.nodes[node_id]
        cls = LAYERS[node.type]
        missing = missing_inputs(graph, node_id)
        if missing:
            report.errors[node_id] = f"{node.type} {node_id!r}: input {missing[0]!r} is not connected"
            continue
        shapes, upstream_failed = [], False
        for port in cls.inputs:
            edge = graph.edge_into((node_id, port))
            if edge is None:
                shapes.append(None)
            elif edge.src in report.shapes:
                shapes.append(report.shapes[edge.src])
            else:
                upstream_failed = True
        if upstream_failed:
            continue
        try:
            out = cls.infer(AttrValues(node.attrs), *shapes)
        except ShapeError as err:
            report.errors[node_id] = f"{node.type} {node_id!r}: {err}"
            if err.fix:
                report.fixes[node_id] = err.fix
            continue
        except LayerloomError as err:
            report.errors[node_id] = f"{node.type} {node_id!r}: {err}"
            continue
        outs = (out,) if len(cls.outputs) == 1 else tuple(out)
        problem = _size_node(report, node_id, cls, AttrValues(node.attrs), tuple(shapes), outs)
        if problem:
            report.errors[node_id] = f"{node.type} {node_id!r}: {problem}"
            continue
        report.in_shapes[node_id] = tuple(shapes)
        for port, shape in zip(cls.outputs, outs):
            report.shapes[(node_id, port)] = tuple(shape)
    _check_budget(graph, report)
    return report


def _size_node(report: ShapeReport, node_id: str, cls, a: AttrValues, in_shapes: tuple,
               outs: tuple) -> str | None:
    """Record the node's parameter shapes and bytes; a problem with them as one line, or None."""
    for port, shape in zip(cls.outputs, outs):
        if not mem.valid_dims(tuple(shape) if isinstance(shape, (tuple, list)) else shape):
            return (f"output {port!r} would be {_shape_text(shape)}: beyond what any memory "
                    f"holds (at most {mem.MAX_ELEMENTS:,} values per sample)")
    try:
        params = {name: tuple(dims) for name, dims in cls.param_shapes(a, in_shapes).items()}
    except LayerloomError as err:
        return str(err)
    for name, dims in params.items():
        if not mem.valid_dims(dims) or None in dims:
            return f"parameter {name!r} would be {_shape_text(dims)}: beyond what any memory holds"
    counts = sum(mem.count(d) for d in params.values())
    report.params[node_id], report.param_counts[node_id] = params, counts
    report.param_bytes[node_id] = counts * report.itemsize
    report.activation_bytes[node_id] = report.itemsize * sum(
        mem.count(report.batch_size if d is None else d for d in shape) for shape in outs)
    return None


def _shape_text(shape) -> str:
    try:
        return mem.fmt_dims([d for d in shape if d is not None])
    except (TypeError, ValueError):
        return repr(shape)[:40]


def _check_budget(graph: Graph, report: ShapeReport) -> None:
    """Over budget: one error, on the node that needs the most, naming its size and the graph's."""
    need = report.training_bytes
    if not report.budget or need <= report.budget:
        return
    def footprint(n: str) -> int:  # noqa: E306
        return (mem.PARAM_COPIES * report.param_bytes[n]
                + mem.ACTIVATION_COPIES * report.activation_bytes[n])
    node_id = max(report.param_bytes, key=footprint)
    node = graph.nodes[node_id]
    if mem.PARAM_COPIES * report.param_bytes[node_id] >= mem.ACTIVATION_COPIES * report.activation_bytes[node_id]:
        name, dims = max(report.params[node_id].items(), key=lambda kv: mem.count(kv[1]))
        what = f"{name} {mem.fmt_dims(dims)} = {mem.fmt_bytes(mem.count(dims) * report.itemsize)}"
    else:
        shape = report.shapes.get((node_id, LAYERS[node.type].outputs[0])) or ()
        what = (f"output {_shape_text(shape[1:])} at batch {report.batch_size} = "
                f"{mem.fmt_bytes(report.activation_bytes[node_id])}")
    report.errors[node_id] = (f"{node.type} {node_id!r}: {what}; training needs about "
                              f"{mem.fmt_bytes(need)}, over the memory budget of "
                              f"{mem.fmt_bytes(report.budget)}")


def param_counts(graph: Graph, report: ShapeReport | None = None) -> dict[str, int]:
    """Parameters per node (0 for nodes whose shapes are unknown), from the declared parameter
    shapes: nothing is allocated, however large a layer is made."""
    report = report or infer_shapes(graph)
    return {node_id: report.param_counts.get(node_id, 0) for node_id in graph.nodes}


def port_shape(report: ShapeReport, ref: PortRef) -> Shape | None:
    return report.shapes.get(tuple(ref))
