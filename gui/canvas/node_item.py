"""A node's face on the canvas: "Conv2D 6@5×5" over its id, ports on the sides.

Holds the node id and what it draws (copied from the graph by the scene), never the Node.
Red when shape inference fails, with a one-click "Insert <fix>" button below when the fix is
mechanical; dashed blue and hatched when frozen. Training adds warnings (an amber badge whose
tooltip gives the reasons: the data does not fit, a gradient vanishes or explodes) and an alert
(a thick red halo on the node where a run went non-finite).
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject

from layerloom.gui import theme as th
from layerloom.gui.canvas.port_item import PortItem

MIN_WIDTH, PAD, CORNER = 132.0, 10.0, 7.0


class FixButton(QGraphicsObject):
    """The "Insert Flatten" pill under a red node; one click applies the fix."""

    clicked = Signal()

    def __init__(self, parent: QGraphicsItem):
        super().__init__(parent)
        self.text, self.theme = "", th.current()
        self.setCursor(Qt.PointingHandCursor)
        self.setAcceptedMouseButtons(Qt.LeftButton)
        self.setZValue(3)

    def set_text(self, text: str, theme: th.Theme) -> None:
        self.prepareGeometryChange()
        self.text, self.theme = text, theme
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        fm = QFontMetricsF(th.node_fonts()[1])
        return QRectF(0, 0, fm.horizontalAdvance(self.text) + 20, fm.height() + 8)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.Antialiasing)
        rect = self.boundingRect().adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(self.theme.error, 1.2))
        painter.setBrush(self.theme.node_body)
        painter.drawRoundedRect(rect, rect.height() / 2, rect.height() / 2)
        painter.setFont(th.node_fonts()[1])
        painter.setPen(self.theme.error)
        painter.drawText(rect, Qt.AlignCenter, self.text)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.boundingRect().contains(event.pos()):
            self.clicked.emit()


class NodeItem(QGraphicsItem):
    def __init__(self, node_id: str, type_id: str, category: str, inputs: tuple, outputs: tuple,
                 description: str = ""):
        super().__init__()
        self.node_id, self.type_id, self.category = node_id, type_id, category
        self.description = description
        self.label, self.error, self.fix, self.frozen = "", None, None, False
        self.warnings: dict[str, str] = {}  # kind ("data", "gradient"…) -> reason
        self.severe: set[str] = set()  # the kinds among ``warnings`` that are errors (Analyze)
        self.alert: str | None = None  # why a run stopped here (non-finite value)
        self.theme = th.current()
        self.width = self.height = self.header_h = 0.0
        self.inputs = {p: PortItem(self, p, False) for p in inputs}
        self.outputs = {p: PortItem(self, p, True) for p in outputs}
        self.fix_button = FixButton(self)
        self.fix_button.hide()
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable
                      | QGraphicsItem.ItemSendsGeometryChanges)
        self.setAcceptHoverEvents(True)
        self.relayout()

    def __repr__(self) -> str:
        return f"NodeItem({self.node_id!r}, {self.type_id})"

    @property
    def title(self) -> str:
        return f"{self.type_id} {self.label}".strip()

    def port(self, name: str, output: bool) -> PortItem:
        return (self.outputs if output else self.inputs)[name]

    def ports(self) -> list[PortItem]:
        return [*self.inputs.values(), *self.outputs.values()]

    # ------------------------------------------------------------------ state from the scene
    def set_face(self, node_id: str, label: str, frozen: bool) -> None:
        self.node_id, self.label, self.frozen = node_id, label, frozen
        self.relayout()

    def set_problem(self, error: str | None, fix: str | None) -> None:
        if (error, fix) == (self.error, self.fix):
            return
        self.error, self.fix = error, fix
        self.fix_button.setVisible(bool(fix))
        self.relayout()

    def set_theme(self, theme: th.Theme) -> None:
        self.theme = theme
        self.relayout()

    def set_warning(self, kind: str, reason: str | None, error: bool = False) -> None:
        """Add (or with None remove) one kind of warning; the badge shows all. ``error``: Train
        will refuse because of it (a red badge and border instead of amber)."""
        if self.warnings.get(kind) == reason and (kind in self.severe) == error:
            return
        self.severe.discard(kind)
        if reason is None:
            self.warnings.pop(kind, None)
        else:
            self.warnings[kind] = reason
            if error:
                self.severe.add(kind)
        self.relayout()

    def set_alert(self, reason: str | None) -> None:
        if reason != self.alert:
            self.alert = reason
            self.relayout()

    def tooltip_text(self) -> str:
        lines = [self.error] if self.error else []
        if self.alert:
            lines.append(f"⛔ {self.alert}")
        lines += [f"{'⛔' if kind in self.severe else '⚠'} {reason}"
                  for kind, reason in self.warnings.items()]
        return "\n".join(lines) or f"{self.type_id} · {self.description}"

    def body_text(self) -> str:
        """The line under the title: the node's id (and whether it is frozen)."""
        return self.node_id + ("  · frozen" if self.frozen else "")

    def _badges(self) -> list[tuple]:
        """(fill, glyph colour, glyph) from the right edge leftwards."""
        t, badges = self.theme, []
        if self.blocked:
            badges.append((t.error, QColor("#ffffff"), "!"))
        elif self.frozen:
            badges.append((t.frozen, QColor("#ffffff"), "❄"))
        if set(self.warnings) - self.severe:
            badges.append((t.warning, QColor("#1d1d1f"), "!"))
        return badges

    # ------------------------------------------------------------------ geometry
    def _named_ports(self) -> bool:
        return len(self.inputs) > 1 or len(self.outputs) > 1

    def relayout(self) -> None:
        """Size from the text and the ports; place the ports and the fix button."""
        # something keeps this node from training: a shape error, an Analyze error, an alert
        self.blocked = bool(self.error or self.alert or self.severe)
        title_font, detail_font = th.node_fonts()
        tf, df = QFontMetricsF(title_font), QFontMetricsF(detail_font)
        self.header_h = tf.height() + 10
        row_h = max(df.height() + 6, 20.0)
        rows = max(len(self.inputs), len(self.outputs), 1)
        names = 0.0
        if self._named_ports():
            longest = lambda ports: max((df.horizontalAdvance(p) for p in ports), default=0.0)  # noqa: E731
            names = longest(self.inputs) + longest(self.outputs) + 3 * PAD
        badge_room = 22 + (self.header_h - 6) * max(0, len(self._badges()) - 1)
        width = max(MIN_WIDTH, tf.horizontalAdvance(self.title) + 2 * PAD + badge_room,
                    df.horizontalAdvance(self.body_text()) + 2 * PAD + 22, names)
        body_top = self.header_h + (df.height() + 4 if self._named_ports() else 0.0)
        height = body_top + rows * row_h + (PAD if self._named_ports() else 6.0)
        if not self._named_ports():
            height = self.header_h + max(row_h, df.height() + 2 * PAD)
        self.prepareGeometryChange()
        self.width, self.height, self.row_h, self.body_top = width, height, row_h, body_top
        self._place_ports()
        self.fix_button.set_text(f"Insert {self.fix}" if self.fix else "", self.theme)
        self.fix_button.setPos((width - self.fix_button.boundingRect().width()) / 2, height + 6)
        self.setToolTip(self.tooltip_text())
        self.update()

    def _place_ports(self) -> None:
        """One row per port under the names; a node with single ports has them mid-body."""
        named, middle = self._named_ports(), self.header_h + (self.height - self.header_h) / 2
        for x, ports in ((0.0, self.inputs), (self.width, self.outputs)):
            for i, p in enumerate(ports.values()):
                p.setPos(x, self.body_top + (i + 0.5) * self.row_h if named else middle)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return QRectF(-4, -4, self.width + 8, self.height + 8)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(QRectF(0, 0, self.width, self.height), CORNER, CORNER)
        return path

    # ------------------------------------------------------------------ painting
    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = self.theme
        painter.setRenderHint(QPainter.Antialiasing)
        rect = QRectF(0, 0, self.width, self.height)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor(0, 0, 0, 70 if t.dark else 28))
        painter.drawRoundedRect(rect.translated(0, 2.5), CORNER, CORNER)
        if self.alert:  # a halo that reads at any zoom: "the run stopped here"
            painter.setPen(QPen(QColor(t.error.red(), t.error.green(), t.error.blue(), 110), 9))
            painter.setBrush(Qt.NoBrush)
            painter.drawRoundedRect(rect, CORNER + 2, CORNER + 2)
            painter.setPen(Qt.NoPen)
        painter.setBrush(t.error_fill if self.error else t.node_body)
        painter.drawRoundedRect(rect, CORNER, CORNER)
        self._paint_header(painter, rect)
        self._paint_body(painter)
        painter.setBrush(Qt.NoBrush)
        painter.setPen(self._border_pen())
        painter.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), CORNER, CORNER)

    def _border_pen(self) -> QPen:
        """Colour says selected / failing / frozen; a dashed line always says frozen."""
        t = self.theme
        if self.isSelected():
            colour, width = t.selection, 2.6
        elif self.blocked:
            colour, width = t.error, 2.2
        elif self.frozen:
            colour, width = t.frozen, 2.0
        else:
            colour, width = t.node_border, 1.0
        return QPen(colour, width, Qt.DashLine if self.frozen else Qt.SolidLine)

    def _paint_header(self, painter: QPainter, rect: QRectF) -> None:
        t = self.theme
        header = QPainterPath()
        header.addRoundedRect(QRectF(0, 0, rect.width(), self.header_h + CORNER), CORNER, CORNER)
        clip = QPainterPath()
        clip.addRect(QRectF(0, 0, rect.width(), self.header_h))
        fill = QColor(t.error) if self.error else t.header(self.category)
        if self.error:
            fill.setAlpha(200)
        painter.setPen(Qt.NoPen)
        painter.setBrush(fill)
        painter.drawPath(header.intersected(clip))
        if self.frozen:  # hatching says "these weights do not train" at a glance
            painter.setBrush(QBrush(t.frozen, Qt.BDiagPattern))
            painter.drawPath(header.intersected(clip))
        title_font, _ = th.node_fonts()
        painter.setFont(title_font)
        painter.setPen(QColor("#ffffff") if self.error else t.header_text(self.category))
        painter.drawText(QRectF(PAD, 0, rect.width() - 2 * PAD, self.header_h),
                         Qt.AlignVCenter | Qt.AlignLeft, self.title)
        for i, badge in enumerate(self._badges()):
            self._paint_badge(painter, rect, i, *badge)

    def _paint_badge(self, painter: QPainter, rect: QRectF, index: int, fill: QColor,
                     ink: QColor, glyph: str) -> None:
        t, size = self.theme, self.header_h - 10
        centre = QPointF(rect.width() - PAD - size / 2 - index * (size + 4), self.header_h / 2)
        painter.setPen(QPen(t.node_body, 1.4))
        painter.setBrush(fill)
        painter.drawEllipse(centre, size / 2, size / 2)
        _, detail_font = th.node_fonts()
        detail_font.setBold(True)
        painter.setFont(detail_font)
        painter.setPen(ink)
        painter.drawText(QRectF(centre.x() - size / 2, centre.y() - size / 2, size, size),
                         Qt.AlignCenter, glyph)

    def _paint_body(self, painter: QPainter) -> None:
        t = self.theme
        _, detail_font = th.node_fonts()
        painter.setFont(detail_font)
        painter.setPen(t.error if self.error else t.text_muted)
        id_rect = QRectF(PAD + 4, self.header_h, self.width - 2 * PAD - 8,
                         (self.body_top - self.header_h) if self._named_ports()
                         else self.height - self.header_h)
        align = Qt.AlignVCenter | (Qt.AlignHCenter if self._named_ports() else Qt.AlignLeft)
        painter.drawText(id_rect.adjusted(0, 2, 0, 0), align, self.body_text())
        if not self._named_ports():
            return
        painter.setPen(t.text)
        for side, ports in ((Qt.AlignLeft, self.inputs), (Qt.AlignRight, self.outputs)):
            for i, name in enumerate(ports):
                y = self.body_top + (i + 0.5) * self.row_h  # as _place_ports puts named ports
                r = QRectF(PAD + 2, y - self.row_h / 2, self.width - 2 * PAD - 4, self.row_h)
                painter.drawText(r, side | Qt.AlignVCenter, name)

    def itemChange(self, change, value):  # noqa: N802 (Qt override)
        if change == QGraphicsItem.ItemPositionHasChanged and self.scene() is not None:
            self.scene().node_item_moved(self.node_id)
        elif change == QGraphicsItem.ItemSelectedHasChanged:
            self.setZValue(1 if value else 0)
        return super().itemChange(change, value)


def set_ports(item: NodeItem, inputs: tuple, outputs: tuple) -> None:
    """Ports that follow the node's attributes (Chunk's pieces): the ones that stay keep their
    items (and the edges drawn to them), gone ones leave the scene, new ones appear. A function,
    not a method: NodeItem keeps to its method budget."""
    for ports, names, output in ((item.inputs, inputs, False), (item.outputs, outputs, True)):
        for name in [p for p in ports if p not in names]:
            gone = ports.pop(name)
            if gone.scene() is not None:
                gone.scene().removeItem(gone)
        kept = dict(ports)
        ports.clear()
        ports.update((name, kept.get(name) or PortItem(item, name, output)) for name in names)
    item.relayout()
