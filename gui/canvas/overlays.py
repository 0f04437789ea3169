"""Training's marks on the canvas's nodes, by node id: warning badges and the divergence halo.

The scene draws the graph; these marks come from elsewhere (the data panel, the gradient
plots, a run that went non-finite) and only decorate the node items the scene holds. A mark for
a layer inside a block ("enc.2.fc1", as the engine names it) goes on the node that holds it at
the level shown: the instance "enc" on the model, "fc1" with that block open.
"""
from __future__ import annotations

from PySide6.QtWidgets import QGraphicsScene


class NodeOverlays:
    def __init__(self, scene: QGraphicsScene):
        self.scene = scene  # a GraphScene: its items_by_id
        self.path: list[str] = []  # the instance ids of the blocks opened in place

    def local(self, node_id: str | None) -> str | None:
        """The node at the shown level that holds engine node ``node_id`` (None: none does)."""
        parts = node_id.split(".") if node_id else []
        for instance in self.path:
            if not parts or parts[0] != instance:
                return None
            parts = parts[1:]
            if parts and parts[0].isdigit():  # which copy of a repeated block
                parts = parts[1:]
        return parts[0] if parts else None

    def set_warning(self, node_id: str, kind: str, reason: str | None,
                    error: bool = False) -> None:
        """A warning badge (reason as tooltip) on a node, e.g. kind "gradient" or "data";
        None removes that kind. ``error``: a red badge, for what keeps Train from starting."""
        item = self.scene.items_by_id.get(self.local(node_id))
        if item is not None:
            item.set_warning(kind, reason, error)

    def clear_warnings(self, kind: str) -> None:
        for item in self.scene.items_by_id.values():
            item.set_warning(kind, None)

    def warnings_of(self, node_id: str) -> dict[str, str]:
        item = self.scene.items_by_id.get(node_id)
        return dict(item.warnings) if item is not None else {}

    def set_alert(self, node_id: str | None, reason: str = "") -> None:
        """Halo the node where a run went non-finite (None clears every alert)."""
        local = self.local(node_id)
        for nid, item in self.scene.items_by_id.items():
            item.set_alert(reason if nid == local else None)
