"""A port: the dot on a node's side where a wire starts (output, right) or ends (input, left).

It holds only its port name and direction; the node id comes from its parent NodeItem, so a
rename never leaves a stale id behind. The hit area is wider than the dot so it is easy to grab.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem

RADIUS = 5.5
HIT_RADIUS = 11.0


class PortItem(QGraphicsItem):
    def __init__(self, parent: QGraphicsItem, port: str, is_output: bool):
        super().__init__(parent)
        self.port, self.is_output = port, is_output
        self.colour = QColor("#888")
        self.ring = QColor("#fff")
        self.highlight: str | None = None  # None, "ok" (valid drop target) or "bad"
        self.highlight_colours = {"ok": QColor("#23a047"), "bad": QColor("#d0302a")}
        self.hovered = False
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CrossCursor)
        self.setZValue(2)

    def __repr__(self) -> str:
        side = "out" if self.is_output else "in"
        return f"PortItem({self.node_id}.{self.port}, {side})"

    @property
    def node_id(self) -> str:
        return self.parentItem().node_id

    @property
    def ref(self) -> tuple:
        return (self.node_id, self.port)

    def set_style(self, colour: QColor, ring: QColor, ok: QColor, bad: QColor) -> None:
        self.colour, self.ring = colour, ring
        self.highlight_colours = {"ok": ok, "bad": bad}
        self.update()

    def set_highlight(self, state: str | None) -> None:
        if state != self.highlight:
            self.highlight = state
            self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        r = HIT_RADIUS + 1
        return QRectF(-r, -r, 2 * r, 2 * r)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addEllipse(QPointF(0, 0), HIT_RADIUS, HIT_RADIUS)
        return path

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.Antialiasing)
        r = RADIUS + (1.5 if self.hovered or self.highlight else 0.0)
        if self.highlight:
            glow = QColor(self.highlight_colours[self.highlight])
            glow.setAlpha(90)
            painter.setPen(Qt.NoPen)
            painter.setBrush(glow)
            painter.drawEllipse(QPointF(0, 0), r + 4, r + 4)
        painter.setPen(QPen(self.ring, 1.6))
        painter.setBrush(QBrush(self.highlight_colours.get(self.highlight, self.colour)))
        painter.drawEllipse(QPointF(0, 0), r, r)

    def hoverEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.hovered = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.hovered = False
        self.update()
