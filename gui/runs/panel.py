"""The Runs dock: a sortable, filterable table of every recorded run (window, CLI and sweeps),
tick boxes to overlay curves, and the actions a comparison needs: compare two, restore one,
rename / tag / annotate in place, delete with undo.

The panel only reads the store (and writes the fields a person edits in it); runs are written by
the recorders. A 2-second check of the store's summary picks up runs a terminal or a sweep
process adds, without re-reading anything when nothing changed.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLineEdit,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from layerloom.engine.runs import Run
from layerloom.gui.runs.curves import RunCurves

COLUMNS = ("", "#", "Name", "Started", "Graph", "Settings", "Best val", "Test acc", "Time",
           "Status", "Tags", "Note")
EDITABLE = {2: "name", 10: "tags", 11: "note"}


class SortItem(QTableWidgetItem):
    """Sorts by a number (or text) kept in UserRole, whatever the cell shows."""

    def __lt__(self, other: QTableWidgetItem) -> bool:  # noqa: D105
        a, b = self.data(Qt.UserRole), other.data(Qt.UserRole)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a < b
        return str(a if a is not None else "") < str(b if b is not None else "")


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f} %"


def settings_text(run: Run) -> str:
    s = run.settings
    return (f"{s.get('optimizer', '?')} lr {s.get('lr', 0):g} · batch {s.get('batch_size', '?')}"
            f" · {s.get('epochs', '?')} ep")


def row_cells(run: Run) -> list[tuple[str, object]]:
    """(shown, sort key) per column."""
    graph = (run.graph_path or "").rsplit("/", 1)[-1] or "(unsaved)"
    duration = run.duration
    return [("", run.id), (str(run.id), run.id), (run.name, run.name.lower()),
            (time.strftime("%m-%d %H:%M", time.localtime(run.started)), run.started),
            (graph, graph), (settings_text(run), run.settings.get("lr", 0)),
            (_pct(run.best_val_accuracy), run.best_val_accuracy or -1.0),
            (_pct(run.test_accuracy), run.test_accuracy or -1.0),
            ("" if duration is None else f"{duration:.0f} s", duration or 0.0),
            (run.status, run.status), (run.tags, run.tags), (run.note, run.note)]


class RunsPanel(QWidget):
    compare_requested = Signal(int, int)  # two run ids, in table order
    restore_requested = Signal(int)
    sweep_requested = Signal()
    lr_finder_requested = Signal()
    import_requested = Signal()

    def __init__(self, store_getter, parent: QWidget | None = None):
        super().__init__(parent)
        self._store = store_getter  # () -> RunStore | None (opened lazily, once)
        self._signature: tuple | None = None
        self._deleted: list[list[int]] = []
        self.runs: list[Run] = []
        self.filter = QLineEdit(placeholderText="Filter runs (name, graph, tag, status…)")
        self.filter.setClearButtonEnabled(True)
        self.buttons = {name: QPushButton(name) for name in
                        ("Compare", "Restore", "Delete", "Undo delete", "Sweep…", "Find LR…",
                         "Import run…")}
        self.buttons["Compare"].setToolTip("What differs between the two selected runs")
        self.buttons["Restore"].setToolTip("Open the selected run's graph with its weights")
        self.buttons["Find LR…"].setToolTip("The learning-rate range test on the open graph")
        self.buttons["Import run…"].setToolTip("A run an exported training project made "
                                               "elsewhere (its folder)")
        bar = QHBoxLayout()
        bar.addWidget(self.filter, 1)
        for button in self.buttons.values():
            bar.addWidget(button)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSortingEnabled(True)
        self.table.sortItems(1, Qt.DescendingOrder)  # the newest run on top
        self.curves = RunCurves()
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.table)
        split.addWidget(self.curves)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(split, 1)
        self._connect()
        self.timer = QTimer(self, interval=2000, timeout=self.refresh)
        self.timer.start()
        self._enable()

    def _connect(self) -> None:
        self.filter.textChanged.connect(lambda _t: self._apply_filter())
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._enable)
        b = self.buttons
        b["Compare"].clicked.connect(  # older run first: "what changed since"
            lambda: self.compare_requested.emit(*sorted(self.selected_ids())[:2]))
        b["Restore"].clicked.connect(lambda: self.restore_requested.emit(self.selected_ids()[0]))
        b["Delete"].clicked.connect(self.delete_selected)
        b["Undo delete"].clicked.connect(self.undo_delete)
        b["Sweep…"].clicked.connect(self.sweep_requested)
        b["Find LR…"].clicked.connect(self.lr_finder_requested)
        b["Import run…"].clicked.connect(self.import_requested)

    # ------------------------------------------------------------------ reading
    def refresh(self, force: bool = False) -> None:
        store = self._store()
        if store is None:
            return
        signature = store.db.execute(
            "SELECT COUNT(*), MAX(id), SUM(steps), GROUP_CONCAT(status), "
            "GROUP_CONCAT(name || tags || note), SUM(deleted) FROM runs").fetchone()
        if signature == self._signature and not force:
            return
        self._signature = signature
        ticked = self.ticked_ids()
        self.runs = store.runs()
        self.table.blockSignals(True)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            for col, (shown, key) in enumerate(row_cells(run)):
                item = SortItem(shown)
                item.setData(Qt.UserRole, key)
                flags = Qt.ItemIsSelectable | Qt.ItemIsEnabled
                if col in EDITABLE:
                    flags |= Qt.ItemIsEditable
                if col == 0:
                    flags |= Qt.ItemIsUserCheckable
                    item.setCheckState(Qt.Checked if run.id in ticked else Qt.Unchecked)
                item.setFlags(flags)
                if col == 9 and run.stop_reason:
                    item.setToolTip(run.stop_reason)
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)
        self.table.blockSignals(False)
        self._apply_filter()
        self._draw()
        sweeps = sorted({r.sweep_id for r in self.runs if r.sweep_id})
        self.curves.set_sweeps(store, sweeps)

    def _row_of(self, run_id: int) -> int | None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 1).data(Qt.UserRole) == run_id:
                return row
        return None

    def ticked_ids(self) -> list[int]:
        return [self.table.item(r, 1).data(Qt.UserRole) for r in range(self.table.rowCount())
                if self.table.item(r, 0).checkState() == Qt.Checked]

    def set_ticked(self, run_id: int, ticked: bool = True) -> None:
        row = self._row_of(run_id)
        if row is not None:
            self.table.item(row, 0).setCheckState(Qt.Checked if ticked else Qt.Unchecked)

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        return [self.table.item(r, 1).data(Qt.UserRole) for r in rows]

    def _apply_filter(self) -> None:
        words = self.filter.text().lower().split()
        for row in range(self.table.rowCount()):
            text = " ".join(self.table.item(row, c).text().lower() for c in range(1, len(COLUMNS)))
            self.table.setRowHidden(row, not all(w in text for w in words))

    def _draw(self) -> None:
        store = self._store()
        if store is not None:
            by_id = {r.id: r for r in self.runs}
            self.curves.show_runs(store, [by_id[i] for i in self.ticked_ids() if i in by_id])

    def _enable(self) -> None:
        n = len(self.selected_ids())
        self.buttons["Compare"].setEnabled(n == 2)
        self.buttons["Restore"].setEnabled(n == 1)
        self.buttons["Delete"].setEnabled(n >= 1)
        self.buttons["Undo delete"].setEnabled(bool(self._deleted))

    # ------------------------------------------------------------------ editing
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        store = self._store()
        run_id = self.table.item(item.row(), 1).data(Qt.UserRole)
        if item.column() == 0:
            self._draw()
        elif item.column() in EDITABLE and store is not None:
            store.update(run_id, **{EDITABLE[item.column()]: item.text()})
            QTimer.singleShot(0, self.refresh)  # not while the edited item is being delivered

    def delete_selected(self) -> None:
        store, ids = self._store(), self.selected_ids()
        if store is None or not ids:
            return
        for run_id in ids:
            store.set_deleted(run_id, True)
        self._deleted.append(ids)
        self.refresh()
        self._enable()

    def undo_delete(self) -> None:
        store = self._store()
        if store is None or not self._deleted:
            return
        for run_id in self._deleted.pop():
            store.set_deleted(run_id, False)
        self.refresh()
        self._enable()
