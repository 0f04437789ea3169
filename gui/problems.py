"""Analyze in the window: every finding on its node (a red badge for errors, amber for warnings)
and all of them in one Problems list, refreshed on every edit, on Load and on each settings change.

The rules live in the engine (``engine.analyze``); this module only shows what it returns. Train
refuses while there are errors (the controller asks the engine itself), so the list is where a
person reads why, and a click on a row selects the node it is about.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtWidgets import (QDockWidget, QLabel, QListWidget, QListWidgetItem, QStyle,
                               QVBoxLayout, QWidget)

from layerloom.engine.analyze import ERROR, Analysis, analyze
from layerloom.gui import theme as th

BADGE_KINDS = ("graph", "data", "training")  # shape errors colour the node itself
NOTHING = "No problems found: the graph, its data and the training settings look ready."


class ProblemsPanel(QWidget):
    """The one list: errors first, each row "node — message" with its severity's icon."""

    node_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = QLabel(NOTHING)
        self.summary.setWordWrap(True)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setTextElideMode(Qt.ElideNone)
        self.list.itemActivated.connect(self._clicked)
        self.list.itemClicked.connect(self._clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)
        self.analysis = Analysis()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override): a bottom dock, not wide
        return QSize(600, 200)

    def show_analysis(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.list.clear()
        icons = {ERROR: self.style().standardIcon(QStyle.SP_MessageBoxCritical)}
        warn = self.style().standardIcon(QStyle.SP_MessageBoxWarning)
        for f in analysis.findings:
            where = f"{f.node_id}: " if f.node_id else ""
            item = QListWidgetItem(icons.get(f.severity, warn), where + f.message)
            item.setData(Qt.UserRole, f.node_id)
            item.setToolTip(f"{'Error (Train refuses)' if f.severity == ERROR else 'Warning'}"
                            f" — {f.message}")
            self.list.addItem(item)
        text = analysis.summary()
        self.summary.setText(f"{text}. Errors keep Train from starting; click one to select "
                             f"its node." if text else NOTHING)

    def _clicked(self, item: QListWidgetItem) -> None:
        node_id = item.data(Qt.UserRole)
        if node_id:
            self.node_clicked.emit(node_id)


class Analyzer(QObject):
    """Runs ``engine.analyze`` for one window and shows the result on the canvas and the list.

    ``context()`` returns (graph, shape report, dataset or None, training settings): the window's
    current state; ``view`` is the canvas (a click on a finding selects its node there).
    ``status`` is the status-bar label that shows the summary.
    """

    analyzed = Signal(object)  # Analysis

    def __init__(self, context: Callable[[], tuple], view, panel: ProblemsPanel,
                 status: QLabel | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._context, self.view, self.panel, self.status = context, view, panel, status
        self.scene = view.graph_scene
        self.dock: QDockWidget | None = None  # the panel's dock, raised by ``show_list``
        self.analysis = Analysis()
        panel.node_clicked.connect(self.select)

    def show_list(self) -> None:
        if self.dock is not None:
            self.dock.show()
            self.dock.raise_()

    def select(self, node_id: str) -> None:
        """Select the node a finding is about and bring it into view."""
        item = self.scene.items_by_id.get(node_id)
        if item is not None:
            self.scene.select_only([node_id])
            self.view.ensureVisible(item)

    def run(self) -> Analysis:
        graph, report, dataset, training = self._context()
        self.analysis = analyze(graph, report, dataset, training)
        self._badge(self.analysis)
        self.panel.show_analysis(self.analysis)
        if self.status is not None:
            text = self.analysis.summary() if graph.nodes else ""
            self.status.setText(f'<a href="problems" style="color: {th.current().error.name()};'
                                f' text-decoration: none;">{text}</a>' if text else "")
        self.analyzed.emit(self.analysis)
        return self.analysis

    def _badge(self, analysis: Analysis) -> None:
        """One badge text per node and kind (several findings join), red when any is an error."""
        for kind in BADGE_KINDS:
            self.scene.overlays.clear_warnings(kind)
        grouped: dict[tuple, list] = {}
        for f in analysis.findings:
            if f.node_id is not None and f.kind in BADGE_KINDS:
                grouped.setdefault((f.node_id, f.kind), []).append(f)
        for (node_id, kind), found in grouped.items():
            self.scene.overlays.set_warning(node_id, kind, "; ".join(f.message for f in found),
                                        any(f.severity == ERROR for f in found))
