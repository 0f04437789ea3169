"""The data-flow graph as plain data: nodes (layers) and edges (tensors between named ports).

Every mutation goes through a method that validates first and then emits a signal, so a refused
edit changes nothing and every view (the canvas, shape overlay) just follows the signals.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

from layerloom.engine.block_model import BlockModel
from layerloom.engine.block_types import BLOCK
from layerloom.engine.graph_data import Edge, GraphError, Node, PortRef, Signal, check_node_id
from layerloom.engine.spec import AttrError

__all__ = ["Edge", "Graph", "GraphError", "Node", "PortRef", "Signal", "check_node_id"]


class Graph(BlockModel):
    """Nodes keyed by id plus a set of edges; an input port holds at most one edge.

    A model's graph also holds the block definitions of its file (``blocks``: name -> the
    definition's own Graph, with BlockInput/BlockOutput nodes for ports). A definition shares its
    model's ``blocks`` and knows it as ``model``, so the rules that span levels (a block may not
    contain itself, a connected port may not vanish) are checked wherever an edit happens, and
    an edit inside a definition reaches the model as ``block_changed(name)`` and ``changed()``.
    """

    def __init__(self, model: "Graph | None" = None, name: str | None = None) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        self.model: Graph = self if model is None else model
        self.name = name  # None for the model; the definition's name for a block definition
        self.blocks: dict[str, Graph] = {} if model is None else model.blocks
        self.block_added, self.block_removed = Signal(), Signal()  # (name), on the model
        self.block_changed = Signal()  # (name): an edit inside a definition, on the model
        self.node_added, self.node_removed = Signal(), Signal()  # (node) / (node_id)
        self.edge_added, self.edge_removed = Signal(), Signal()  # (edge)
        self.attr_changed = Signal()  # (node_id, name, value)
        self.node_moved = Signal()  # (node_id, pos)
        self.node_renamed = Signal()  # (old_id, new_id)
        self.frozen_changed = Signal()  # (node_id, frozen)
        self.changed = Signal()  # () after any edit: shape inference listens here

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} nodes, {len(self.edges)} edges)"

    # ---------------------------------------------------------------------- queries
    def layer(self, node_id: str):
        from layerloom.engine.registry import get

        return get(self.nodes[node_id].type)

    def edges_into(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.dst[0] == node_id]

    def edges_from(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.src[0] == node_id]

    def edge_into(self, dst: PortRef) -> Edge | None:
        return next((e for e in self.edges if e.dst == tuple(dst)), None)

    def unique_id(self, stem: str) -> str:
        """``conv1``, ``conv2``...: the first free id from a stem (the type name, lower-cased)."""
        stem = "".join(ch for ch in stem.lower() if ch.isalnum() or ch == "_") or "node"
        if stem[0].isdigit():
            stem = "n" + stem
        i = 1
        while f"{stem}{i}" in self.nodes:
            i += 1
        return f"{stem}{i}"

    def topological_order(self) -> list[str]:
        """Kahn's algorithm, stable in insertion order; raises GraphError on a cycle."""
        indeg = {n: 0 for n in self.nodes}
        for e in self.edges:
            indeg[e.dst[0]] += 1
        ready = [n for n in self.nodes if indeg[n] == 0]
        order: list[str] = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for e in self.edges_from(n):
                indeg[e.dst[0]] -= 1
                if indeg[e.dst[0]] == 0:
                    ready.append(e.dst[0])
        if len(order) != len(self.nodes):
            stuck = sorted(set(self.nodes) - set(order))
            raise GraphError(f"the graph has a cycle through {', '.join(stuck)}")
        return order

    def reaches(self, start: str, target: str) -> bool:
        """True when a path of edges leads from ``start`` to ``target``."""
        return target in self.reachable([start])

    def reachable(self, starts, downstream: bool = True) -> set[str]:
        """``starts`` and every node a path of edges leads to from them (``downstream``) or
        from them back to (upstream)."""
        seen, todo = set(), list(starts)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                if downstream:
                    todo.extend(e.dst[0] for e in self.edges_from(n))
                else:
                    todo.extend(e.src[0] for e in self.edges_into(n))
        return seen

    # ---------------------------------------------------------------------- edits
    def check_node(self, node: Node) -> Node:
        """The node as ``add_node`` would store it (id a free identifier, type known, attrs
        validated and default-filled), without adding it: editors ask before they push."""
        from layerloom.engine.registry import get

        check_node_id(node.id)
        if node.id in self.nodes:
            raise GraphError(f"a node named {node.id!r} already exists")
        cls = get(node.type)
        try:
            attrs = dict(cls.validate_attrs(node.attrs))
        except AttrError as err:
            raise GraphError(f"{node.type} {node.id!r}: {err}") from None
        self._check_level(node.id, cls)
        if node.type == BLOCK:
            self._check_block_ref(node.id, attrs["block"])
        return Node(node.id, node.type, attrs, tuple(float(v) for v in node.pos), bool(node.frozen))

    def new_node(self, type_id: str, pos: tuple = (0.0, 0.0), attrs: dict | None = None,
                 node_id: str | None = None) -> Node:
        """A checked node of ``type_id`` (not yet added), named ``dense1``, ``dense2``... unless
        ``node_id`` is given."""
        return self.check_node(Node(node_id or self.unique_id(type_id), type_id, dict(attrs or {}),
                                    (float(pos[0]), float(pos[1]))))

    def add_node(self, node: Node, index: int | None = None) -> Node:
        """Validate type, id and attrs; the stored attrs are the validated, default-filled ones.

        ``index`` puts the node back at its old place in insertion order (an undo of a removal
        then restores the file byte for byte)."""
        node = self.check_node(node)
        if index is None:
            self.nodes[node.id] = node
        else:
            items = list(self.nodes.items())
            items.insert(index, (node.id, node))
            self.nodes = dict(items)
        self.node_added.emit(node)
        self.changed.emit()
        return node

    def remove_node(self, node_id: str) -> tuple[Node, list[Edge]]:
        """Remove a node and its edges; returns both so an undo can put them back."""
        node = self._node(node_id)
        self._check_port_free(node_id, "remove")
        removed = [e for e in self.edges if node_id in (e.src[0], e.dst[0])]
        for e in removed:
            self.disconnect(e, notify=False)
        del self.nodes[node_id]
        self.node_removed.emit(node_id)
        self.changed.emit()
        return node, removed

    def check_connect(self, src: PortRef, dst: PortRef, replacing: Edge | None = None) -> Edge:
        """The rules of a new edge, without making it (the canvas asks while dragging);
        ``replacing``: an edge the new one takes the place of (moving an edge's end)."""
        src, dst = tuple(src), tuple(dst)
        self._node(src[0]), self._node(dst[0])
        if src[1] not in self.output_ports(src[0]):
            raise GraphError(f"{src[0]!r} has no output port {src[1]!r}")
        if dst[1] not in self.input_ports(dst[0]):
            raise GraphError(f"{dst[0]!r} has no input port {dst[1]!r}")
        if src[0] == dst[0]:
            raise GraphError(f"cannot connect {src[0]!r} to itself")
        taken = self.edge_into(dst)
        if taken is not None and taken != replacing:
            raise GraphError(f"input {dst[1]!r} of {dst[0]!r} is already connected")
        if self.reaches(dst[0], src[0]):
            raise GraphError(f"connecting {src[0]} to {dst[0]} would make a cycle")
        return Edge(src, dst)

    def connect(self, src: PortRef, dst: PortRef, index: int | None = None) -> Edge:
        """Add an edge; ``index`` restores its old place in the edge list (undo)."""
        edge = self.check_connect(src, dst)
        self.edges.insert(len(self.edges) if index is None else index, edge)
        self.edge_added.emit(edge)
        self.changed.emit()
        return edge

    def disconnect(self, edge: Edge, notify: bool = True) -> None:
        if edge not in self.edges:
            raise GraphError(f"no edge from {edge.src} to {edge.dst}")
        self.edges.remove(edge)
        self.edge_removed.emit(edge)
        if notify:
            self.changed.emit()

    def check_attr(self, node_id: str, name: str, value: Any) -> dict:
        """The node's attrs with ``name`` set to ``value``, validated (a GraphError naming the
        node when the layer refuses it), without changing anything."""
        node = self._node(node_id)
        try:
            validated = dict(self.layer(node_id).validate_attrs({**node.attrs, name: value}))
        except AttrError as err:
            raise GraphError(f"{node.type} {node_id!r}: {err}") from None
        if node.type == BLOCK and validated["block"] != node.attrs["block"]:
            self._check_block_ref(node_id, validated["block"], ports_of=node_id)
        elif node.type != BLOCK:  # a port an edge leaves from must stay (Chunk's pieces)
            kept = self.layer(node_id).outputs_for(validated)
            wired = next((e.src[1] for e in self.edges if e.src[0] == node_id
                          and e.src[1] not in kept), None)
            if wired is not None:
                raise GraphError(f"{node.type} {node_id!r}: output {wired!r} would go, and it is "
                                 f"connected; disconnect it first")
        return validated

    def set_attr(self, node_id: str, name: str, value: Any) -> None:
        node = self.nodes[node_id]
        node.attrs = self.check_attr(node_id, name, value)
        self.attr_changed.emit(node_id, name, node.attrs[name])
        self.changed.emit()

    def move(self, node_id: str, pos: tuple) -> None:
        self._node(node_id).pos = (float(pos[0]), float(pos[1]))
        self.node_moved.emit(node_id, self.nodes[node_id].pos)

    def set_frozen(self, node_id: str, frozen: bool) -> None:
        self._node(node_id).frozen = bool(frozen)
        self.frozen_changed.emit(node_id, bool(frozen))
        self.changed.emit()

    def check_rename(self, old: str, new: str, moving_wires: bool = False) -> None:
        """The rules of a new id: an identifier (it becomes a parameter key) not yet taken;
        a block's port wired outside only when the caller moves those wires (``port_wires``)."""
        self._node(old)
        check_node_id(new)
        if new != old and new in self.nodes:
            raise GraphError(f"a node named {new!r} already exists")
        if new != old and not moving_wires:
            self._check_port_free(old, "rename")

    def rename(self, old: str, new: str) -> None:
        """Change a node's id, keeping its edges and its place in insertion order."""
        if new == old:
            self._node(old)
            return
        self.check_rename(old, new)
        self.nodes = {(new if k == old else k): v for k, v in self.nodes.items()}
        self.nodes[new].id = new
        ren = lambda ref: (new, ref[1]) if ref[0] == old else ref  # noqa: E731
        self.edges = [Edge(ren(e.src), ren(e.dst)) for e in self.edges]
        self.node_renamed.emit(old, new)
        self.changed.emit()

    def _node(self, node_id: str) -> Node:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise GraphError(f"no node named {node_id!r}") from None

    # ---------------------------------------------------------------------- copies
    def copy(self) -> "Graph":
        """An independent model with the same nodes, edges and block definitions, and no
        subscribers (a trial edit, a network's own graph). Files are ``engine.serialize``'s."""
        out = Graph()
        for name in self.blocks:
            out.add_block(out.new_block(name))
        levels = [(d, out.blocks[name]) for name, d in self.blocks.items()] + [(self, out)]
        for source, target in levels:  # every level's nodes first: ports exist for the edges
            for n in source.nodes.values():
                target.add_node(Node(n.id, n.type, copy.deepcopy(n.attrs), n.pos, n.frozen))
        for source, target in levels:
            for e in source.edges:
                target.connect(e.src, e.dst)
        return out

    def add_all(self, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        """Put back nodes and edges (an undo of a removal, a paste)."""
        for n in nodes:
            self.add_node(n)
        for e in edges:
            self.connect(e.src, e.dst)
