"""What the mouse does on the canvas besides selecting: drag a wire from a port, drag nodes.

Kept apart from ``GraphScene`` (which only draws the graph) so each stays small. A gesture never
edits anything: it ends as one of the scene's request signals (``connect_requested``,
``reconnect_requested``, ``disconnect_requested``, ``wire_released``, ``nodes_moved``,
``refused``), which the view turns into Document calls.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QGraphicsScene

from layerloom.engine.graph import Edge, GraphError
from layerloom.gui.canvas.edge_item import WireItem
from layerloom.gui.canvas.node_item import NodeItem
from layerloom.gui.canvas.port_item import PortItem


class _WireDrag:
    """A connection being dragged: ``fixed`` is the port it started from (or, when an existing
    edge was picked up by its end, the edge's source port)."""

    def __init__(self, fixed: PortItem, wire: WireItem, detached: Edge | None):
        self.fixed, self.wire, self.detached = fixed, wire, detached
        self.target: PortItem | None = None

    def endpoints(self, target: PortItem | None) -> tuple | None:
        """(output ref, input ref) when dropping on ``target`` makes a wire, else None."""
        if target is None or target is self.fixed or target.is_output == self.fixed.is_output:
            return None
        fixed = self.fixed
        return (fixed.ref, target.ref) if fixed.is_output else (target.ref, fixed.ref)


class SceneGestures:
    """Wire drags (from a port, or an existing edge picked up by its input end) and node drags
    (reported once, on release, as the positions that changed)."""

    def __init__(self, scene: QGraphicsScene):
        self.scene = scene  # a GraphScene: its graph, items and request signals
        self.drag: _WireDrag | None = None
        self._press_positions: dict[str, QPointF] = {}

    # ------------------------------------------------------------------ mouse events
    def press(self, event) -> bool:
        """True when the press starts a wire (the scene must not select or move anything)."""
        port = self._port_at(event.scenePos()) if event.button() == Qt.LeftButton else None
        if port is None or self.scene.graph is None:
            return False
        self._start(port, event.scenePos())
        return True

    def pressed(self) -> None:
        """After the scene handled a press: remember where the selected nodes stood."""
        self._press_positions = {i.node_id: i.pos() for i in self.scene.selectedItems()
                                 if isinstance(i, NodeItem)}

    def move(self, event) -> bool:
        if self.drag is None:
            return False
        self._update(event.scenePos())
        return True

    def release(self, event) -> bool:
        if self.drag is None:
            return False
        self._finish(event.scenePos())
        return True

    def released(self) -> None:
        """After the scene handled a release: report the nodes the drag moved."""
        moved = {}
        for node_id, old in self._press_positions.items():
            item = self.scene.items_by_id.get(node_id)
            if item is not None and item.pos() != old:
                moved[node_id] = (round(item.pos().x()), round(item.pos().y()))
        self._press_positions = {}
        if moved:
            self.scene.nodes_moved.emit(moved)

    # ------------------------------------------------------------------ the wire
    def _port_at(self, pos: QPointF) -> PortItem | None:
        return next((i for i in self.scene.items(pos) if isinstance(i, PortItem)), None)

    def _start(self, port: PortItem, pos: QPointF) -> None:
        scene, detached = self.scene, None
        if not port.is_output:
            detached = scene.graph.edge_into(port.ref)
            if detached is not None:  # picking up an edge by its end
                scene.edge_items[detached].hide()
                port = scene.port_item(detached.src, True)
        self.drag = _WireDrag(port, WireItem(scene.theme), detached)
        scene.addItem(self.drag.wire)
        self._update(pos)

    def _update(self, pos: QPointF) -> None:
        drag = self.drag
        fixed = drag.fixed.scenePos()
        if drag.fixed.is_output:
            drag.wire.set_points(fixed, pos)
        else:
            drag.wire.set_points(pos, fixed)
        target = self._port_at(pos)
        if drag.target is not None and drag.target is not target:
            drag.target.set_highlight(None)
        drag.target = target if target is not drag.fixed else None
        if drag.target is not None:
            drag.target.set_highlight("ok" if self._acceptable(drag.target) else "bad")

    def _acceptable(self, target: PortItem) -> bool:
        ends = self.drag.endpoints(target)
        if ends is None:
            return False
        detached = self.drag.detached
        if detached is not None and tuple(detached.dst) == ends[1]:
            return True
        try:
            self.scene.graph.check_connect(*ends)
        except GraphError:
            return False
        return True

    def _finish(self, pos: QPointF) -> None:
        drag, scene = self.drag, self.scene
        target = self._port_at(pos)
        if target is None and drag.fixed.is_output:  # dropped on a node's body: its free input
            node = next((i for i in scene.items(pos) if isinstance(i, NodeItem)), None)
            if node is not None and node.inputs and node.node_id != drag.fixed.node_id:
                free = [p for p in node.inputs.values() if scene.graph.edge_into(p.ref) is None]
                target = (free or list(node.inputs.values()))[0]
        self.cancel()
        ends = drag.endpoints(target)
        if ends is not None:
            if drag.detached is None:
                scene.connect_requested.emit(*ends)
            elif tuple(drag.detached.dst) != ends[1] or tuple(drag.detached.src) != ends[0]:
                scene.reconnect_requested.emit(drag.detached, *ends)
        elif target is not None and target is not drag.fixed:
            scene.refused.emit("connect an output (right side) to an input (left side)")
        elif target is None and drag.detached is not None:
            scene.disconnect_requested.emit(drag.detached)
        elif target is None and drag.fixed.is_output:
            scene.wire_released.emit(drag.fixed.ref, pos)

    def cancel(self) -> None:
        """Drop the wire being dragged (if any) and show a picked-up edge again."""
        drag, self.drag = self.drag, None
        if drag is None:
            return
        if drag.target is not None:
            drag.target.set_highlight(None)
        self.scene.removeItem(drag.wire)
        if drag.detached is not None and drag.detached in self.scene.edge_items:
            self.scene.edge_items[drag.detached].show()
