"""Vanishing / exploding gradient detector: turns the reports' gradient norms into node warnings.

A node is warned once per run and kind: its gradient norm stayed below ``VANISH_NORM`` for
``VANISH_STEPS`` consecutive steps, went above ``EXPLODE_NORM``, or was NaN/inf. The canvas
badges nodes from ``node_warning(node_id, reason)``; ``warnings_cleared`` comes with a new run.
The rules live in the Qt-free ``GradientWatch`` so they are testable without a window.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QObject, Signal

VANISH_NORM, VANISH_STEPS, EXPLODE_NORM = 1e-7, 50, 1e3


class GradientWatch:
    """Consumes step reports; ``check`` returns the new (node_id, reason) warnings."""

    def __init__(self, vanish_norm: float = VANISH_NORM, vanish_steps: int = VANISH_STEPS,
                 explode_norm: float = EXPLODE_NORM):
        self.vanish_norm, self.vanish_steps, self.explode_norm = vanish_norm, vanish_steps, explode_norm
        self.reset()

    def __repr__(self) -> str:
        return (f"GradientWatch(vanish<{self.vanish_norm:g} for {self.vanish_steps} steps, "
                f"explode>{self.explode_norm:g})")

    def reset(self) -> None:
        self._small: dict[str, int] = {}
        self.warnings: dict[tuple[str, str], str] = {}  # (node_id, kind) -> reason

    def check(self, report) -> list[tuple[str, str]]:
        new = []
        for key, norm in report.grad_norms.items():
            node = key.split(".")[0]
            kind, reason = self._classify(key, norm, report.global_step)
            if kind and (node, kind) not in self.warnings:
                self.warnings[(node, kind)] = reason
                new.append((node, reason))
        return new

    def _classify(self, key: str, norm: float, step: int) -> tuple[str | None, str]:
        if not math.isfinite(norm):
            self._small[key] = 0
            return "nonfinite", f"gradient of {key} is NaN/inf at step {step + 1}"
        if norm > self.explode_norm:
            self._small[key] = 0
            return "explode", (f"exploding gradient: |grad {key}| = {norm:.3g} > "
                               f"{self.explode_norm:g} at step {step + 1}")
        if norm < self.vanish_norm:
            self._small[key] = self._small.get(key, 0) + 1
            if self._small[key] >= self.vanish_steps:
                return "vanish", (f"vanishing gradient: |grad {key}| < {self.vanish_norm:g} "
                                  f"for {self._small[key]} steps")
            return None, ""
        self._small[key] = 0
        return None, ""


class GradientAlarm(QObject):
    """The Qt face of ``GradientWatch``: feed it ``steps`` batches, connect ``node_warning``."""

    node_warning = Signal(str, str)  # node_id, reason
    warnings_cleared = Signal()

    def __init__(self, parent: QObject | None = None, **thresholds):
        super().__init__(parent)
        self.watch = GradientWatch(**thresholds)

    @property
    def warnings(self) -> dict:
        return self.watch.warnings

    def reset(self, _info=None) -> None:
        self.watch.reset()
        self.warnings_cleared.emit()

    def add_steps(self, reports: list) -> None:
        for r in reports:
            for node_id, reason in self.watch.check(r):
                self.node_warning.emit(node_id, reason)
