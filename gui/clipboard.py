"""Cut, copy and paste of canvas selections: the system clipboard holds a subgraph in the graph
file format (also as text, so a paste into an editor shows the JSON).

Parsing a paste goes through ``graph_from_dict``, the same checks as opening a file; adding
it is one undoable ``document.compound.add_subgraph`` edit.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from PySide6.QtCore import QMimeData, QObject
from PySide6.QtWidgets import QApplication, QGraphicsScene

from layerloom.engine.graph import Graph
from layerloom.engine.serialize import graph_from_dict, graph_to_dict, parse_text
from layerloom.engine.spec import LayerloomError

GRAPH_MIME = "application/x-layerloom-graph"


def copy_subgraph(graph: Graph, node_ids: Iterable[str]) -> dict:
    """The given nodes and the edges between them, in the file format, with the definitions of
    the blocks among them (and of the blocks those use)."""
    ids = set(node_ids)
    whole = graph_to_dict(graph)
    out = {"format": whole["format"], "version": 1,
           "nodes": [n for n in whole["nodes"] if n["id"] in ids],
           "edges": [e for e in whole["edges"] if e["from"][0] in ids and e["to"][0] in ids]}
    used = {graph.block_of(n["id"]) for n in out["nodes"]} - {None}
    used |= {u for name in used for u in graph.uses(name)}
    if used:
        levels = {name: graph_to_dict(graph.blocks[name]) for name in graph.blocks if name in used}
        out["version"] = 2
        out["blocks"] = {name: {"nodes": d["nodes"], "edges": d["edges"]}
                         for name, d in levels.items()}
    return out


def paste_subgraph(document: QObject, data: Any, offset: tuple = (40.0, 40.0)) -> list[str]:
    """Add a copied subgraph (a dict, or its JSON text) to the Document with fresh ids where
    needed; internal edges are kept. Text that is not a subgraph changes nothing and says so."""
    if document.refuse_if_locked():
        return []
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        sub = graph_from_dict(parse_text(data) if isinstance(data, str) else data)
    except LayerloomError as err:
        document.message.emit(f"Cannot paste: {err}")
        return []
    return document.compound.add_subgraph(sub, offset)


class GraphClipboard:
    """Edit > Cut, Copy, Paste on the scene's selection; repeated pastes step down-right."""

    def __init__(self, document: QObject, scene: QGraphicsScene):
        self.document, self.scene = document, scene  # a Document and its GraphScene
        self._paste_count = 0

    def copy(self) -> bool:
        ids = self.scene.selected_node_ids()
        if not ids:
            return False
        text = json.dumps(copy_subgraph(self.document.graph, ids))
        data = QMimeData()
        data.setData(GRAPH_MIME, text.encode("utf-8"))
        data.setText(text)
        QApplication.clipboard().setMimeData(data)
        self._paste_count = 0
        return True

    def cut(self) -> None:
        if self.copy():
            self.document.remove(self.scene.selected_node_ids(), self.scene.selected_edges())

    def paste(self) -> list[str]:
        data = QApplication.clipboard().mimeData()
        if data is None:
            return []
        if data.hasFormat(GRAPH_MIME):
            payload = bytes(data.data(GRAPH_MIME)).decode("utf-8")
        elif data.hasText():
            payload = data.text()
        else:
            return []
        self._paste_count += 1
        step = 40.0 * self._paste_count
        return paste_subgraph(self.document, payload, (step, step))
