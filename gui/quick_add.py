"""Quick add: a search popup over the registry (Tab or right-click on the canvas).

When a wire was dropped on empty canvas, layers that accept the wire's shape come first. Among
equal matches, types used more often in the bundled samples come first, so "conv" + Enter
gives the convolution people mean without this file naming any layer type.
"""
from __future__ import annotations

import functools
import json

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QBrush, QKeyEvent, QPalette
from PySide6.QtWidgets import QFrame, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from layerloom.engine import paths
from layerloom.engine.registry import CATEGORIES, LAYERS
from layerloom.engine.spec import LayerloomError


def accepts(type_id: str, shape: tuple) -> bool:
    """True when the layer, with default attributes, infers a shape from ``shape`` on each
    required input (an optional one, such as a padding mask, left unconnected)."""
    cls = LAYERS[type_id]
    if not cls.inputs:
        return False
    shapes = [None if p in cls.optional_inputs else tuple(shape) for p in cls.inputs]
    try:
        cls.infer(cls.validate_attrs({}), *shapes)
    except (LayerloomError, ValueError, TypeError, IndexError, ZeroDivisionError):
        return False
    return True


@functools.lru_cache(maxsize=1)
def sample_usage() -> dict[str, int]:
    """How many nodes of each type the bundled samples hold (a popularity hint for ranking)."""
    counts: dict[str, int] = {}
    for path in sorted(paths.SAMPLES.glob("*.json")) if paths.SAMPLES.is_dir() else []:
        try:
            nodes = json.loads(path.read_text(encoding="utf-8")).get("nodes", [])
        except (OSError, ValueError, AttributeError):
            continue
        for node in nodes if isinstance(nodes, list) else []:
            if isinstance(node, dict) and isinstance(node.get("type"), str):
                counts[node["type"]] = counts.get(node["type"], 0) + 1
    return counts


def _match(type_id: str, text: str) -> int | None:
    """0 prefix of the name, 1 inside the name, 2 in category or description, None no match."""
    if not text:
        return 0
    cls, text = LAYERS[type_id], text.lower()
    if type_id.lower().startswith(text):
        return 0
    if text in type_id.lower():
        return 1
    if text in cls.category.lower() or text in cls.description().lower():
        return 2
    return None


def ranked(text: str, shape: tuple | None = None) -> list[tuple[str, bool]]:
    """(type_id, accepts_shape) best first; with a shape, layers without inputs are left out."""
    order = {c: i for i, c in enumerate(CATEGORIES)}
    usage = sample_usage()
    rows = []
    for type_id, cls in LAYERS.items():
        m = _match(type_id, text.strip())
        if m is None or (shape is not None and not cls.inputs):
            continue
        ok = shape is None or accepts(type_id, shape)
        rows.append(((not ok, m, -usage.get(type_id, 0), order.get(cls.category, 99), type_id), ok))
    rows.sort()
    return [(key[-1], ok) for key, ok in rows]


class QuickAddPopup(QFrame):
    """A filter box over a ranked list; Enter (or a click) emits ``chosen(type_id)``."""

    chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent, Qt.Popup)
        self.setFrameShape(QFrame.StyledPanel)
        self.shape_hint: tuple | None = None
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText("Add layer…")
        self.edit.setClearButtonEnabled(True)
        self.list = QListWidget(self)
        self.list.setUniformItemSizes(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.edit)
        layout.addWidget(self.list)
        self.edit.textChanged.connect(self._refill)
        self.edit.returnPressed.connect(self._choose_current)
        self.edit.installEventFilter(self)
        self.list.itemActivated.connect(lambda item: self._choose(item))
        self.list.itemClicked.connect(lambda item: self._choose(item))
        self.resize(self.fontMetrics().horizontalAdvance("M") * 26,
                    self.fontMetrics().height() * 18)

    def popup(self, global_pos: QPoint, shape: tuple | None = None) -> None:
        """Show at ``global_pos``; ``shape`` is the wire's shape when a wire was dropped."""
        self.shape_hint = shape
        self.edit.clear()
        self._refill()
        self.move(global_pos)
        self.show()
        self.raise_()
        self.edit.setFocus(Qt.PopupFocusReason)

    def types(self) -> list[str]:
        return [self.list.item(i).data(Qt.UserRole) for i in range(self.list.count())]

    def _refill(self) -> None:
        self.list.clear()
        for type_id, ok in ranked(self.edit.text(), self.shape_hint):
            cls = LAYERS[type_id]
            item = QListWidgetItem(f"{type_id}    ·  {cls.category}")
            item.setData(Qt.UserRole, type_id)
            item.setToolTip(cls.description() + ("" if ok else "\n(does not take this shape "
                                                               "with default settings)"))
            if not ok:
                item.setForeground(QBrush(self.palette().color(QPalette.Disabled, QPalette.Text)))
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt override)
        key_press = isinstance(event, QKeyEvent) and event.type() == event.Type.KeyPress
        if obj is self.edit and key_press:
            if event.key() in (Qt.Key_Down, Qt.Key_Up, Qt.Key_PageDown, Qt.Key_PageUp):
                step = {Qt.Key_Down: 1, Qt.Key_Up: -1, Qt.Key_PageDown: 8, Qt.Key_PageUp: -8}
                row = self.list.currentRow() + step[event.key()]
                self.list.setCurrentRow(max(0, min(self.list.count() - 1, row)))
                return True
            if event.key() == Qt.Key_Escape:
                self.hide()
                return True
        return super().eventFilter(obj, event)

    def _choose_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._choose(item)

    def _choose(self, item: QListWidgetItem) -> None:
        self.hide()
        self.chosen.emit(item.data(Qt.UserRole))
