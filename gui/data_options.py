"""The Data panel's options for an image folder and for a CSV table, as spec options.

Each form turns its widgets into the options of an engine spec string (``folder:DIR?size=32x32&
channels=3&fit=crop``, ``csv:FILE?target=price&categorical=colour&fill=median``) and back, so
the graph file keeps only the spec and the CLI reads the same choice. The table form lists the
file's columns (read by ``engine.data.csv.columns``) with a kind per column: the target, a
number, a category (one-hot) or left out.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
                               QSpinBox, QTableWidget, QWidget)

from layerloom.engine.data.images import MAX_SIDE, parse_size
from layerloom.engine.spec import LayerloomError

FITS = (("crop", "Centre crop"), ("stretch", "Stretch"))
CHANNELS = ((3, "Colour (RGB)"), (1, "Grey"))
FILLS = (("mean", "Training mean"), ("median", "Training median"), ("zero", "Zero"),
         ("drop", "Drop the row"))
TASKS = ((None, "Automatic"), ("classification", "Classes"), ("regression", "Values (regression)"))
KINDS = (("target", "Target"), ("numeric", "Number"), ("categorical", "Category"),
         ("ignore", "Leave out"))


def _combo(items) -> QComboBox:
    box = QComboBox()
    for value, text in items:
        box.addItem(text, value)
    return box


class ImageFolderOptions(QWidget):
    """Size (height × width), colour or grey, centre crop or stretch."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.height, self.width = QSpinBox(), QSpinBox()
        for box in (self.height, self.width):
            box.setRange(4, MAX_SIDE)
            box.setValue(32)
        self.channels, self.fit = _combo(CHANNELS), _combo(FITS)
        self.fit.setToolTip("Centre crop keeps the proportions and cuts the edges of the longer "
                            "side; Stretch squashes the whole picture to the size")
        size = QHBoxLayout()
        size.setContentsMargins(0, 0, 0, 0)
        size.addWidget(self.height)
        size.addWidget(QLabel("×"))
        size.addWidget(self.width)
        size.addStretch(1)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Image size", size)
        form.addRow("Channels", self.channels)
        form.addRow("Fit", self.fit)

    def options(self) -> dict:
        return {"size": f"{self.height.value()}x{self.width.value()}",
                "channels": self.channels.currentData(), "fit": self.fit.currentData()}

    def set_options(self, options: dict) -> None:
        try:
            h, w = parse_size(options.get("size", "32x32"), "size")
        except LayerloomError:
            h, w = 32, 32
        self.height.setValue(h)
        self.width.setValue(w)
        self.channels.setCurrentIndex(max(0, self.channels.findData(options.get("channels", 3))))
        self.fit.setCurrentIndex(max(0, self.fit.findData(options.get("fit", "crop"))))


class TableOptions(QWidget):
    """One row per column of the chosen CSV file with its kind, and the rule for missing values."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Column", "Use as"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self.table.setMaximumHeight(160)
        self.fill = _combo(FILLS)
        self.fill.setToolTip("What a missing value (empty, NA, NaN, ?) in a number column "
                             "becomes; a category column gets a (missing) category")
        self.task = _combo(TASKS)
        self.task.setToolTip("Automatic: text targets, or a few whole numbers, are classes; "
                             "other numbers are values to predict (regression, MSE)")
        self.note = QLabel("Choose a CSV file to list its columns.")
        self.note.setWordWrap(True)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(self.note)
        form.addRow(self.table)
        form.addRow("Missing values", self.fill)
        form.addRow("Task", self.task)
        self.guessed: dict[str, str] = {}

    def set_columns(self, columns: list[tuple[str, str]], options: dict | None = None) -> None:
        """Columns (name, guessed kind) of a file, with the kinds ``options`` chose."""
        options = options or {}
        self.guessed = dict(columns)
        names = [n for n, _ in columns]
        target = str(options.get("target") or (names[-1] if names else ""))
        chosen = {n: "categorical" for n in _split(options.get("categorical"))}
        chosen.update({n: "ignore" for n in _split(options.get("ignore"))})
        chosen[target] = "target"
        self.table.setRowCount(0)
        for name, guess in columns:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self.table.setItem(row, 0, _item(name))
            # a column of text cannot be read as numbers: it offers no "Number"
            kind = _combo([k for k in KINDS if not (guess == "categorical" and k[0] == "numeric")])
            kind.setCurrentIndex(max(0, kind.findData(chosen.get(name, guess))))
            kind.currentIndexChanged.connect(lambda _i, r=row: self._on_kind(r))
            self.table.setCellWidget(row, 1, kind)
        self.fill.setCurrentIndex(max(0, self.fill.findData(options.get("fill", "mean"))))
        self.task.setCurrentIndex(max(0, self.task.findData(options.get("task"))))
        self.note.setText(f"{len(columns)} columns: one is the target, what the network learns "
                          f"to predict." if columns else "No columns found.")

    def list_file(self, path: str, options: dict) -> None:
        """List a CSV file's columns (none when it cannot be read: loading it says why)."""
        from layerloom.engine.data.csv import columns

        try:
            self.set_columns(columns(path), options)
        except LayerloomError:
            self.set_columns([])

    def list_stored(self, spec: str, graph_path, options: dict) -> None:
        """The columns of the CSV a graph file names, when the graph's own folder holds it: a
        graph file never makes Layerloom read outside its folder unasked (engine.data.location;
        the list fills once the person loads it)."""
        from layerloom.engine.data.location import place

        try:
            placed = place(spec, graph_path)
        except LayerloomError:
            placed = None
        if placed is None or placed.outside:
            self.set_columns([])
            self.note.setText("Load the file to list its columns.")
            return
        self.list_file(str(placed.path), options)

    def kinds(self) -> dict[str, str]:
        return {self.table.item(r, 0).text(): self.table.cellWidget(r, 1).currentData()
                for r in range(self.table.rowCount())}

    def set_kind(self, name: str, kind: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).text() == name:
                box = self.table.cellWidget(r, 1)
                box.setCurrentIndex(box.findData(kind))

    def _on_kind(self, row: int) -> None:
        """One target only: choosing a new one makes the old one a column as guessed."""
        box = self.table.cellWidget(row, 1)
        if box.currentData() == "target":
            for r in range(self.table.rowCount()):
                other = self.table.cellWidget(r, 1)
                if r != row and other.currentData() == "target":
                    name = self.table.item(r, 0).text()
                    other.setCurrentIndex(other.findData(self.guessed.get(name, "numeric")))
        self.changed.emit()

    def options(self) -> dict:
        """Only what differs from the reader's own choice, so specs stay short."""
        kinds, out = self.kinds(), {}
        names = list(kinds)
        target = next((n for n, k in kinds.items() if k == "target"), None)
        if target is not None and names and target != names[-1]:
            out["target"] = target
        cats = [n for n, k in kinds.items() if k == "categorical" and self.guessed.get(n) != k]
        if cats:
            out["categorical"] = ",".join(cats)
        ignored = [n for n, k in kinds.items() if k == "ignore"]
        if ignored:
            out["ignore"] = ",".join(ignored)
        if self.fill.currentData() != "mean":
            out["fill"] = self.fill.currentData()
        if self.task.currentData() is not None:
            out["task"] = self.task.currentData()
        return out


def _split(value) -> list[str]:
    return [s.strip() for s in str(value or "").split(",") if s.strip()]


def _item(text: str):
    from PySide6.QtWidgets import QTableWidgetItem

    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    return item
