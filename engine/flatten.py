"""A model with blocks as the flat list of layer nodes the plan runs.

Every block instance is expanded in place into the layers of its definition, once per copy of a
repeat, with dotted ids that are ``nn.Module`` paths: ``enc.attn`` for instance ``enc``,
``enc.2.attn`` for the third copy of a repeated one, ``enc.1.sub.conv`` for a block inside a
block. BlockInput and BlockOutput nodes vanish: an inner node reads the outer value that feeds
the port directly. So the executor, fusion and the exporters see plain layer nodes, and the
parameter keys (``"enc.2.attn.weight"``) are a PyTorch state_dict's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from layerloom.engine.block_types import BLOCK, BLOCK_INPUT, BLOCK_OUTPUT
from layerloom.engine.graph import Graph, Node
from layerloom.engine.shapes import ShapeReport


@dataclass(frozen=True)
class FlatNode:
    """One layer node of the expanded model."""

    id: str  # dotted path; a node of the model itself keeps its own id
    node: Node  # the node in its graph (type, attributes)
    inputs: tuple  # per input port, the (flat id, port) feeding it, or None
    in_shapes: tuple
    frozen: bool  # the node, or a block instance around it, is frozen


@dataclass
class Flat:
    nodes: list = field(default_factory=list)  # FlatNode, in an order that runs
    shapes: dict = field(default_factory=dict)  # (flat id, port) -> shape
    # (instance path, port) -> the flat value leaving that port of a block instance
    aliases: dict = field(default_factory=dict)
    # path prefix of a level ("", "enc.", "enc.0.") -> {(node id, port) there: flat value}
    levels: dict = field(default_factory=dict)


def flatten(graph: Graph, report: ShapeReport) -> Flat:
    """The expanded model; ``report`` must come from ``infer_shapes(graph)`` and be error-free."""
    flat = Flat()
    _walk(graph, report, "", {}, False, flat)
    return flat


def _walk(graph: Graph, report: ShapeReport, prefix: str, feeds: dict, frozen: bool,
          flat: Flat) -> dict:
    """Expand one level under ``prefix``; ``feeds``: BlockInput id -> the flat value it gives.
    Returns BlockOutput id -> the flat value that leaves through it."""
    local, results = {}, {}
    for node_id in graph.topological_order():
        node = graph.nodes[node_id]
        refs = tuple(_source(graph, local, node_id, port) for port in graph.input_ports(node_id))
        ports = graph.output_ports(node_id)
        if node.type == BLOCK_INPUT:
            local[(node_id, "y")] = feeds[node_id]
        elif node.type == BLOCK_OUTPUT:
            results[node_id] = refs[0]
        elif node.type == BLOCK:
            outs = _expand(graph, node, report.inner[node_id], prefix, refs,
                           frozen or node.frozen, flat)
            for port, ref in zip(ports, outs):
                local[(node_id, port)] = flat.aliases[(prefix + node_id, port)] = ref
        else:
            flat_id = prefix + node_id
            flat.nodes.append(FlatNode(flat_id, node, refs, report.in_shapes[node_id],
                                       frozen or node.frozen))
            for port in ports:
                local[(node_id, port)] = (flat_id, port)
                flat.shapes[(flat_id, port)] = report.shapes[(node_id, port)]
    flat.levels[prefix] = local
    return results


def _source(graph: Graph, local: dict, node_id: str, port: str):
    edge = graph.edge_into((node_id, port))
    return local[tuple(edge.src)] if edge is not None else None


def _expand(graph: Graph, node: Node, inner: ShapeReport, prefix: str, refs: tuple,
            frozen: bool, flat: Flat) -> tuple:
    """The copies of one instance in series; returns the flat values leaving its ports. Every
    copy uses the first copy's shapes: the repeat rule makes them all the same."""
    definition, n = graph.blocks[node.attrs["block"]], node.attrs["repeat"]
    ins, outs = definition.port_nodes(BLOCK_INPUT), definition.port_nodes(BLOCK_OUTPUT)
    for k in range(n):
        path = f"{prefix}{node.id}." + (f"{k}." if n > 1 else "")
        results = _walk(definition, inner, path, dict(zip(ins, refs)), frozen, flat)
        refs = tuple(results[o] for o in outs)
    return refs
