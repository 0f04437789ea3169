"""The canvas widget: zoom, palette drops, the node menu; turns scene gestures into Document calls.

Panning, nudging, Tab and the keys that open and close blocks are in ``navigation.py``; where
new nodes land (drops, quick add, library blocks) in ``adding.py``. A block opens in place on a
double-click; the breadcrumb over the corner says which level is shown. Drops are handled by overriding the view's drag handlers (events reach them
through the viewport), so tests can send real QDrag*Events to ``view.viewport()`` offscreen.
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsView, QMenu

from layerloom.engine.graph import Graph
from layerloom.gui import theme as th
from layerloom.gui.block_palette import BLOCK_MIME
from layerloom.gui.canvas.adding import NodeAdding
from layerloom.gui.canvas.breadcrumb import Breadcrumb
from layerloom.gui.canvas.navigation import ViewNavigation
from layerloom.gui.canvas.node_item import NodeItem
from layerloom.gui.canvas.scene import GraphScene
from layerloom.gui.document import Document
from layerloom.gui.layout import is_cramped, layered_positions

LAYER_MIME = "application/x-layerloom-layer"  # payload: the layer type id, UTF-8
MIN_ZOOM, MAX_ZOOM, FIT_MAX_ZOOM = 0.15, 4.0, 1.25


class GraphView(QGraphicsView):
    selection_changed = Signal(list)  # selected node ids

    def __init__(self, document: Document, parent=None):
        super().__init__(parent)
        self.document = document
        self.graph_scene = GraphScene(self)
        self.setScene(self.graph_scene)
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.FullViewportUpdate)
        self.setDragMode(QGraphicsView.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setAcceptDrops(True)
        self.setMouseTracking(True)
        self.setFrameShape(QGraphicsView.NoFrame)
        self.adding = NodeAdding(self)  # drops, quick add, nodes made from released wires
        self.quick_add = self.adding.popup
        self.navigation = ViewNavigation(self)  # pan, nudge, Tab, Enter / Esc into and out of blocks
        self.breadcrumb = Breadcrumb(document.levels, self)
        self.keep_fitted = False  # until the person zooms or pans, resizing the window re-fits
        self._wire()
        self.graph_scene.set_theme(th.current())
        self._show_graph(document.graph)

    def _wire(self) -> None:
        doc, sc = self.document, self.graph_scene
        doc.project_replaced.connect(self._show_graph)
        doc.level_changed.connect(lambda graph: self._show_graph(graph, opened=False))
        doc.report_changed.connect(lambda report: sc.apply_report(report, doc.params))
        doc.select_requested.connect(sc.select_only)
        sc.connect_requested.connect(doc.connect)
        sc.reconnect_requested.connect(doc.compound.reconnect)
        sc.disconnect_requested.connect(doc.disconnect)
        sc.nodes_moved.connect(doc.move_nodes)
        sc.fix_requested.connect(doc.compound.insert_fix)
        sc.refused.connect(doc.message.emit)
        sc.wire_released.connect(lambda src, pos: self.adding.open_quick_add(pos, src))
        sc.selectionChanged.connect(self._emit_selection)

    def _emit_selection(self) -> None:
        if shiboken6.isValid(self.graph_scene):  # the scene clears its selection as it dies
            self.selection_changed.emit(self.graph_scene.selected_node_ids())

    def _show_graph(self, graph: Graph, opened: bool = True) -> None:
        """Draw ``graph``: a file just ``opened`` (laid out when cramped), or a block opened in
        place, or closed again (left as it is: an open is no edit)."""
        self.graph_scene.overlays.path = [node_id for node_id, _ in self.document.levels.path]
        self.graph_scene.set_graph(graph)
        self.graph_scene.apply_report(self.document.report, self.document.params)
        sizes = self.graph_scene.node_sizes()
        if opened and is_cramped(graph, sizes):  # presentation, not an edit: no undo step
            for node_id, pos in layered_positions(graph, sizes, self.viewport_extent()).items():
                graph.move(node_id, pos)
        self.zoom_to_fit()

    def viewport_extent(self) -> tuple[float, float]:
        """The canvas size in pixels (a sensible default before the window is laid out)."""
        size = self.viewport().size()
        return (size.width(), size.height()) if size.width() > 300 and size.height() > 200 \
            else (1100.0, 800.0)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if self.keep_fitted:
            self.zoom_to_fit()

    # ------------------------------------------------------------------ zoom
    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        self.keep_fitted = False
        factor = max(MIN_ZOOM, min(MAX_ZOOM, factor))
        self.scale(factor / self.zoom, factor / self.zoom)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom / 1.25)

    def zoom_to_fit(self) -> None:
        """Show every node (Ctrl+0); never magnify a small graph past FIT_MAX_ZOOM."""
        rect = self.graph_scene.itemsBoundingRect()
        if rect.isEmpty():
            self.resetTransform()
            self.centerOn(0, 0)
            self.keep_fitted = True
            return
        rect = rect.adjusted(-40, -40, 40, 40)
        self.fitInView(rect, Qt.KeepAspectRatio)
        if self.zoom > FIT_MAX_ZOOM or self.zoom < MIN_ZOOM:
            self.set_zoom(self.zoom)
            self.set_zoom(min(self.zoom, FIT_MAX_ZOOM))
        self.centerOn(rect.center())
        self.keep_fitted = True

    def ensure_visible(self, rect: QRectF) -> None:
        """Zoom out (only if needed) and scroll so ``rect`` is in view."""
        view = self.mapToScene(self.viewport().rect()).boundingRect()
        if rect.width() > view.width() or rect.height() > view.height():
            self.fitInView(rect.adjusted(-40, -40, 40, 40), Qt.KeepAspectRatio)
        self.ensureVisible(rect, 20, 20)

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt override)
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom * (1.15 ** steps))
        event.accept()

    # ------------------------------------------------------------------ keys
    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802,A002 (Qt override)
        return False  # Tab opens quick add instead of moving the focus away

    def centre_scene_pos(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    # ------------------------------------------------------------------ drops
    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasFormat(LAYER_MIME) or event.mimeData().hasFormat(BLOCK_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt override)
        where = self.mapToScene(event.position().toPoint())
        if event.mimeData().hasFormat(BLOCK_MIME):
            event.acceptProposedAction()
            self.adding.add_block(bytes(event.mimeData().data(BLOCK_MIME)).decode("utf-8"), where)
            return
        if not event.mimeData().hasFormat(LAYER_MIME):
            event.ignore()
            return
        type_id = bytes(event.mimeData().data(LAYER_MIME)).decode("utf-8")
        event.acceptProposedAction()
        self.adding.add_at(type_id, where)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 (Qt override)
        """On a block: open it in place."""
        item = self.itemAt(event.position().toPoint())
        while item is not None and not isinstance(item, NodeItem):
            item = item.parentItem()
        if item is not None and event.button() == Qt.LeftButton and \
                self.document.levels.enter(item.node_id):
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    # ------------------------------------------------------------------ context menu, painting
    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt override)
        item = self.itemAt(event.pos())
        while item is not None and not isinstance(item, NodeItem):
            item = item.parentItem()
        if item is None:
            self.adding.open_quick_add(self.mapToScene(event.pos()))
            return
        self._node_menu(item.node_id).exec(event.globalPos())

    def _node_menu(self, node_id: str) -> QMenu:
        doc, menu = self.document, QMenu(self)
        node = doc.graph.nodes[node_id]
        fix = doc.report.fixes.get(node_id)
        if fix:
            menu.addAction(f"Insert {fix}", lambda: doc.compound.insert_fix(node_id))
        if doc.graph.definition(node_id) is not None:
            menu.addAction("Open Block", lambda: doc.levels.enter(node_id))
            menu.addAction("Ungroup", lambda: doc.blocks.ungroup(node_id))
            menu.addAction("Make Unique", lambda: doc.blocks.make_unique(node_id))
            menu.addAction("Save Block to Library", lambda: doc.blocks.save_to_library(node_id))
            menu.addSeparator()
        menu.addAction("Unfreeze" if node.frozen else "Freeze",
                       lambda: doc.set_frozen(node_id, not node.frozen))
        menu.addAction("Delete", lambda: doc.remove([node_id]))
        return menu

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 (Qt override)
        theme = self.graph_scene.theme
        canvas = theme.canvas
        if self.document.levels.path:  # inside a block: a faint tint of the block colour
            tint = theme.header(th.BLOCK)
            canvas = QColor((canvas.red() * 9 + tint.red()) // 10,
                            (canvas.green() * 9 + tint.green()) // 10,
                            (canvas.blue() * 9 + tint.blue()) // 10)
        painter.fillRect(rect, canvas)
        if self.zoom < 0.4:
            return  # a dot grid this dense is noise
        step = th.GRID * (2 if self.zoom < 0.8 else 1)
        painter.setPen(QPen(theme.grid, 1.6 / self.zoom))
        x0, y0 = int(rect.left() // step) * step, int(rect.top() // step) * step
        points = [QPointF(x0 + i * step, y0 + j * step)
                  for i in range(int(rect.width() // step) + 2)
                  for j in range(int(rect.height() // step) + 2)]
        painter.drawPoints(points)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.type() == event.Type.PaletteChange:
            self.graph_scene.set_theme(th.current())
            self.breadcrumb.restyle()
        super().changeEvent(event)
