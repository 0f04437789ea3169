"""Shape inference over a whole graph: a shape per output port and at most one error per node.

Runs on every edit (the canvas colours nodes from it), so it never raises: problems are data.
A node downstream of a failed node is skipped silently: only the root cause turns red.

A block instance is inferred by inferring its definition with the instance's input shapes (once:
the copies of a repeated block all see the same shapes, which the repeat rule enforces); a problem
inside is the instance's error, named by its path (``enc.0.attn: ...``), and the definition's own
report is kept in ``inner`` for the canvas that shows the block opened in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from layerloom.engine.block_types import BLOCK, BLOCK_INPUT, BLOCK_OUTPUT
from layerloom.engine.graph import Graph, GraphError, Node, PortRef
from layerloom.engine.registry import get
from layerloom.engine.spec import AttrValues, LayerloomError, Shape, ShapeError, fmt_shape


@dataclass
class ShapeReport:
    shapes: dict = field(default_factory=dict)  # (node_id, port) -> shape (batch first, None)
    errors: dict = field(default_factory=dict)  # node_id -> one-line message
    fixes: dict = field(default_factory=dict)  # node_id -> layer type to insert before it
    in_shapes: dict = field(default_factory=dict)  # node_id -> tuple of input shapes
    inner: dict = field(default_factory=dict)  # block node_id -> its definition's ShapeReport
    results: dict = field(default_factory=dict)  # BlockOutput node_id -> the shape it gives out

    @property
    def ok(self) -> bool:
        return not self.errors


def missing_inputs(graph: Graph, node_id: str) -> list[str]:
    cls = graph.layer(node_id)
    return [p for p in graph.input_ports(node_id)
            if p not in cls.optional_inputs and graph.edge_into((node_id, p)) is None]


def infer_shapes(graph: Graph, inputs: dict | None = None, path: str = "") -> ShapeReport:
    """Shapes and errors of ``graph``; for a block definition, ``inputs`` gives each BlockInput's
    shape and ``path`` ("enc.0.") names its nodes in messages."""
    report = ShapeReport()
    try:
        order = graph.topological_order()
    except GraphError as err:
        for n in graph.nodes:
            report.errors[n] = str(err)
        return report
    for node_id in order:
        node = graph.nodes[node_id]
        cls = get(node.type)
        name = f"{path}{node_id}" if path else f"{node.type} {node_id!r}"
        missing = missing_inputs(graph, node_id)
        if missing:
            report.errors[node_id] = f"{name}: input {missing[0]!r} is not connected"
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
                outs = (out,) if len(graph.output_ports(node_id)) == 1 else tuple(out)
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
    return report


class _Inner(LayerloomError):
    """A problem inside a block: its message already names the path, so it is passed on as is."""


def _infer_block(graph: Graph, node: Node, shapes: list, path: str, report: ShapeReport) -> tuple:
    """The output shapes of a block instance, from its definition inferred with ``shapes``."""
    definition, n = graph.blocks[node.attrs["block"]], node.attrs["repeat"]
    ins, outs = definition.port_nodes(BLOCK_INPUT), definition.port_nodes(BLOCK_OUTPUT)
    inner_path = f"{path}{node.id}." + ("0." if n > 1 else "")
    sub = report.inner[node.id] = infer_shapes(definition, dict(zip(ins, shapes)), inner_path)
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
    return results


def param_counts(graph: Graph, report: ShapeReport | None = None) -> dict[str, int]:
    """Parameters per node (0 for nodes whose shapes are unknown), from each layer's init."""
    report = report or infer_shapes(graph)
    rng = np.random.default_rng(0)
    counts = {}
    for node_id, node in graph.nodes.items():
        if node_id not in report.in_shapes:
            counts[node_id] = 0
        elif node.type == BLOCK:
            inner = param_counts(graph.blocks[node.attrs["block"]], report.inner[node_id])
            counts[node_id] = sum(inner.values()) * node.attrs["repeat"]
        else:
            params = get(node.type).init(AttrValues(node.attrs), report.in_shapes[node_id], rng)
            counts[node_id] = int(sum(np.size(v) for v in params.values()))
    return counts


def port_shape(report: ShapeReport, ref: PortRef) -> Shape | None:
    return report.shapes.get(tuple(ref))
