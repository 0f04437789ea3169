"""Native editors for attribute descriptors: one widget class per descriptor kind.

Each editor emits ``edited(value)`` once per committed change (spin boxes commit on Enter,
focus-out or an arrow step, not on every keystroke) and takes model values through
``set_value`` without echoing them back as edits.
"""
from __future__ import annotations

import json
import re
from typing import Any

from PySide6.QtCore import QRegularExpression, Signal
from PySide6.QtGui import QRegularExpressionValidator, QValidator
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout,
                               QLabel, QLineEdit, QSpinBox, QWidget)

from layerloom.engine import safe_json
from layerloom.engine.spec import Attr, LayerloomError

INT_LIMIT = 2**31 - 1  # QSpinBox holds a C int


def compact(box: QAbstractSpinBox) -> QAbstractSpinBox:
    """A spin box sized for a few digits, not for its whole range (2**31 makes it very wide)."""
    box.setMinimumWidth(box.fontMetrics().horizontalAdvance("0") * 6 + 28)
    return box


class IntEditor(QSpinBox):
    edited = Signal(object)

    def __init__(self, attr: Attr, parent=None):
        super().__init__(parent)
        compact(self)
        lo, hi = getattr(attr, "min", None), getattr(attr, "max", None)
        self.setRange(-INT_LIMIT if lo is None else lo, INT_LIMIT if hi is None else hi)
        self.setKeyboardTracking(False)
        self.setAccelerated(True)
        self.valueChanged.connect(lambda v: self.edited.emit(int(v)))

    def set_value(self, value: Any) -> None:
        self.blockSignals(True)
        self.setValue(int(value))
        self.blockSignals(False)


class FloatEditor(QDoubleSpinBox):
    edited = Signal(object)

    def __init__(self, attr: Attr, parent=None):
        super().__init__(parent)
        compact(self)
        lo, hi = getattr(attr, "min", None), getattr(attr, "max", None)
        self.setDecimals(12)  # the spin box rounds to this: keep 1e-10 a non-zero value
        self.setRange(-1e12 if lo is None else lo, 1e12 if hi is None else hi)
        self.setStepType(QAbstractSpinBox.AdaptiveDecimalStepType)
        self.setKeyboardTracking(False)
        self.valueChanged.connect(lambda v: self.edited.emit(float(v)))

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.6g}"  # 1e-05 and 0.5, not 0.000010000000 and 0.500000000000

    def valueFromText(self, text: str) -> float:  # noqa: N802 (Qt override)
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        """Accept what ``float`` reads (so "1e-05" can be typed); partial input is Intermediate."""
        try:
            value = float(text)
        except ValueError:
            ok = re.fullmatch(r"[-+]?\d*\.?\d*(e[-+]?\d*)?", text.strip(), re.IGNORECASE)
            return (QValidator.Intermediate if ok else QValidator.Invalid), text, pos
        inside = self.minimum() <= value <= self.maximum()
        return (QValidator.Acceptable if inside else QValidator.Intermediate), text, pos

    def set_value(self, value: Any) -> None:
        self.blockSignals(True)
        self.setValue(float(value))
        self.blockSignals(False)


class BoolEditor(QCheckBox):
    edited = Signal(object)

    def __init__(self, attr: Attr, parent=None):
        super().__init__(parent)
        self.toggled.connect(lambda v: self.edited.emit(bool(v)))

    def set_value(self, value: Any) -> None:
        self.blockSignals(True)
        self.setChecked(bool(value))
        self.blockSignals(False)


class ChoiceEditor(QComboBox):
    edited = Signal(object)

    def __init__(self, attr: Attr, parent=None):
        super().__init__(parent)
        self.choices = tuple(attr.choices)
        self.addItems([str(c) for c in self.choices])
        self.currentIndexChanged.connect(lambda i: self.edited.emit(self.choices[i]))

    def set_value(self, value: Any) -> None:
        self.blockSignals(True)
        self.setCurrentIndex(self.choices.index(value) if value in self.choices else -1)
        self.blockSignals(False)


class FixedTupleEditor(QWidget):
    """A fixed-length int tuple (kernel 5×5) as spin boxes side by side."""

    edited = Signal(object)

    def __init__(self, attr: Attr, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        lo = attr.min if attr.min is not None else -INT_LIMIT
        self.boxes: list[QSpinBox] = []
        for i in range(attr.length):
            if i:
                layout.addWidget(QLabel("×"))
            box = compact(QSpinBox(self))
            box.setRange(-1 if attr.allow_minus_one else lo, INT_LIMIT)
            box.setKeyboardTracking(False)
            box.valueChanged.connect(lambda _v: self.edited.emit(self.value()))
            layout.addWidget(box, 1)
            self.boxes.append(box)

    def value(self) -> tuple:
        return tuple(b.value() for b in self.boxes)

    def set_value(self, value: Any) -> None:
        for box, v in zip(self.boxes, value):
            box.blockSignals(True)
            box.setValue(int(v))
            box.blockSignals(False)


class TupleEditor(QLineEdit):
    """A variable-length int tuple typed as "1, 28, 28" (empty for ``()``)."""

    edited = Signal(object)

    def __init__(self, attr: Attr, parent=None):
        super().__init__(parent)
        self.setValidator(QRegularExpressionValidator(QRegularExpression(r"[-\d,×x\s()]*"), self))
        self.setPlaceholderText("e.g. 1, 28, 28")
        self._shown = ""
        self.editingFinished.connect(self._commit)

    def _commit(self) -> None:
        text = self.text()
        if text == self._shown:
            return
        self.edited.emit(tuple(int(t) for t in re.findall(r"-?\d+", text)))

    def set_value(self, value: Any) -> None:
        self._shown = ", ".join(str(v) for v in value)
        self.setText(self._shown)


class NameEditor(QLineEdit):
    """An identifier (the block a Block node is an instance of), committed on Enter or when the
    focus leaves."""

    edited = Signal(object)

    def __init__(self, attr: Attr, parent=None):
        super().__init__(parent)
        self.setValidator(QRegularExpressionValidator(
            QRegularExpression(r"[A-Za-z_][A-Za-z0-9_]*"), self))
        self._shown = ""
        self.editingFinished.connect(self._commit)

    def _commit(self) -> None:
        if self.text() != self._shown:
            self.edited.emit(self.text())

    def set_value(self, value: Any) -> None:
        self._shown = str(value)
        self.setText(self._shown)


class JsonEditor(QLineEdit):
    """Any other attribute kind, as JSON text (parsed, never evaluated)."""

    edited = Signal(object)

    def __init__(self, attr: Attr, parent=None):
        super().__init__(parent)
        self._shown = ""
        self.editingFinished.connect(self._commit)

    def _commit(self) -> None:
        if self.text() == self._shown:
            return
        try:  # bounded: text typed or pasted here is as untrusted as a file
            value = safe_json.loads(self.text())
        except LayerloomError:
            self.set_value(json.loads(self._shown) if self._shown else None)
            return
        self.edited.emit(value)

    def set_value(self, value: Any) -> None:
        self._shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        self.setText(self._shown)


def make_editor(attr: Attr, parent=None) -> QWidget:
    """The editor widget for one descriptor, chosen by its ``kind``."""
    kind = attr.kind
    if kind == "ints":
        return FixedTupleEditor(attr, parent) if attr.length else TupleEditor(attr, parent)
    return {"int": IntEditor, "float": FloatEditor, "bool": BoolEditor, "choice": ChoiceEditor,
            "name": NameEditor}.get(kind, JsonEditor)(attr, parent)
