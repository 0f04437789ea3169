"""The layer palette: every registered layer type by category, a filter box, drag to the canvas.

Generated from the registry, so a new layer file shows up here with no change to this module.
The drag payload is the layer type id under ``LAYER_MIME``; double-click (or Enter) asks to add
the type at the canvas centre. The Blocks category on top is the block library
(``gui.block_palette``): its blocks drag out under ``BLOCK_MIME``.
"""
from __future__ import annotations

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QLineEdit, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from layerloom.engine.registry import by_category
from layerloom.gui import theme as th
from layerloom.gui.block_palette import BLOCK_MIME, BLOCK_ROLE, SHELF_ROLE, BlockShelf
from layerloom.gui.canvas.view import LAYER_MIME


def swatch(colour: QColor, size: int) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(Qt.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.setPen(colour.darker(135))
    painter.setBrush(colour)
    painter.drawRoundedRect(1, 1, size - 2, size - 2, 3, 3)
    painter.end()
    return QIcon(pix)


class PaletteTree(QTreeWidget):
    """A tree whose leaves drag out as layer types."""

    def mimeTypes(self) -> list[str]:  # noqa: N802 (Qt override)
        return [LAYER_MIME, BLOCK_MIME]

    def mimeData(self, items) -> QMimeData:  # noqa: N802 (Qt override)
        data = QMimeData()
        types = [i.data(0, Qt.UserRole) for i in items if i.data(0, Qt.UserRole)]
        blocks = [i.data(0, BLOCK_ROLE) for i in items if i.data(0, BLOCK_ROLE)]
        if blocks:
            data.setData(BLOCK_MIME, blocks[0].encode("utf-8"))
        elif types:
            data.setData(LAYER_MIME, types[0].encode("utf-8"))
            data.setText(types[0])
        return data


class LayerPalette(QWidget):
    add_requested = Signal(str)  # type id (double-click / Enter)
    block_requested = Signal(str)  # a library block's "source\tkey" (double-click / Enter)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter layers…")
        self.filter.setClearButtonEnabled(True)
        self.tree = PaletteTree(self)
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragOnly)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.setIndentation(14)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self.filter.textChanged.connect(self.apply_filter)
        self.tree.itemActivated.connect(self._activated)
        self.blocks = BlockShelf(self.tree)
        self.populate()

    def populate(self) -> None:
        """(Re)build the tree from the registry."""
        self.tree.clear()
        theme, size = th.current(), self.fontMetrics().height() - 2
        self.tree.setIconSize(QSize(size, size))
        for category, classes in by_category().items():
            top = QTreeWidgetItem(self.tree, [category])
            top.setFlags(Qt.ItemIsEnabled)
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            top.setIcon(0, swatch(theme.header(category), size))
            for cls in classes:
                leaf = QTreeWidgetItem(top, [cls.type_id])
                leaf.setData(0, Qt.UserRole, cls.type_id)
                leaf.setToolTip(0, cls.description())
                leaf.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled)
            top.setExpanded(True)
        self.blocks.fill()
        self.blocks.top().setIcon(0, swatch(theme.header(th.BLOCK), size))
        self.apply_filter(self.filter.text())

    def item(self, type_id: str) -> QTreeWidgetItem | None:
        for top in self._tops():
            for i in range(top.childCount()):
                if top.child(i).data(0, Qt.UserRole) == type_id:
                    return top.child(i)
        return None

    def entries(self) -> dict[str, list[str]]:
        """Visible type ids per category, in display order."""
        out: dict[str, list[str]] = {}
        for top in self._tops():
            if top.data(0, SHELF_ROLE):
                continue  # the block library: ``blocks.entries()``
            kids = [top.child(i) for i in range(top.childCount())]
            visible = [k.data(0, Qt.UserRole) for k in kids if not k.isHidden()]
            if visible and not top.isHidden():
                out[top.text(0)] = visible
        return out

    def _tops(self) -> list[QTreeWidgetItem]:
        return [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]

    def apply_filter(self, text: str) -> None:
        text = text.strip().lower()
        for top in self._tops():
            shown = 0
            for i in range(top.childCount()):
                leaf = top.child(i)
                hit = (not text or text in leaf.text(0).lower() or text in top.text(0).lower()
                       or text in leaf.toolTip(0).lower())
                leaf.setHidden(not hit)
                shown += hit
            top.setHidden(shown == 0)
            if text:
                top.setExpanded(True)

    def _activated(self, item: QTreeWidgetItem) -> None:
        type_id = item.data(0, Qt.UserRole)
        if item.data(0, BLOCK_ROLE):
            self.block_requested.emit(item.data(0, BLOCK_ROLE))
        elif type_id:
            self.add_requested.emit(type_id)

    def refresh_icons(self) -> None:
        theme, size = th.current(), self.tree.iconSize().width()
        for top in self._tops():
            top.setIcon(0, swatch(theme.header(th.BLOCK if top.data(0, SHELF_ROLE)
                                              else top.text(0)), size))

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.type() == event.Type.PaletteChange and self.tree.topLevelItemCount():
            self.refresh_icons()
        super().changeEvent(event)
