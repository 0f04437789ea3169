"""Small input widgets the training settings need: a learning-rate box that speaks 1e-3."""
from __future__ import annotations

import math

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox


def ladder_step(value: float, steps: int) -> float:
    """Move ``steps`` rungs along the 1-2-5 ladder (…, 0.001, 0.002, 0.005, 0.01, …), the values
    people actually try for a learning rate."""
    exponent = math.floor(math.log10(value))
    mantissa = value / 10 ** exponent
    rungs = (1.0, 2.0, 5.0)
    # the rung at or below the value, so an odd value snaps onto the ladder first
    index = max(i for i, r in enumerate(rungs) if r <= mantissa + 1e-9)
    if steps < 0 and mantissa > rungs[index] + 1e-9:
        steps += 1
    position = exponent * 3 + index + steps
    exponent, index = divmod(position, 3)
    return float(f"{rungs[index] * 10 ** exponent:.12g}")


class ScientificSpinBox(QDoubleSpinBox):
    """A positive number shown as ``0.001`` or ``1e+06``; arrows walk the 1-2-5 ladder.

    With ``first_rung`` the box also takes 0 ("off", e.g. no weight decay): up from 0 goes to
    ``first_rung``, down from it back to 0 (the ladder itself never reaches 0)."""

    def __init__(self, minimum: float = 1e-8, maximum: float = 1e8, parent=None,
                 first_rung: float | None = None):
        super().__init__(parent)
        self.first_rung = first_rung
        self.setDecimals(12)
        self.setRange(0.0 if first_rung is not None else minimum, maximum)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 (Qt override)
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        try:
            value = float(text)
        except ValueError:
            partial = text == "" or text[-1] in "eE+-." or text.lower().endswith("e-")
            return (QValidator.Intermediate if partial else QValidator.Invalid), text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.Acceptable if ok else QValidator.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        value, rung = self.value(), self.first_rung
        if rung is not None and value <= 0:
            value = rung if steps > 0 else 0.0
        elif rung is not None and steps < 0 and value <= rung * (1 + 1e-9):
            value = 0.0
        else:
            value = ladder_step(value, steps)
        self.setValue(min(max(value, self.minimum()), self.maximum()))
