"""The scene draws an engine Graph by following its signals; it never mutates the graph.

Gestures (a wire dropped on a port, nodes dragged, a fix clicked) leave as Qt signals that the
view turns into Document calls; the graph then changes and its signals bring the scene along.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QGraphicsScene

from layerloom.engine.graph import Edge, Graph, GraphError, Node
from layerloom.engine.registry import LAYERS
from layerloom.engine.shapes import ShapeReport
from layerloom.engine.spec import fmt_shape
from layerloom.gui import theme as th
from layerloom.gui.canvas.edge_item import EdgeItem, WireItem
from layerloom.gui.canvas.node_item import NodeItem
from layerloom.gui.canvas.port_item import PortItem

SCENE_EXTENT = 50_000.0


class _WireDrag:
    """A connection being dragged: ``fixed`` is the port it started from (or, when an existing
    edge was picked up by its end, the edge's source port)."""

    def __init__(self, fixed: PortItem, wire: WireItem, detached: Edge | None):
        self.fixed, self.wire, self.detached = fixed, wire, detached
        self.target: PortItem | None = None


class GraphScene(QGraphicsScene):
    connect_requested = Signal(tuple, tuple)  # (src ref, dst ref)
    reconnect_requested = Signal(object, tuple, tuple)  # (old edge, src ref, new dst ref)
    disconnect_requested = Signal(object)  # edge
    wire_released = Signal(tuple, QPointF)  # src ref, scene position: a wire dropped on nothing
    nodes_moved = Signal(dict)  # {node_id: (x, y)} after a drag
    fix_requested = Signal(str)  # node id whose proposed fix was clicked
    refused = Signal(str)  # a gesture that cannot become an edit (output dropped on output)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSceneRect(-SCENE_EXTENT, -SCENE_EXTENT, 2 * SCENE_EXTENT, 2 * SCENE_EXTENT)
        self.graph: Graph | None = None
        self.items_by_id: dict[str, NodeItem] = {}
        self.edge_items: dict[Edge, EdgeItem] = {}
        self.report = ShapeReport()
        self.theme = th.current()
        self._drag: _WireDrag | None = None
        self._press_positions: dict[str, QPointF] = {}

    # ------------------------------------------------------------------ following the graph
    def _subscriptions(self, graph: Graph) -> list:
        g = graph
        return [(g.node_added, self._on_node_added), (g.node_removed, self._on_node_removed),
                (g.edge_added, self._on_edge_added), (g.edge_removed, self._on_edge_removed),
                (g.attr_changed, self._on_attr_changed), (g.node_moved, self._on_node_moved),
                (g.node_renamed, self._on_node_renamed),
                (g.frozen_changed, self._on_frozen_changed)]

    def set_graph(self, graph: Graph | None) -> None:
        """Draw ``graph`` from now on (None detaches)."""
        if self.graph is not None:
            for signal, slot in self._subscriptions(self.graph):
                signal.disconnect(slot)
        self._cancel_drag()
        self.clear()
        self.items_by_id.clear()
        self.edge_items.clear()
        self.graph = graph
        if graph is None:
            return
        for signal, slot in self._subscriptions(graph):
            signal.connect(slot)
        for node in graph.nodes.values():
            self._on_node_added(node)
        for edge in graph.edges:
            self._on_edge_added(edge)

    def _on_node_added(self, node: Node) -> None:
        cls = LAYERS[node.type]
        item = NodeItem(node.id, node.type, cls.category, cls.inputs, cls.outputs,
                        cls.description())
        item.set_theme(self.theme)
        item.set_face(node.id, cls.label(node.attrs), node.frozen)
        item.fix_button.clicked.connect(lambda: self.fix_requested.emit(item.node_id))
        item.setPos(QPointF(*node.pos))
        self.addItem(item)
        self.items_by_id[node.id] = item
        self._style_ports(item)

    def _on_node_removed(self, node_id: str) -> None:
        item = self.items_by_id.pop(node_id)
        self.removeItem(item)

    def _on_edge_added(self, edge: Edge) -> None:
        item = EdgeItem(edge)
        item.set_theme(self.theme)
        self.addItem(item)
        self.edge_items[edge] = item
        self._route(item)
        item.set_text(self._shape_text(edge))

    def _on_edge_removed(self, edge: Edge) -> None:
        item = self.edge_items.pop(edge)
        self.removeItem(item)

    def _on_attr_changed(self, node_id: str, name: str, value) -> None:
        node = self.graph.nodes[node_id]
        item = self.items_by_id[node_id]
        item.set_face(node_id, LAYERS[node.type].label(node.attrs), node.frozen)
        self._route_edges_of(node_id)

    def _on_node_moved(self, node_id: str, pos: tuple) -> None:
        item = self.items_by_id[node_id]
        if (item.pos().x(), item.pos().y()) != tuple(pos):
            item.setPos(QPointF(*pos))

    def _on_node_renamed(self, old: str, new: str) -> None:
        item = self.items_by_id.pop(old)
        self.items_by_id[new] = item
        node = self.graph.nodes[new]
        item.set_face(new, LAYERS[node.type].label(node.attrs), node.frozen)
        ren = lambda ref: (new, ref[1]) if ref[0] == old else ref  # noqa: E731
        for edge in [e for e in self.edge_items if old in (e.src[0], e.dst[0])]:
            edge_item = self.edge_items.pop(edge)
            edge_item.edge = Edge(ren(edge.src), ren(edge.dst))
            self.edge_items[edge_item.edge] = edge_item

    def _on_frozen_changed(self, node_id: str, frozen: bool) -> None:
        node = self.graph.nodes[node_id]
        self.items_by_id[node_id].set_face(node_id, LAYERS[node.type].label(node.attrs), frozen)

    # ------------------------------------------------------------------ shapes and theme
    def apply_report(self, report: ShapeReport) -> None:
        """Colour failing nodes, label edges with their shapes, colour ports by what flows."""
        self.report = report
        for node_id, item in self.items_by_id.items():
            item.set_problem(report.errors.get(node_id), report.fixes.get(node_id))
            self._style_ports(item)
            self._route_edges_of(node_id)
        for edge, item in self.edge_items.items():
            item.set_text(self._shape_text(edge))

    def _shape_text(self, edge: Edge) -> str:
        shape = self.report.shapes.get(tuple(edge.src))
        return fmt_shape(shape) if shape is not None else ""

    def _style_ports(self, item: NodeItem) -> None:
        t = self.theme
        for port in item.ports():
            ref = port.ref
            if not port.is_output:
                edge = self.graph.edge_into(ref) if self.graph else None
                ref = tuple(edge.src) if edge else None
            shape = self.report.shapes.get(ref) if ref else None
            colour = (t.port_unknown if shape is None else
                      t.port_scalar if len(shape) == 0 or shape == (None,) else t.port_data)
            port.set_style(colour, t.node_body, t.port_ok, t.port_bad)
            port.setToolTip(f"{port.port}: {fmt_shape(shape)}" if shape is not None else port.port)

    def set_theme(self, theme: th.Theme) -> None:
        self.theme = theme
        self.setBackgroundBrush(theme.canvas)
        for item in self.items_by_id.values():
            item.set_theme(theme)
            self._style_ports(item)
        for item in self.edge_items.values():
            item.set_theme(theme)
        self.update()

    # ------------------------------------------------------------------ training overlays
    def set_node_warning(self, node_id: str, kind: str, reason: str | None,
                         error: bool = False) -> None:
        """A warning badge (reason as tooltip) on a node, e.g. kind "gradient" or "data";
        ``error``: a red badge, for what keeps Train from starting."""
        item = self.items_by_id.get(node_id)
        if item is not None:
            item.set_warning(kind, reason, error)

    def clear_warnings(self, kind: str) -> None:
        for item in self.items_by_id.values():
            item.set_warning(kind, None)

    def warnings_of(self, node_id: str) -> dict[str, str]:
        item = self.items_by_id.get(node_id)
        return dict(item.warnings) if item is not None else {}

    def set_alert(self, node_id: str | None, reason: str = "") -> None:
        """Halo the node where a run went non-finite (None clears every alert)."""
        for nid, item in self.items_by_id.items():
            item.set_alert(reason if nid == node_id else None)

    # ------------------------------------------------------------------ geometry helpers
    def port_item(self, ref: tuple, output: bool) -> PortItem:
        return self.items_by_id[ref[0]].port(ref[1], output)

    def _route(self, item: EdgeItem) -> None:
        p1 = self.port_item(item.edge.src, True).scenePos()
        p2 = self.port_item(item.edge.dst, False).scenePos()
        item.set_points(p1, p2)

    def _route_edges_of(self, node_id: str) -> None:
        for edge, item in self.edge_items.items():
            if node_id in (edge.src[0], edge.dst[0]):
                self._route(item)

    def node_item_moved(self, node_id: str) -> None:
        """Called by a NodeItem while it is dragged: its wires follow at once."""
        if node_id in self.items_by_id:
            self._route_edges_of(node_id)

    def node_sizes(self) -> dict[str, tuple]:
        return {n: (i.width, i.height) for n, i in self.items_by_id.items()}

    # ------------------------------------------------------------------ selection
    def selected_node_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_edges(self) -> list[Edge]:
        return [i.edge for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def select_only(self, node_ids: list[str]) -> None:
        self.clearSelection()
        for n in node_ids:
            if n in self.items_by_id:
                self.items_by_id[n].setSelected(True)

    def select_all(self) -> None:
        for item in [*self.items_by_id.values(), *self.edge_items.values()]:
            item.setSelected(True)

    # ------------------------------------------------------------------ wiring gestures
    def _port_at(self, pos: QPointF) -> PortItem | None:
        return next((i for i in self.items(pos) if isinstance(i, PortItem)), None)

    def _node_at(self, pos: QPointF) -> NodeItem | None:
        return next((i for i in self.items(pos) if isinstance(i, NodeItem)), None)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        port = self._port_at(event.scenePos()) if event.button() == Qt.LeftButton else None
        if port is not None and self.graph is not None:
            self._start_drag(port, event.scenePos())
            event.accept()
            return
        super().mousePressEvent(event)
        self._press_positions = {i.node_id: i.pos() for i in self.selectedItems()
                                 if isinstance(i, NodeItem)}

    def _start_drag(self, port: PortItem, pos: QPointF) -> None:
        detached = None
        if not port.is_output:
            detached = self.graph.edge_into(port.ref)
            if detached is not None:  # picking up an edge by its end
                self.edge_items[detached].hide()
                port = self.port_item(detached.src, True)
        self._drag = _WireDrag(port, WireItem(self.theme), detached)
        self.addItem(self._drag.wire)
        self._update_wire(pos)

    def _update_wire(self, pos: QPointF) -> None:
        drag = self._drag
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

    def _endpoints(self, target: PortItem) -> tuple | None:
        fixed = self._drag.fixed
        if target.is_output == fixed.is_output:
            return None
        return (fixed.ref, target.ref) if fixed.is_output else (target.ref, fixed.ref)

    def _acceptable(self, target: PortItem) -> bool:
        ends = self._endpoints(target)
        if ends is None:
            return False
        detached = self._drag.detached
        if detached is not None and tuple(detached.dst) == ends[1]:
            return True
        try:
            self.graph.check_connect(*ends)
        except GraphError:
            return False
        return True

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._drag is not None:
            self._update_wire(event.scenePos())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._drag is not None:
            self._finish_drag(event.scenePos())
            event.accept()
            return
        super().mouseReleaseEvent(event)
        self._emit_moves()

    def _finish_drag(self, pos: QPointF) -> None:
        drag = self._drag
        target = self._port_at(pos)
        if target is None and drag.fixed.is_output:
            node = self._node_at(pos)
            if node is not None and node.inputs and node.node_id != drag.fixed.node_id:
                free = [p for p in node.inputs.values() if self.graph.edge_into(p.ref) is None]
                target = (free or list(node.inputs.values()))[0]
        self._cancel_drag()
        ends = self._endpoints_for(drag, target)
        if ends is not None:
            if drag.detached is None:
                self.connect_requested.emit(*ends)
            elif tuple(drag.detached.dst) != ends[1] or tuple(drag.detached.src) != ends[0]:
                self.reconnect_requested.emit(drag.detached, *ends)
        elif target is not None and target is not drag.fixed:
            self.refused.emit("connect an output (right side) to an input (left side)")
        elif target is None and drag.detached is not None:
            self.disconnect_requested.emit(drag.detached)
        elif target is None and drag.fixed.is_output:
            self.wire_released.emit(drag.fixed.ref, pos)

    def _endpoints_for(self, drag: _WireDrag, target: PortItem | None) -> tuple | None:
        if target is None or target is drag.fixed:
            return None
        self._drag = drag
        try:
            return self._endpoints(target)
        finally:
            self._drag = None

    def _cancel_drag(self) -> None:
        drag, self._drag = self._drag, None
        if drag is None:
            return
        if drag.target is not None:
            drag.target.set_highlight(None)
        self.removeItem(drag.wire)
        if drag.detached is not None and drag.detached in self.edge_items:
            self.edge_items[drag.detached].show()

    def _emit_moves(self) -> None:
        moved = {}
        for node_id, old in self._press_positions.items():
            item = self.items_by_id.get(node_id)
            if item is not None and item.pos() != old:
                moved[node_id] = (round(item.pos().x()), round(item.pos().y()))
        self._press_positions = {}
        if moved:
            self.nodes_moved.emit(moved)
