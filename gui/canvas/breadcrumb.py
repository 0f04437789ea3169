"""Where the canvas is when a block is open in place: "model › stage1 (res16)" over the canvas's
top-left corner. Each part is a button back to that level; Esc goes up one. Hidden on the model
itself.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from layerloom.gui import theme as th


class Breadcrumb(QWidget):
    def __init__(self, levels, parent: QWidget):
        super().__init__(parent)
        self.levels = levels  # the Document's Levels
        self.setObjectName("breadcrumb")
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(8, 3, 10, 3)
        self.row.setSpacing(2)
        self.parts: list[QToolButton] = []
        levels.changed.connect(lambda _graph: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """One button per level, the shown one last and bold; hidden on the model."""
        while self.row.count():
            widget = self.row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        names = self.levels.names()
        self.parts = []
        for depth, name in enumerate(names):
            if depth:
                self.row.addWidget(QLabel("›"))
            part = QToolButton(self)
            part.setText(name)
            part.setAutoRaise(True)
            part.setEnabled(depth < len(names) - 1)
            part.setToolTip("Back to the model" if depth == 0 else f"Back to {name}")
            part.clicked.connect(lambda _checked=False, d=depth: self.levels.go_up(d))
            if depth == len(names) - 1:
                font = part.font()
                font.setBold(True)
                part.setFont(font)
            self.row.addWidget(part)
            self.parts.append(part)
        hint = QLabel("   Esc: back out")
        hint.setEnabled(False)
        self.row.addWidget(hint)
        self.restyle()
        self.setVisible(len(names) > 1)
        self.adjustSize()

    def text(self) -> str:
        """What it says, as a person reads it: "model › stage1 (res16)"."""
        return " › ".join(part.text() for part in self.parts)

    def restyle(self) -> None:
        t = th.current()
        body, border = t.node_body, t.node_border
        self.setStyleSheet(
            f"#breadcrumb {{ background: rgba({body.red()}, {body.green()}, {body.blue()}, 235);"
            f" border: 1px solid {border.name()}; border-radius: 6px; }}")
        self.move(10, 10)
