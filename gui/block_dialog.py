"""The settings of a stock block before it goes on the canvas ("Residual: 16 → 32 channels,
stride 2"), as a form generated from the template's attribute descriptors, like the inspector's.

Window-modal but not blocking (``open``): ``chosen(settings)`` fires on OK.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from layerloom.engine.block_templates import Template
from layerloom.gui.attr_editors import make_editor


class BlockSettingsDialog(QDialog):
    chosen = Signal(dict)  # setting name -> value

    def __init__(self, template: Template, parent: QWidget | None = None):
        super().__init__(parent)
        self.template = template
        self.setWindowTitle(f"Add block: {template.title}")
        layout = QVBoxLayout(self)
        about = QLabel(template.doc[:1].upper() + template.doc[1:] + ".")
        about.setWordWrap(True)
        layout.addWidget(about)
        form = QFormLayout()
        self.values = {name: attr.default for name, attr in template.params.items()}
        self.editors = {}
        for name, attr in template.params.items():
            editor = make_editor(attr, self)
            editor.set_value(attr.default)
            editor.setToolTip(attr.doc)
            editor.edited.connect(lambda value, name=name: self.values.__setitem__(name, value))
            form.addRow(name.replace("_", " "), editor)
            self.editors[name] = editor
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.accepted.connect(lambda: self.chosen.emit(dict(self.values)))
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 28)
