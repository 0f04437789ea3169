"""Edits made of several commands, pushed as one undo step: a node added on a released wire, an
edge moved to another input, a proposed fix inserted, a subgraph pasted.

Reached as ``document.compound``. Like the Document's own methods, each checks the whole edit
against the graph's rules (on the graph, or on a trial copy) before anything is pushed, so a
refused edit never reaches the undo stack and its reason goes out on ``document.message``.
"""
from __future__ import annotations

import re

from PySide6.QtCore import QObject

from layerloom.engine.block_library import merge_definitions
from layerloom.engine.blocks import retargeted
from layerloom.engine.graph import Edge, Graph, GraphError, Node
from layerloom.engine.serialize import graph_to_dict
from layerloom.engine.registry import LAYERS
from layerloom.gui import commands as cmd
from layerloom.gui.layout import free_position


class CompoundEdits:
    def __init__(self, document: QObject):
        self.document = document  # the Document: its graph, lock, push and macro

    def add_connected_node(self, type_id: str, pos: tuple, src: tuple) -> str | None:
        """Add a node and feed ``src`` into its first input (a wire released on empty canvas)."""
        doc = self.document
        cls = LAYERS.get(type_id)
        if doc.refuse_if_locked() or cls is None:
            return None
        if not cls.inputs:
            doc.message.emit(f"{type_id} has no input to connect {src[0]} to")
            return None
        try:
            node = doc.graph.new_node(type_id, pos)
        except GraphError as err:
            doc.message.emit(str(err))
            return None
        with doc.macro(f"Add {type_id}"):
            doc.push(cmd.AddNodeCommand(doc.graph, node))
            doc.push(cmd.ConnectCommand(doc.graph, src, (node.id, cls.inputs[0])))
        doc.select_requested.emit([node.id])
        return node.id

    def reconnect(self, edge: Edge, src: tuple, dst: tuple) -> bool:
        """Move an edge's end to another input (one undo step); refused edits leave it alone."""
        doc = self.document
        if doc.refuse_if_locked():
            return False
        try:
            doc.graph.check_connect(src, dst, replacing=edge)
        except GraphError as err:
            doc.message.emit(str(err))
            return False
        with doc.macro(f"Reconnect {src[0]} → {dst[0]}"):
            doc.push(cmd.DisconnectCommand(doc.graph, edge))
            doc.push(cmd.ConnectCommand(doc.graph, src, dst))
        return True

    def insert_fix(self, node_id: str) -> str | None:
        """Apply the mechanical fix shape inference proposed (e.g. insert a Flatten before a Dense
        fed an image): the new node goes on the node's first connected input, one undo step."""
        doc = self.document
        graph, fix = doc.graph, doc.report.fixes.get(node_id)
        edge = next((e for e in graph.edges_into(node_id)), None)
        if fix not in LAYERS or edge is None or doc.refuse_if_locked():
            return None
        cls = LAYERS[fix]
        (sx, sy), (dx, dy) = graph.nodes[edge.src[0]].pos, graph.nodes[node_id].pos
        # below the middle of the wire it cuts, at the first spot clear of every node
        node = graph.new_node(fix, free_position(graph, ((sx + dx) / 2, max(sy, dy) + 110)))
        with doc.macro(f"Insert {fix}"):
            doc.push(cmd.AddNodeCommand(graph, node))
            doc.push(cmd.DisconnectCommand(graph, edge))
            doc.push(cmd.ConnectCommand(graph, edge.src, (node.id, cls.inputs[0])))
            doc.push(cmd.ConnectCommand(graph, (node.id, cls.outputs[0]), edge.dst))
        return node.id

    def add_subgraph(self, sub: Graph, offset: tuple = (40.0, 40.0)) -> list[str]:
        """Add ``sub``'s nodes (shifted by ``offset``, renamed where an id is taken) and the
        edges between them as one undo step, with the block definitions they use (an equal
        one already in the model is shared, a different one of the same name is renamed);
        returns the new ids, which get selected."""
        doc = self.document
        if not sub.nodes or doc.refuse_if_locked():
            return []
        adds, blocks = merge_definitions(doc.model, {n: graph_to_dict(d) for n, d in
                                                     sub.blocks.items()}) if sub.blocks else ([], {})
        names, taken = {}, set(doc.graph.nodes)
        for n in sub.nodes:
            names[n] = n if n not in taken else _fresh_id(n, taken)
            taken.add(names[n])
        edits = [("add_block", name, level) for name, level in adds]
        for n, node in sub.nodes.items():
            node = retargeted(sub, node, blocks)
            pos = (node.pos[0] + offset[0], node.pos[1] + offset[1])
            edits.append(("add_node", Node(names[n], node.type, node.attrs, pos, node.frozen)))
        edits += [("connect", (names[e.src[0]], e.src[1]), (names[e.dst[0]], e.dst[1]))
                  for e in sub.edges]
        if not doc.blocks.apply(edits, f"Paste {len(names)} node{'s' if len(names) > 1 else ''}"):
            return []
        doc.select_requested.emit(list(names.values()))
        return list(names.values())


def _fresh_id(node_id: str, taken: set) -> str:
    """``conv1`` -> ``conv2`` (the first free number on the same stem)."""
    stem = re.sub(r"\d+$", "", node_id) or "node"
    i = 1
    while f"{stem}{i}" in taken:
        i += 1
    return f"{stem}{i}"
