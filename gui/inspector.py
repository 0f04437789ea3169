"""The inspector: the selected node's id, frozen flag and attributes as a generated form.

The form is built from the layer's attribute descriptors (kind, range, choices, doc), so a new
layer type needs nothing here. Edits go to the Document (undoable); the form follows the graph's
signals, so an undo shows up in it at once. Below the form: output shapes, parameter count, and
the node's shape error with its one-click fix.
"""
from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt
from PySide6.QtGui import QFont, QRegularExpressionValidator
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QScrollArea, QVBoxLayout, QWidget)

from layerloom.engine.graph import Graph
from layerloom.engine.shapes import ShapeReport
from layerloom.engine.spec import fmt_shape
from layerloom.gui import theme as th
from layerloom.gui.attr_editors import make_editor
from layerloom.gui.document import Document


class Inspector(QScrollArea):
    def __init__(self, document: Document, parent=None):
        super().__init__(parent)
        self.document = document
        self.node_id: str | None = None
        self.editors: dict[str, QWidget] = {}
        self.graph: Graph | None = None
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._build_empty()
        document.project_replaced.connect(self._follow)
        document.level_changed.connect(self._follow)
        document.report_changed.connect(self._show_report)
        document.locked_changed.connect(self._lock)
        self._follow(document.graph)

    # ------------------------------------------------------------------ following the model
    def _follow(self, graph: Graph) -> None:
        if self.graph is not None:
            for signal, slot in self._subscriptions(self.graph):
                signal.disconnect(slot)
        self.graph = graph
        for signal, slot in self._subscriptions(graph):
            signal.connect(slot)
        self.show_nodes([])

    def _subscriptions(self, graph: Graph) -> list:
        return [(graph.attr_changed, self._on_attr), (graph.node_renamed, self._on_renamed),
                (graph.node_removed, self._on_removed), (graph.frozen_changed, self._on_frozen)]

    def _on_attr(self, node_id: str, name: str, value) -> None:
        if node_id == self.node_id and name in self.editors:
            self.editors[name].set_value(value)
            self._refresh_title()

    def _on_renamed(self, old: str, new: str) -> None:
        if old == self.node_id:
            self.node_id = new
            self.id_edit.setText(new)

    def _on_removed(self, node_id: str) -> None:
        if node_id == self.node_id:
            self.show_nodes([])

    def _on_frozen(self, node_id: str, frozen: bool) -> None:
        if node_id == self.node_id:
            self.frozen_box.blockSignals(True)
            self.frozen_box.setChecked(frozen)
            self.frozen_box.blockSignals(False)

    # ------------------------------------------------------------------ building the form
    def _build_empty(self, text: str = "Select a node to see and edit its settings.") -> None:
        self.node_id, self.editors = None, {}
        page = QWidget()
        layout = QVBoxLayout(page)
        hint = QLabel(text)
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignCenter)
        hint.setEnabled(False)
        layout.addStretch(1)
        layout.addWidget(hint)
        layout.addStretch(2)
        self.setWidget(page)

    def show_nodes(self, node_ids: list[str]) -> None:
        """Show the one selected node; a hint for none or several."""
        if len(node_ids) != 1 or node_ids[0] not in self.document.graph.nodes:
            self._build_empty("Select a node to see and edit its settings." if not node_ids
                              else f"{len(node_ids)} nodes selected.")
            return
        self._build_form(node_ids[0])

    def _build_form(self, node_id: str) -> None:
        node = self.document.graph.nodes[node_id]
        cls = self.document.graph.layer(node_id)
        self.node_id, self.editors = node_id, {}
        page = QWidget()
        outer = QVBoxLayout(page)
        outer.setContentsMargins(10, 8, 14, 8)
        outer.setSpacing(8)
        self.title = QLabel()
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        outer.addWidget(self.title)
        about = QLabel(f"{cls.category} · {cls.description()}")
        about.setWordWrap(True)
        muted = th.current().text_muted
        about.setStyleSheet(f"color: rgba({muted.red()}, {muted.green()}, {muted.blue()}, "
                            f"{muted.alpha()});")
        outer.addWidget(about)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.id_edit = QLineEdit(node_id)
        self.id_edit.setValidator(QRegularExpressionValidator(
            QRegularExpression(r"[A-Za-z_][A-Za-z0-9_]*"), self.id_edit))
        self.id_edit.setToolTip("The node's id: unique, a Python identifier; parameters are "
                                "saved as \"<id>.weight\"")
        self.id_edit.editingFinished.connect(self._rename)
        form.addRow("id", self.id_edit)
        self.frozen_box = QCheckBox("frozen")
        self.frozen_box.setToolTip("A frozen node's parameters do not train (and nothing upstream "
                                   "of only frozen nodes gets gradients)")
        self.frozen_box.setChecked(node.frozen)
        self.frozen_box.toggled.connect(lambda v: self.document.set_frozen(self.node_id, v))
        form.addRow("", self.frozen_box)
        for name, attr in cls.attrs.items():
            editor = make_editor(attr)
            editor.set_value(node.attrs[name])
            editor.setToolTip(attr.doc)
            editor.edited.connect(lambda value, name=name: self._edit(node_id, name, value))
            label = QLabel(name)
            label.setToolTip(attr.doc)
            form.addRow(label, editor)
            self.editors[name] = editor
        outer.addLayout(form)
        if self.document.graph.definition(node_id) is not None:
            outer.addLayout(self._block_buttons(node_id))
        outer.addWidget(self._report_box())
        outer.addStretch(1)
        self.setWidget(page)
        self._refresh_title()
        self._show_report(self.document.report)
        self._lock(self.document.locked)

    def _block_buttons(self, node_id: str) -> QHBoxLayout:
        """A block: open it in place, or give this instance a definition of its own."""
        row = QHBoxLayout()
        doc = self.document
        for text, tip, slot in (
                ("Open block", "Edit the block in place (double-click or Enter on the canvas); "
                 "every instance changes", lambda: doc.levels.enter(node_id)),
                ("Make unique", "Give this instance its own copy of the block, so editing it "
                 "changes no other instance", lambda: doc.blocks.make_unique(node_id))):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            row.addWidget(button)
        return row

    def _report_box(self) -> QWidget:
        box = QFrame()
        box.setFrameShape(QFrame.StyledPanel)
        layout = QVBoxLayout(box)
        self.shape_label = QLabel()
        self.shape_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.fix_button = QPushButton()
        self.fix_button.clicked.connect(lambda: self.document.compound.insert_fix(self.node_id))
        for w in (self.shape_label, self.error_label, self.fix_button):
            layout.addWidget(w)
        return box

    # ------------------------------------------------------------------ updates
    def _refresh_title(self) -> None:
        node = self.document.graph.nodes[self.node_id]
        label = self.document.graph.layer(self.node_id).label(node.attrs)
        self.title.setText(f"{node.type} {label}".strip())

    def _show_report(self, report: ShapeReport) -> None:
        if self.node_id is None or self.node_id not in self.document.graph.nodes:
            return
        ports = self.document.graph.output_ports(self.node_id)  # Chunk's follow its attributes
        lines = [f"{port}: {fmt_shape(report.shapes[(self.node_id, port)])}"
                 for port in ports if (self.node_id, port) in report.shapes]
        params = self.document.params.get(self.node_id, 0)
        self.shape_label.setText(("Output " + ", ".join(lines) if lines else "Output unknown")
                                 + f"\nParameters {params:,}")
        error, fix = report.errors.get(self.node_id), report.fixes.get(self.node_id)
        self.error_label.setText(error or "")
        self.error_label.setStyleSheet(f"color: {th.current().error.name()};")
        self.error_label.setVisible(bool(error))
        self.fix_button.setText(f"Insert {fix}" if fix else "")
        self.fix_button.setVisible(bool(fix))

    def _edit(self, node_id: str, name: str, value) -> None:
        """``node_id`` is bound when the form is built: a late commit (focus leaving a spin box as
        the selection changes) still goes to the node it was typed for."""
        if node_id != self.node_id or node_id not in self.document.graph.nodes:
            return
        if not self.document.set_attr(node_id, name, value):
            self.editors[name].set_value(self.document.graph.nodes[node_id].attrs[name])

    def _rename(self) -> None:
        new = self.id_edit.text()
        if self.node_id is not None and not self.document.rename(self.node_id, new):
            self.id_edit.setText(self.node_id)

    def _lock(self, locked: bool) -> None:
        if self.node_id is None:
            return
        for w in [self.id_edit, self.frozen_box, self.fix_button, *self.editors.values()]:
            w.setEnabled(not locked)
