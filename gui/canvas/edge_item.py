"""A wire between two ports, with the tensor shape flowing through it written on it (`6×28×28`).

Holds the Edge (port references by node id), never node objects. ``WireItem`` is the dashed
rubber band that follows the mouse while a connection is being dragged.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (QColor, QFontMetricsF, QPainter, QPainterPath, QPainterPathStroker,
                           QPen)
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem

from layerloom.engine.graph import Edge
from layerloom.gui import theme as th


def wire_path(p1: QPointF, p2: QPointF) -> QPainterPath:
    """A horizontal S-curve from an output (going right) to an input (coming from the left)."""
    dx = abs(p2.x() - p1.x())
    reach = max(40.0, dx * 0.5) if p2.x() >= p1.x() else max(90.0, dx * 0.35 + 60.0)
    path = QPainterPath(p1)
    path.cubicTo(QPointF(p1.x() + reach, p1.y()), QPointF(p2.x() - reach, p2.y()), p2)
    return path


class EdgeItem(QGraphicsItem):
    def __init__(self, edge: Edge):
        super().__init__()
        self.edge = edge
        self.text = ""
        self.theme = th.current()
        self.path = QPainterPath()
        self._label_rect = QRectF()
        self.flow: bool | None = None  # gradient-flow overlay: carries gradient / none / off
        self.setFlag(QGraphicsItem.ItemIsSelectable)
        self.setZValue(-1)
        self.setAcceptHoverEvents(True)

    def __repr__(self) -> str:
        return f"EdgeItem({self.edge.src} -> {self.edge.dst}, {self.text!r})"

    def set_points(self, p1: QPointF, p2: QPointF) -> None:
        self.prepareGeometryChange()
        self.path = wire_path(p1, p2)
        self._place_label()

    def set_text(self, text: str) -> None:
        if text != self.text:
            self.prepareGeometryChange()
            self.text = text
            self._place_label()
            (a, p), (b, q) = self.edge.src, self.edge.dst
            self.setToolTip(f"{a}.{p} → {b}.{q}" + (f"\nshape: {text}" if text else ""))

    def set_theme(self, theme: th.Theme) -> None:
        self.theme = theme
        self.update()

    def set_flow(self, flow: bool | None) -> None:
        """The gradient-flow overlay's mark: True carries gradient to a trainable parameter,
        False carries none (drawn faint), None draws the plain wire."""
        if flow != self.flow:
            self.flow = flow
            self.update()

    def _place_label(self) -> None:
        if not self.text:
            self._label_rect = QRectF()
            return
        fm = QFontMetricsF(th.node_fonts()[1])
        w, h = fm.horizontalAdvance(self.text) + 12, fm.height() + 4
        mid = self.path.pointAtPercent(0.5)
        self._label_rect = QRectF(mid.x() - w / 2, mid.y() - h / 2, w, h)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return self.path.boundingRect().adjusted(-4, -4, 4, 4).united(self._label_rect)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(12)
        out = stroker.createStroke(self.path)
        if not self._label_rect.isEmpty():
            out.addRect(self._label_rect)
        return out

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = self.theme
        painter.setRenderHint(QPainter.Antialiasing)
        colour = t.selection if self.isSelected() else t.edge
        width, style = (2.8 if self.isSelected() else 2.0), Qt.SolidLine
        if self.flow is True and not self.isSelected():
            colour, width = th.FLOW, 3.2
        elif self.flow is False and not self.isSelected():
            colour, style = QColor(colour), Qt.DashLine
            colour.setAlpha(110)
        painter.setPen(QPen(colour, width, style, Qt.RoundCap))
        painter.setBrush(Qt.NoBrush)
        painter.drawPath(self.path)
        if self._label_rect.isEmpty():
            return
        painter.setPen(QPen(colour, 1.0))
        painter.setBrush(t.edge_label_bg)
        r = self._label_rect
        painter.drawRoundedRect(r, r.height() / 2, r.height() / 2)
        painter.setFont(th.node_fonts()[1])
        painter.setPen(t.text)
        painter.drawText(r, Qt.AlignCenter, self.text)


class WireItem(QGraphicsPathItem):
    """The rubber band drawn while dragging a connection."""

    def __init__(self, theme: th.Theme):
        super().__init__()
        pen = QPen(theme.selection, 2.2, Qt.DashLine, Qt.RoundCap)
        self.setPen(pen)
        self.setZValue(5)

    def set_points(self, p1: QPointF, p2: QPointF) -> None:
        self.setPath(wire_path(p1, p2))
