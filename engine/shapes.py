"""Shape inference over a whole graph: a shape per output port and at most one error per node.

Runs on every edit (the canvas colours nodes from it), so it never raises: problems are data.
A node downstream of a failed node is skipped silently: only the root cause turns red.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from layerloom.engine.graph import Graph, GraphError, PortRef
from layerloom.engine.registry import LAYERS
from layerloom.engine.spec import AttrValues, LayerloomError, Shape, ShapeError


@dataclass
class ShapeReport:
    shapes: dict = field(default_factory=dict)  # (node_id, port) -> shape (batch first, None)
    errors: dict = field(default_factory=dict)  # node_id -> one-line message
    fixes: dict = field(default_factory=dict)  # node_id -> layer type to insert before it
    in_shapes: dict = field(default_factory=dict)  # node_id -> tuple of input shapes

    @property
    def ok(self) -> bool:
        return not self.errors


def missing_inputs(graph: Graph, node_id: str) -> list[str]:
    cls = graph.layer(node_id)
    return [p for p in cls.inputs
            if p not in cls.optional_inputs and graph.edge_into((node_id, p)) is None]


def infer_shapes(graph: Graph) -> ShapeReport:
    report = ShapeReport()
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
        report.in_shapes[node_id] = tuple(shapes)
        for port, shape in zip(cls.outputs, outs):
            report.shapes[(node_id, port)] = tuple(shape)
    return report


def param_counts(graph: Graph, report: ShapeReport | None = None) -> dict[str, int]:
    """Parameters per node (0 for nodes whose shapes are unknown), from each layer's init."""
    report = report or infer_shapes(graph)
    rng = np.random.default_rng(0)
    counts = {}
    for node_id, node in graph.nodes.items():
        if node_id not in report.in_shapes:
            counts[node_id] = 0
            continue
        cls = LAYERS[node.type]
        params = cls.init(AttrValues(node.attrs), report.in_shapes[node_id], rng)
        counts[node_id] = int(sum(np.size(v) for v in params.values()))
    return counts


def port_shape(report: ShapeReport, ref: PortRef) -> Shape | None:
    return report.shapes.get(tuple(ref))
