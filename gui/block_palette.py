"""The palette's block library: the Blocks category at the top of the layer tree.

It lists the nodes that make a block's ports (for use inside an opened block), the stock blocks
(``engine.block_templates``), the person's saved blocks (the library folder) and the blocks this
model defines. A stock or saved block drags out under ``BLOCK_MIME`` as "source\\tkey" (see
``gui.block_edits``); a port node drags out as a layer type, as any layer does.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from layerloom.engine.block_library import TEMPLATES, user_blocks
from layerloom.engine.block_types import STRUCTURAL
from layerloom.engine.graph import Graph
from layerloom.gui.block_edits import MODEL, SAVED, TEMPLATE, library_dir

BLOCK_MIME = "application/x-layerloom-block"  # payload: "source\tkey", UTF-8
BLOCK_ROLE = Qt.UserRole + 1  # a leaf's "source\tkey"
SHELF_ROLE = Qt.UserRole + 2  # marks the Blocks category (it is not a layer category)
CATEGORY = "Blocks"


class BlockShelf:
    def __init__(self, tree: QTreeWidget):
        self.tree = tree
        self.folder = library_dir()
        self.model: Graph | None = None

    def set_model(self, model: Graph) -> None:
        """List ``model``'s own blocks from now on (and when it gains or loses one)."""
        if self.model is not None:
            self.model.block_added.disconnect(self._model_blocks_changed)
            self.model.block_removed.disconnect(self._model_blocks_changed)
        self.model = model
        model.block_added.connect(self._model_blocks_changed)
        model.block_removed.connect(self._model_blocks_changed)
        self.fill()

    def _model_blocks_changed(self, _name: str) -> None:
        self.fill()

    def top(self) -> QTreeWidgetItem:
        for i in range(self.tree.topLevelItemCount()):
            if self.tree.topLevelItem(i).data(0, SHELF_ROLE):
                return self.tree.topLevelItem(i)
        top = QTreeWidgetItem([CATEGORY])
        self.tree.insertTopLevelItem(0, top)
        top.setData(0, SHELF_ROLE, True)
        top.setFlags(Qt.ItemIsEnabled)
        font = top.font(0)
        font.setBold(True)
        top.setFont(0, font)
        top.setExpanded(True)
        return top

    def fill(self) -> None:
        """(Re)list everything: ports, stock blocks, saved blocks, the model's blocks."""
        top = self.top()
        top.takeChildren()
        for type_id, cls in STRUCTURAL.items():
            if cls.inputs != () or cls.outputs != ():  # the port nodes, not instances
                self._leaf(top, type_id, cls.description(), layer=type_id)
        for title, template in TEMPLATES.items():
            self._leaf(top, title, template.doc, payload=f"{TEMPLATE}\t{title}")
        for saved in user_blocks(self.folder):
            self._leaf(top, f"{saved.name}  (saved)", f"your block, saved in {saved.path}",
                       payload=f"{SAVED}\t{saved.path}")
        for name in (self.model.blocks if self.model is not None else ()):
            self._leaf(top, f"{name}  (this model)", f"another instance of this model's "
                       f"block {name!r}", payload=f"{MODEL}\t{name}")

    def _leaf(self, top: QTreeWidgetItem, text: str, tip: str, layer: str = "",
              payload: str = "") -> None:
        leaf = QTreeWidgetItem(top, [text])
        leaf.setData(0, Qt.UserRole, layer or None)
        leaf.setData(0, BLOCK_ROLE, payload or None)
        leaf.setToolTip(0, tip)
        leaf.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsDragEnabled)

    def entries(self) -> list[str]:
        """The listed blocks' "source\\tkey" payloads and port types, visible ones only."""
        top = self.top()
        kids = [top.child(i) for i in range(top.childCount())]
        return [k.data(0, BLOCK_ROLE) or k.data(0, Qt.UserRole) for k in kids if not k.isHidden()]

    def saved_to(self, path: Path) -> None:
        """A block was saved (maybe to another folder): list that folder's blocks."""
        self.folder = path.parent
        self.fill()
