"""The scene draws an engine Graph by following its signals; it never mutates the graph.

Gestures (a wire dropped on a port, nodes dragged, a fix clicked) leave as Qt signals that the
view turns into Document calls; the graph then changes and its signals bring the scene along.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, Signal
from PySide6.QtWidgets import QGraphicsScene

from layerloom.engine.graph import Edge, Graph, Node
from layerloom.engine.shapes import ShapeReport
from layerloom.engine.spec import fmt_shape
from layerloom.gui import theme as th
from layerloom.gui.canvas.block_item import BlockFaces
from layerloom.gui.canvas.edge_item import EdgeItem
from layerloom.gui.canvas.gestures import SceneGestures
from layerloom.gui.canvas.node_item import NodeItem
from layerloom.gui.canvas.overlays import NodeOverlays
from layerloom.gui.canvas.port_item import PortItem

SCENE_EXTENT = 50_000.0


def _shape_text(report: ShapeReport, edge: Edge) -> str:
    shape = report.shapes.get(tuple(edge.src))
    return fmt_shape(shape) if shape is not None else ""


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
        self.gestures = SceneGestures(self)  # wire and node drags
        self.overlays = NodeOverlays(self)  # training's warning badges and alerts
        self.blocks = BlockFaces(self)  # block instances: ×N, parameters, ports that change

    # ------------------------------------------------------------------ following the graph
    def _subscriptions(self, graph: Graph) -> list:
        g = graph
        return [(g.node_added, self._on_node_added), (g.node_removed, self._on_node_removed),
                (g.edge_added, self._on_edge_added), (g.edge_removed, self._on_edge_removed),
                (g.attr_changed, self._on_face_changed), (g.node_moved, self._on_node_moved),
                (g.node_renamed, self._on_node_renamed),
                (g.frozen_changed, self._on_face_changed)]

    def set_graph(self, graph: Graph | None) -> None:
        """Draw ``graph`` from now on (None detaches)."""
        if self.graph is not None:
            for signal, slot in self._subscriptions(self.graph):
                signal.disconnect(slot)
        self.gestures.cancel()
        self.clear()
        self.items_by_id.clear()
        self.edge_items.clear()
        self.graph = graph
        self.blocks.follow(graph)
        if graph is None:
            return
        for signal, slot in self._subscriptions(graph):
            signal.connect(slot)
        for node in graph.nodes.values():
            self._on_node_added(node)
        for edge in graph.edges:
            self._on_edge_added(edge)

    def _on_node_added(self, node: Node) -> None:
        cls = self.graph.layer(node.id)
        item = self.blocks.make_item(self.graph, node)
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
        item.set_text(_shape_text(self.report, edge))

    def _on_edge_removed(self, edge: Edge) -> None:
        item = self.edge_items.pop(edge)
        self.removeItem(item)

    def _on_face_changed(self, node_id: str, *_change) -> None:
        """An attribute (the label shows some; Chunk's count of pieces and a block's ports may
        change its ports) or the frozen flag changed."""
        node = self.graph.nodes[node_id]
        # New ports in place (rebuilding the item would deselect the node and delete the
        # inspector's spin box that asked for them in the middle of its key event).
        self.blocks.refresh(node_id)
        item = self.items_by_id[node_id]
        item.set_face(node_id, self.graph.layer(node_id).label(node.attrs), node.frozen)
        self._route_edges_of(node_id)

    def _on_node_moved(self, node_id: str, pos: tuple) -> None:
        item = self.items_by_id[node_id]
        if (item.pos().x(), item.pos().y()) != tuple(pos):
            item.setPos(QPointF(*pos))

    def _on_node_renamed(self, old: str, new: str) -> None:
        item = self.items_by_id.pop(old)
        self.items_by_id[new] = item
        node = self.graph.nodes[new]
        item.set_face(new, self.graph.layer(new).label(node.attrs), node.frozen)
        ren = lambda ref: (new, ref[1]) if ref[0] == old else ref  # noqa: E731
        for edge in [e for e in self.edge_items if old in (e.src[0], e.dst[0])]:
            edge_item = self.edge_items.pop(edge)
            edge_item.edge = Edge(ren(edge.src), ren(edge.dst))
            self.edge_items[edge_item.edge] = edge_item

    # ------------------------------------------------------------------ shapes and theme
    def apply_report(self, report: ShapeReport, params: dict | None = None) -> None:
        """Colour failing nodes, label edges with their shapes, colour ports by what flows;
        ``params`` (per node) goes on the blocks' faces."""
        self.report = report
        if params is not None:
            self.blocks.show_params(params)
        for node_id, item in self.items_by_id.items():
            item.set_problem(report.errors.get(node_id), report.fixes.get(node_id))
            self._style_ports(item)
            self._route_edges_of(node_id)
        for edge, item in self.edge_items.items():
            item.set_text(_shape_text(self.report, edge))

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

    # ------------------------------------------------------------------ gestures
    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.gestures.press(event):
            event.accept()
            return
        super().mousePressEvent(event)
        self.gestures.pressed()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.gestures.move(event):
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.gestures.release(event):
            event.accept()
            return
        super().mouseReleaseEvent(event)
        self.gestures.released()
