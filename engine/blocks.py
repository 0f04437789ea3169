"""Edits that restructure a graph around blocks, worked out as plain data before anything moves.

``plan_group`` says what grouping a selection into a block means (a new definition whose
BlockInput/BlockOutput ports sit where edges crossed the selection, the instance replacing the
nodes, the edges to wire it) and ``plan_ungroup`` the reverse (the inner nodes of every copy put
back in place of the instance, wired through). The window turns a plan into undoable commands;
a refused plan is a one-line ``GraphError`` and nothing has changed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from layerloom.engine.block_types import BLOCK, BLOCK_INPUT, BLOCK_OUTPUT
from layerloom.engine.graph import Edge, Graph, GraphError, Node, PortRef
from layerloom.engine.serialize import fill_level, graph_to_dict

GAP = 220.0  # between a definition's ports and its nodes, and between ungrouped copies


@dataclass
class Grouping:
    name: str  # of the new definition
    level: dict  # its nodes and edges
    instance: Node  # the Block node that takes the selection's place
    removed: list  # ids of the grouped nodes, in graph order
    crossing: list  # the edges that crossed the selection (they go with the nodes)
    wires: list = field(default_factory=list)  # (src, dst) refs to connect to the instance


@dataclass
class Ungrouping:
    instance: str
    nodes: list  # Node, fresh ids at the instance's level
    wires: list  # (src, dst) refs to connect, inside and outside
    unused: str | None  # the definition no instance uses any more


def _fresh(stem: str, taken: set) -> str:
    new, i = stem, 2
    while new in taken:
        new, i = f"{stem}_{i}", i + 1
    taken.add(new)
    return new


def _check_groupable(graph: Graph, ids: list) -> None:
    if not ids:
        raise GraphError("select the nodes to group first")
    for n in ids:
        cls = graph.layer(n)
        if cls.is_source or cls.is_loss or graph.nodes[n].type in (BLOCK_INPUT, BLOCK_OUTPUT):
            raise GraphError(f"{graph.nodes[n].type} {n!r} cannot go inside a block: group the "
                             f"layers between the data and the loss")
    inside = set(ids)
    leaving = {e.dst[0] for e in graph.edges if e.src[0] in inside and e.dst[0] not in inside}
    for n in graph.nodes:
        if n not in inside and any(graph.reaches(s, n) for s in leaving) and \
                any(graph.reaches(n, i) for i in inside):
            raise GraphError(f"the selection leaves and re-enters through {n!r}: include it, "
                             f"or group fewer nodes")


def plan_group(graph: Graph, node_ids, name: str | None = None) -> Grouping:
    """Grouping the selected nodes of ``graph`` into a new block (one input per outside value
    read, one output per inside value read outside)."""
    ids = [n for n in graph.nodes if n in set(node_ids)]
    _check_groupable(graph, ids)
    inside = set(ids)
    name = name or graph.unique_block_name("block")
    crossing_in = [e for e in graph.edges if e.dst[0] in inside and e.src[0] not in inside]
    crossing_out = [e for e in graph.edges if e.src[0] in inside and e.dst[0] not in inside]
    sources = list(dict.fromkeys(e.src for e in crossing_in))
    results = list(dict.fromkeys(e.src for e in crossing_out))
    taken = set(inside)
    in_ports = {ref: _fresh("x" if len(sources) == 1 else f"x{i + 1}", taken)
                for i, ref in enumerate(sources)}
    out_ports = {ref: _fresh("y" if len(results) == 1 else f"y{i + 1}", taken)
                 for i, ref in enumerate(results)}
    xs = [graph.nodes[n].pos[0] for n in ids]
    ys = [graph.nodes[n].pos[1] for n in ids]
    left, top = min(xs), min(ys)
    nodes = [dict(_node_dict(graph.nodes[n]), pos=[graph.nodes[n].pos[0] - left + GAP,
                                                    graph.nodes[n].pos[1] - top]) for n in ids]
    port_nodes = [_port_node(p, BLOCK_INPUT, 0.0, i) for i, p in enumerate(in_ports.values())]
    port_nodes += [_port_node(p, BLOCK_OUTPUT, max(xs) - left + 2 * GAP, i)
                   for i, p in enumerate(out_ports.values())]
    edges = [{"from": list(e.src), "to": list(e.dst)} for e in graph.edges
             if e.src[0] in inside and e.dst[0] in inside]
    edges += [{"from": [in_ports[e.src], "y"], "to": list(e.dst)} for e in crossing_in]
    edges += [{"from": list(ref), "to": [port, "x"]} for ref, port in out_ports.items()]
    instance = new_instance(graph, name, (left, top))
    wires = [(ref, (instance.id, port)) for ref, port in in_ports.items()]
    wires += [((instance.id, out_ports[e.src]), e.dst) for e in crossing_out]
    return Grouping(name, {"nodes": port_nodes[:len(in_ports)] + nodes + port_nodes[len(in_ports):],
                           "edges": edges}, instance, ids, crossing_in + crossing_out, wires)


def _node_dict(node: Node) -> dict:
    return {"id": node.id, "type": node.type, "attrs": copy.deepcopy(dict(node.attrs)),
            "pos": list(node.pos), "frozen": node.frozen}


def _port_node(port: str, type_id: str, x: float, i: int) -> dict:
    return {"id": port, "type": type_id, "attrs": {}, "pos": [x, i * 120.0], "frozen": False}


def plan_ungroup(graph: Graph, node_id: str) -> Ungrouping:
    """Putting the layers of block instance ``node_id`` (every copy, in series) in its place."""
    definition = graph.definition(node_id)
    if definition is None:
        raise GraphError(f"{node_id!r} is not a block")
    node = graph.nodes[node_id]
    inner = [n for n in definition.nodes.values() if n.type not in (BLOCK_INPUT, BLOCK_OUTPUT)]
    xs = [n.pos[0] for n in inner] or [0.0]
    ys = [n.pos[1] for n in inner] or [0.0]
    height = max(ys) - min(ys) + 150.0
    taken = set(graph.nodes) - {node_id}
    ports = definition.port_nodes(BLOCK_INPUT)
    feeds = {p: _src(graph, (node_id, p)) for p in ports}  # None: an unwired port
    nodes, wires = [], []
    for k in range(node.attrs["repeat"]):
        ids = {n.id: _fresh(n.id, taken) for n in inner}
        for n in inner:
            pos = (node.pos[0] + n.pos[0] - min(xs), node.pos[1] + n.pos[1] - min(ys) + k * height)
            nodes.append(Node(ids[n.id], n.type, copy.deepcopy(dict(n.attrs)), pos,
                              n.frozen or node.frozen))
        ref = lambda src: feeds[src[0]] if src[0] in ports else (ids[src[0]], src[1])  # noqa: E731
        for e in definition.edges:
            if e.dst[0] in ids and ref(e.src) is not None:
                wires.append((ref(e.src), (ids[e.dst[0]], e.dst[1])))
        outs = {p: _src(definition, (p, "x")) for p in definition.port_nodes(BLOCK_OUTPUT)}
        feeds = {p: ref(src) if src is not None else None
                 for p, src in zip(ports, outs.values())}  # the next copy's inputs
        results = {p: ref(src) if src is not None else None for p, src in outs.items()}
    for e in graph.edges_from(node_id):
        if results[e.src[1]] is not None:
            wires.append((results[e.src[1]], e.dst))
    last = len(graph.instances_of(node.attrs["block"])) == 1
    return Ungrouping(node_id, nodes, wires, node.attrs["block"] if last else None)


def new_instance(graph: Graph, name: str, pos: tuple) -> Node:
    """A fresh instance of definition ``name`` for ``graph`` (an id from the name, once)."""
    return Node(graph.unique_id(name), BLOCK, {"block": name, "repeat": 1},
                (float(pos[0]), float(pos[1])))


def retargeted(graph: Graph, node: Node, names: dict) -> Node:
    """``node`` (of ``graph``) with its definition renamed by ``names`` when it is a block (a
    pasted block whose definition took another name in the model)."""
    attrs = dict(node.attrs)
    if graph.block_of(node.id) is not None:
        attrs["block"] = names.get(attrs["block"], attrs["block"])
    return Node(node.id, node.type, attrs, node.pos, node.frozen)


def unique_edits(graph: Graph, node_id: str) -> list[tuple]:
    """"Make unique": a copy of the instance's definition under a new name, the instance moved
    to it, so editing it changes no other instance."""
    name, level = definition_copy(graph, node_id)
    return [("add_block", name, level), ("set_attr", node_id, "block", name)]


def group_edits(plan: Grouping) -> list[tuple]:
    """The plan as primitive edits, in order (``apply_edits``; the window's undo commands)."""
    return [("add_block", plan.name, plan.level), *[("remove_node", n) for n in plan.removed],
            ("add_node", plan.instance), *[("connect", s, d) for s, d in plan.wires]]


def ungroup_edits(plan: Ungrouping) -> list[tuple]:
    edits = [("remove_node", plan.instance), *[("add_node", n) for n in plan.nodes],
             *[("connect", s, d) for s, d in plan.wires]]
    return edits + ([("remove_block", plan.unused)] if plan.unused else [])


def apply_edits(graph: Graph, edits: list[tuple]) -> None:
    """Make primitive edits through ``graph``'s own methods (each checks its rules)."""
    for kind, *args in edits:
        if kind == "add_block":
            definition = graph.new_block(args[0])
            fill_level(definition, args[1])
            graph.add_block(definition)
        elif kind == "remove_block":
            graph.remove_block(args[0])
        elif kind == "add_node":
            graph.add_node(args[0])
        elif kind == "remove_node":
            graph.remove_node(args[0])
        elif kind == "connect":
            graph.connect(*args)
        elif kind == "set_attr":
            graph.set_attr(*args)
        else:
            raise ValueError(f"unknown edit {kind!r}")


def _src(graph: Graph, dst: PortRef) -> PortRef | None:
    edge = graph.edge_into(dst)
    return tuple(edge.src) if edge is not None else None


def definition_copy(graph: Graph, node_id: str) -> tuple[str, dict]:
    """(a new definition name, a copy of the definition of instance ``node_id``): what "Make
    unique" gives the instance, so editing it changes no other instance."""
    definition = graph.definition(node_id)
    if definition is None:
        raise GraphError(f"{node_id!r} is not a block")
    data = graph_to_dict(definition)
    return graph.unique_block_name(definition.name), {"nodes": data["nodes"],
                                                      "edges": data["edges"]}


__all__ = ["Edge", "Grouping", "PortRef", "Ungrouping", "apply_edits", "definition_copy",
           "group_edits", "new_instance", "plan_group", "plan_ungroup", "retargeted",
           "ungroup_edits", "unique_edits"]
