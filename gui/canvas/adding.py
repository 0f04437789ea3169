"""Where new nodes land: a palette drop or double-click, quick add (Tab, right-click on empty
canvas, a wire released on nothing), a block from the library (a stock block asks for its
settings first). The node's title sits under the cursor; a node made from a released wire gets
that wire in its first input."""
from __future__ import annotations

from PySide6.QtCore import QObject, QPointF
from PySide6.QtWidgets import QGraphicsView

from layerloom.gui.layout import free_position

from layerloom.engine.block_templates import TEMPLATES
from layerloom.gui.block_dialog import BlockSettingsDialog
from layerloom.gui.block_edits import TEMPLATE
from layerloom.gui.quick_add import QuickAddPopup

DROP_OFFSET = QPointF(60.0, 18.0)  # a new node's top-left sits this far up-left of the cursor


class NodeAdding(QObject):
    def __init__(self, view: QGraphicsView):
        super().__init__(view)
        self.view, self.document = view, view.document  # a GraphView and its Document
        self.popup = QuickAddPopup(view)
        self.popup.chosen.connect(self._chosen)
        self._pos, self._src = QPointF(), None
        self.dialog: BlockSettingsDialog | None = None  # the last stock block's settings

    def add_at(self, type_id: str, scene_pos: QPointF) -> str | None:
        """Add a node so that the cursor is near its title, moved right past any node it would
        touch (Tab twice at one spot placed two nodes edge to edge, their ports unreachable);
        returns the new id."""
        p = scene_pos - DROP_OFFSET
        x, y = free_position(self.document.graph, (p.x(), p.y()),
                             self.view.graph_scene.node_sizes(), step=(60.0, 0.0))
        return self.document.add_node(type_id, (round(x), round(y)))

    def add_block(self, payload: str, scene_pos: QPointF | None = None) -> str | None:
        """A library block ("source\tkey") at ``scene_pos`` (default: the view centre); a
        stock block opens its settings first and lands when they are accepted."""
        p = (scene_pos if scene_pos is not None else self.view.centre_scene_pos()) - DROP_OFFSET
        pos = (round(p.x()), round(p.y()))
        source, key = payload.split("\t", 1)
        if source != TEMPLATE:
            return self.document.blocks.insert(source, key, pos)
        self.dialog = BlockSettingsDialog(TEMPLATES[key], self.view.window())
        self.dialog.chosen.connect(
            lambda settings: self.document.blocks.insert(TEMPLATE, key, pos, settings))
        self.dialog.open()
        return None

    def add_at_centre(self, type_id: str) -> str | None:
        """Double-click in the palette: at the view centre, stepped so repeats do not stack."""
        p = self.view.centre_scene_pos()
        taken = {tuple(n.pos) for n in self.document.graph.nodes.values()}
        while (round(p.x() - DROP_OFFSET.x()), round(p.y() - DROP_OFFSET.y())) in taken:
            p += QPointF(30, 30)
        return self.add_at(type_id, p)

    def open_quick_add(self, scene_pos: QPointF, src: tuple | None = None) -> None:
        """The search popup at ``scene_pos``; with ``src`` (a released wire's output) the layers
        that take its shape come first and the chosen one gets connected."""
        self._pos, self._src = QPointF(scene_pos), src
        shape = self.document.report.shapes.get(tuple(src)) if src else None
        view = self.view
        self.popup.popup(view.viewport().mapToGlobal(view.mapFromScene(scene_pos)), shape)

    def _chosen(self, type_id: str) -> None:
        if self._src is None:
            self.add_at(type_id, self._pos)
            return
        p = self._pos - QPointF(0, 34)
        self.document.compound.add_connected_node(type_id, (round(p.x()), round(p.y())), self._src)
        self._src = None
