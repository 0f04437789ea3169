"""Shape inference over a whole graph: a shape per output port and at most one error per node.

Runs on every edit (the canvas colours nodes from it), so it never raises: problems are data.
A node downstream of a failed node is skipped silently: only the root cause turns red.

A block instance is inferred by inferring its definition with the instance's input shapes (once:
the copies of a repeated block all see the same shapes, which the repeat rule enforces); a problem
inside is the instance's error, named by its path (``enc.0.attn: ...``), and the definition's own
report is kept in ``inner`` for the canvas that shows the block opened in place.

It also sizes the graph from shapes alone (each layer's ``param_shapes``, never its ``init``):
parameter counts and bytes per node, output bytes at the batch size, and a node error when
training the graph would exceed the memory budget (``engine.budget``), so nothing is allocated
for a graph that cannot fit. Blocks nested and repeated beyond what could be expanded are refused
before they are walked (``engine.budget.block_sizes``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from layerloom.engine import budget as mem
from layerloom.engine.block_types import BLOCK, BLOCK_INPUT, BLOCK_OUTPUT
from layerloom.engine.graph import Graph, GraphError, Node, PortRef
from layerloom.engine.registry import get
from layerloom.engine.spec import AttrValues, LayerloomError, Shape, ShapeError, fmt_shape

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
    inner: dict = field(default_factory=dict)  # block node_id -> its definition's ShapeReport
    results: dict = field(default_factory=dict)  # BlockOutput node_id -> the shape it gives out
    params: dict = field(default_factory=dict)  # node_id -> {param name: shape} (layers only)
    param_counts: dict = field(default_factory=dict)  # node_id -> parameters (a block: all copies)
    param_bytes: dict = field(default_factory=dict)  # node_id -> bytes of those parameters
    activation_bytes: dict = field(default_factory=dict)  # node_id -> its outputs at the batch
    batch_size: int = DEFAULT_BATCH
    budget: int = 0  # bytes; 0 when not checked (a block definition's own report)
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
    return [p for p in graph.input_ports(node_id)
            if p not in cls.optional_inputs and graph.edge_into((node_id, p)) is None]


def infer_shapes(graph: Graph, batch_size: int = DEFAULT_BATCH, budget: int | None = None,
                 itemsize: int = 4, *, inputs: dict | None = None, path: str = "") -> ShapeReport:
    """Shapes, sizes and errors of ``graph``; ``budget`` in bytes (default: the memory budget
    setting) is checked for training at ``batch_size`` with values of ``itemsize`` bytes. For a
    block definition, ``inputs`` gives each BlockInput's shape and ``path`` ("enc.0.") names its
    nodes in messages."""
    report = ShapeReport(batch_size=int(batch_size), itemsize=int(itemsize),
                         budget=mem.memory_budget() if budget is None else int(budget))
    try:
        order = graph.topological_order()
    except GraphError as err:
        for n in graph.nodes:
            report.errors[n] = str(err)
        return report
    too_big = mem.oversized_blocks(graph) if not path else {}
    for node_id in order:
        node = graph.nodes[node_id]
        cls = get(node.type)
        name = f"{path}{node_id}" if path else f"{node.type} {node_id!r}"
        missing = missing_inputs(graph, node_id)
        if missing:
            report.errors[node_id] = f"{name}: input {missing[0]!r} is not connected"
            continue
        if node_id in too_big:
            report.errors[node_id] = f"{name}: {too_big[node_id]}"
            continue
        shapes, upstream_failed = [], False
        for port in graph.input_ports(node_id):
            edge = graph.edge_into((node_id, port))
            if edge is None:
                shapes.append(None)
            elif edge.src in report.shapes:
                shapes.append(report.shapes[edge.src])
            else:
                upstream_failed = True
        if upstream_failed or (node.type == BLOCK_INPUT and (inputs or {}).get(node_id) is None):
            continue  # a definition shown on its own has no input shapes: nothing to say
        if node.type in (BLOCK_INPUT, BLOCK_OUTPUT):
            report.in_shapes[node_id] = tuple(shapes)
            if node.type == BLOCK_INPUT:
                report.shapes[(node_id, "y")] = tuple(inputs[node_id])
            else:
                report.results[node_id] = shapes[0]
            continue
        try:
            if node.type == BLOCK:
                outs = _infer_block(graph, node, shapes, path, report)
            else:
                out = cls.infer(AttrValues(node.attrs), *shapes)
                ports = graph.output_ports(node_id)
                outs = (out,) if len(ports) == 1 else tuple(out)
                problem = _size_node(report, node_id, cls, AttrValues(node.attrs), tuple(shapes),
                                     ports, outs)
                if problem:
                    raise LayerloomError(problem)
        except ShapeError as err:
            report.errors[node_id] = f"{name}: {err}"
            if err.fix:
                report.fixes[node_id] = err.fix
            continue
        except _Inner as err:
            report.errors[node_id] = str(err)
            continue
        except LayerloomError as err:
            report.errors[node_id] = f"{name}: {err}"
            continue
        report.in_shapes[node_id] = tuple(shapes)
        for port, shape in zip(graph.output_ports(node_id), outs):
            report.shapes[(node_id, port)] = tuple(shape)
    _check_budget(graph, report)
    return report


class _Inner(LayerloomError):
    """A problem inside a block: its message already names the path, so it is passed on as is."""


def _infer_block(graph: Graph, node: Node, shapes: list, path: str, report: ShapeReport) -> tuple:
    """The output shapes of a block instance, from its definition inferred with ``shapes``; its
    sizes are the definition's times the repeat."""
    definition, n = graph.blocks[node.attrs["block"]], node.attrs["repeat"]
    ins, outs = definition.port_nodes(BLOCK_INPUT), definition.port_nodes(BLOCK_OUTPUT)
    inner_path = f"{path}{node.id}." + ("0." if n > 1 else "")
    sub = report.inner[node.id] = infer_shapes(
        definition, report.batch_size, 0, report.itemsize, inputs=dict(zip(ins, shapes)),
        path=inner_path)
    if sub.errors:
        raise _Inner(next(iter(sub.errors.values())))
    results = tuple(sub.results[o] for o in outs)
    if n > 1 and (len(ins) != len(outs) or any(tuple(a) != tuple(b)
                                              for a, b in zip(shapes, results))):
        show = lambda ss: ", ".join(fmt_shape(s) for s in ss) or "nothing"  # noqa: E731
        raise ShapeError(f"repeat {n} feeds each copy's outputs into the next copy's inputs, so "
                         f"block {node.attrs['block']!r} must give what it takes: it takes "
                         f"{show(shapes)} and gives {show(results)} (set repeat to 1, or make "
                         f"its output match its input)")
    for mine, theirs in ((report.param_counts, sub.param_counts),
                         (report.param_bytes, sub.param_bytes),
                         (report.activation_bytes, sub.activation_bytes)):
        mine[node.id] = n * sum(theirs.values())
    return results


def _size_node(report: ShapeReport, node_id: str, cls, a: AttrValues, in_shapes: tuple,
               ports: tuple, outs: tuple) -> str | None:
    """Record a layer's parameter shapes and bytes; a problem with them as one line, or None."""
    for port, shape in zip(ports, outs):
        if not mem.valid_dims(tuple(shape) if isinstance(shape, (tuple, list)) else shape):
            return (f"output {port!r} would be {_shape_text(shape)}: beyond what any memory "
                    f"holds (at most {mem.MAX_ELEMENTS:,} values per sample)")
    if not cls.declares_params():
        return (f"the {cls.type_id} layer does not declare its parameter shapes (param_shapes), "
                f"so it cannot be sized before it allocates: a bug in the layer")
    params = {name: tuple(dims) for name, dims in cls.param_shapes(a, in_shapes).items()}
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

    def footprint(n: str) -> int:
        return (mem.PARAM_COPIES * report.param_bytes[n]
                + mem.ACTIVATION_COPIES * report.activation_bytes[n])
    node_id = max(report.param_bytes, key=footprint)
    node, pb, ab = graph.nodes[node_id], report.param_bytes[node_id], report.activation_bytes[node_id]
    if node.type == BLOCK:
        what = (f"block {node.attrs['block']!r} ×{node.attrs['repeat']}: parameters "
                f"{mem.fmt_bytes(pb)}, outputs at batch {report.batch_size:,} {mem.fmt_bytes(ab)}")
    elif mem.PARAM_COPIES * pb >= mem.ACTIVATION_COPIES * ab:
        name, dims = max(report.params[node_id].items(), key=lambda kv: mem.count(kv[1]))
        what = f"{name} {mem.fmt_dims(dims)} = {mem.fmt_bytes(mem.count(dims) * report.itemsize)}"
    else:
        shape = report.shapes.get((node_id, graph.output_ports(node_id)[0])) or ()
        what = f"output {_shape_text(shape[1:])} at batch {report.batch_size:,} = {mem.fmt_bytes(ab)}"
    report.errors[node_id] = (f"{node.type} {node_id!r}: {what}; training needs about "
                              f"{mem.fmt_bytes(need)}, over the memory budget of "
                              f"{mem.fmt_bytes(report.budget)}")


def param_counts(graph: Graph, report: ShapeReport | None = None) -> dict[str, int]:
    """Parameters per node (0 for nodes whose shapes are unknown; a block: all its copies), from
    the declared parameter shapes: nothing is allocated, however large a layer is made."""
    report = report or infer_shapes(graph)
    return {node_id: report.param_counts.get(node_id, 0) for node_id in graph.nodes}


def port_shape(report: ShapeReport, ref: PortRef) -> Shape | None:
    return report.shapes.get(tuple(ref))
