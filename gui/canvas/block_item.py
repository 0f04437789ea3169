"""Block instances on the canvas: one node with the block's name, its ports, its parameter count
and, when it repeats, "×N" over a stack of cards.

``BlockFaces`` keeps them current for the scene: it picks the item class of a new node, writes
the parameter counts the document computed, and rebuilds an instance's item when its ports
change (a BlockInput added inside the definition, an undo there, a switch to another
definition). Nothing here names a layer type: a node is a block when the graph says it has a
definition.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter, QPen
from PySide6.QtWidgets import QGraphicsScene

from layerloom.engine.graph import Graph, Node
from layerloom.gui.canvas.node_item import CORNER, NodeItem, set_ports

STACK = 5.0  # offset between the cards of a repeated block


class BlockNodeItem(NodeItem):
    """A block instance: titled by its definition (and "×N"), a second outline inside its
    border, the cards of a repeat stacked behind it."""

    def __init__(self, *args, **kwargs):
        self.repeat, self.param_count = 1, 0
        super().__init__(*args, **kwargs)

    @property
    def title(self) -> str:
        return self.label or self.type_id

    def body_text(self) -> str:
        frozen = "  · frozen" if self.frozen else ""
        return f"{self.node_id} · {self.param_count:,} params{frozen}"

    def tooltip_text(self) -> str:
        text = super().tooltip_text()
        return text if self.error or self.alert or self.warnings else \
            f"Block {self.label} · double-click (or Enter) to open it in place"

    def set_block(self, repeat: int, param_count: int) -> None:
        if (repeat, param_count) != (self.repeat, self.param_count):
            self.repeat, self.param_count = repeat, param_count
            self.relayout()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return super().boundingRect().adjusted(0, 0, 2 * STACK, 2 * STACK)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = self.theme
        painter.setRenderHint(QPainter.Antialiasing)
        for k in (2, 1)[:0 if self.repeat == 1 else 2]:  # the copies behind, back to front
            painter.setPen(QPen(t.node_border, 1.0))
            painter.setBrush(t.node_body)
            painter.drawRoundedRect(QRectF(k * STACK, k * STACK, self.width, self.height),
                                    CORNER, CORNER)
        super().paint(painter, option, widget)
        painter.setBrush(Qt.NoBrush)
        painter.setPen(QPen(t.node_border, 1.0))  # the inner outline: "a block, not a layer"
        painter.drawRoundedRect(QRectF(3, 3, self.width - 6, self.height - 6), CORNER - 2,
                                CORNER - 2)


class BlockFaces:
    def __init__(self, scene: QGraphicsScene):
        self.scene = scene  # a GraphScene: its graph and items
        self.model: Graph | None = None

    def follow(self, graph: Graph | None) -> None:
        """Listen to the model of the graph the scene now draws."""
        model = graph.model if graph is not None else None
        if model is self.model:
            return
        if self.model is not None:
            self.model.block_changed.disconnect(self._definition_changed)
        self.model = model
        if model is not None:
            model.block_changed.connect(self._definition_changed)

    def make_item(self, graph: Graph, node: Node) -> NodeItem:
        cls = graph.layer(node.id)
        kind = BlockNodeItem if graph.definition(node.id) is not None else NodeItem
        item = kind(node.id, node.type, cls.category, graph.input_ports(node.id),
                    graph.output_ports(node.id), cls.description())
        if kind is BlockNodeItem:
            item.set_block(graph.copies(node.id), 0)
        return item

    def show_params(self, params: dict) -> None:
        for node_id, item in self.scene.items_by_id.items():
            if isinstance(item, BlockNodeItem):
                item.set_block(self.scene.graph.copies(node_id), params.get(node_id, 0))

    def refresh(self, node_id: str) -> None:
        """Give a node's item the ports it has now, in place: a block instance's after an edit
        or an undo inside its definition while the model is shown, a Chunk's after its count
        of pieces changed."""
        scene, graph = self.scene, self.scene.graph
        item = scene.items_by_id.get(node_id)
        ports = (graph.input_ports(node_id), graph.output_ports(node_id))
        if item is None or ports == (tuple(item.inputs), tuple(item.outputs)):
            return
        set_ports(item, *ports)
        scene._style_ports(item)
        scene._route_edges_of(node_id)

    def _definition_changed(self, name: str) -> None:
        graph = self.scene.graph
        if graph is None:
            return
        for node_id in list(graph.nodes):
            if graph.block_of(node_id) == name:
                self.refresh(node_id)
