"""Which level of the model the canvas shows and edits: the model itself, or a block opened in
place (through one of its instances, whose shapes it then shows), maybe inside another.

The path is the chain of instance ids from the model down ("enc", then "inner"). It follows the
model: when an edit or an undo takes away an instance on the path (or makes it refer to another
definition), the path ends just above it, so the canvas never shows a block that is gone.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from layerloom.engine.graph import Graph
from layerloom.engine.shapes import ShapeReport


class Levels(QObject):
    changed = Signal(object)  # the Graph now shown and edited

    def __init__(self, model: Graph, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.path: list[tuple[str, str]] = []  # (instance id, definition name) from the model down

    @property
    def graph(self) -> Graph:
        """The graph shown: the model, or the definition of the last instance on the path."""
        graph = self.model
        for _, name in self.path:
            graph = graph.blocks[name]
        return graph

    def report(self, model_report: ShapeReport) -> ShapeReport:
        """The shown level's shapes, as the opened instance sees them (empty when that
        instance could not be inferred, e.g. an input is not connected)."""
        report = model_report
        for node_id, _ in self.path:
            report = report.inner.get(node_id, ShapeReport())
        return report

    def prefix(self) -> str:
        """How the engine names the shown level's nodes: "" on the model, "stage1.0." inside
        the first copy of a repeated instance "stage1", "down." inside an instance "down"."""
        graph, out = self.model, ""
        for node_id, name in self.path:
            out += f"{node_id}." + ("0." if graph.copies(node_id) > 1 else "")
            graph = graph.blocks[name]
        return out

    def names(self) -> list[str]:
        """The breadcrumb's parts: "model", then each opened instance as "id (definition)"."""
        return ["model"] + [f"{node_id} ({name})" if node_id != name else node_id
                            for node_id, name in self.path]

    def reset(self, model: Graph) -> None:
        self.model, self.path = model, []
        self.changed.emit(self.graph)

    def enter(self, node_id: str) -> bool:
        """Open block instance ``node_id`` of the shown level in place."""
        definition = self.graph.definition(node_id) if node_id in self.graph.nodes else None
        if definition is None:
            return False
        self.path.append((node_id, definition.name))
        self.changed.emit(definition)
        return True

    def go_up(self, depth: int | None = None) -> bool:
        """Back out one level, or to ``depth`` levels below the model (0: the model)."""
        depth = len(self.path) - 1 if depth is None else depth
        if not 0 <= depth < len(self.path):
            return False
        del self.path[depth:]
        self.changed.emit(self.graph)
        return True

    def follow_model(self) -> bool:
        """After any change of the model: cut the path where its instance no longer leads to
        the definition it opened (and say ``changed``); True when it was cut."""
        graph, keep = self.model, 0
        for node_id, name in self.path:
            node = graph.nodes.get(node_id)
            if node is None or graph.block_of(node_id) != name:
                break
            graph, keep = graph.blocks[name], keep + 1
        return keep < len(self.path) and self.go_up(keep)
