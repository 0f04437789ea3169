"""The window's status bar: the graph's standing problem (with its one-click fix), the parameter
count, the training lock, and passing notices on top of them."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QStatusBar

from layerloom.engine.budget import fmt_bytes
from layerloom.engine.shapes import ShapeReport


class StatusParts(QObject):
    """Permanent labels (lock, problems, parameters) plus the message line. A shape error stays
    shown until it is fixed; a passing notice ("Saved") hides it for its few seconds only."""

    def __init__(self, bar: QStatusBar, document: QObject, selected: Callable[[], list[str]]):
        super().__init__(bar)
        self.bar, self.document, self._selected = bar, document, selected
        self.lock_label, self.problems_label, self.params_label = QLabel(), QLabel(), QLabel()
        for label in (self.lock_label, self.problems_label, self.params_label):
            label.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(label)
        self.lock_label.hide()
        self._showing_error = False
        document.message.connect(lambda text: bar.showMessage(text, 8000))
        document.report_changed.connect(self.show_report)
        document.locked_changed.connect(self._on_locked)
        bar.messageChanged.connect(self._restore_error)

    def show_report(self, report: ShapeReport) -> None:
        """The parameter count, the problem count, and the selected (else first) node's error."""
        model = self.document.model_report  # the memory is the whole model's, whatever is shown
        self.params_label.setText(f"{self.document.total_params:,} parameters · "
                                  f"{fmt_bytes(model.training_bytes)} to train")
        self.params_label.setToolTip(
            f"Memory training needs at batch {model.batch_size}: weights, gradients, optimiser "
            f"state and activations (budget {fmt_bytes(model.budget)}: Edit > Memory Budget)")
        # problems_label: the Analyze summary, kept by gui.problems.Analyzer
        self.problems_label.setStyleSheet("font-weight: bold;")
        n = len(report.errors)
        if not n:
            if self._showing_error:
                self.bar.clearMessage()
            self._showing_error = False
            return
        selected = [i for i in self._selected() if i in report.errors]
        node_id = selected[0] if selected else next(iter(report.errors))
        fix = report.fixes.get(node_id)
        hint = f"   ⟶ click “Insert {fix}” below the node" if fix else ""
        self.bar.showMessage(report.errors[node_id] + hint)
        self._showing_error = True

    def _restore_error(self, text: str) -> None:
        """A passing notice ("Saved") timed out: show the standing shape error again."""
        if not text and self.document.report.errors:
            self.show_report(self.document.report)

    def _on_locked(self, locked: bool) -> None:
        self.lock_label.setText(f"Locked: {self.document.lock_reason}" if locked else "")
        self.lock_label.setVisible(locked)
