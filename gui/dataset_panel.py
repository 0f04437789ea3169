"""The dataset panel: choose the data a graph trains on and see what it holds.

Sources are the engine's spec strings (bundled, ``idx:DIR``, ``npz:FILE``, ``csv:FILE``, or a
synthetic set with size and noise). Loading one writes it into the project's "data" section
(through ``edit_data``, the window's undoable ``Document.edit_section``), fits the graph's Input
and Label nodes to it (through ``apply_edits`` so the window can make it an undoable edit) and
reports, in the engine's words, why the graph cannot take it if so.
"""
from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QApplication, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QScrollArea, QSpinBox,
                               QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from layerloom.engine.data import Dataset, load_data, parse_spec
from layerloom.engine.data.location import place, portable_spec
from layerloom.engine.data.section import adopt
from layerloom.engine.project import check_fit, planned_fit
from layerloom.engine.serialize import Project
from layerloom.engine.spec import LayerloomError, fmt_shape
from layerloom.gui.augment_panel import AugmentPanel
from layerloom.gui.data_options import ImageFolderOptions, TableOptions
from layerloom.gui.plots.images import class_grid_pixmap, displayable
from layerloom.gui.plots.style import make_view, node_color, style_plot

# (kind, label, what the path names or None)
SOURCES = (("bundled", "Fashion-MNIST subset", None),  # short: the side dock shows ~20 characters
           ("shapes", "Coloured shapes", None),  # drawn on first use (engine.data.shapes)
           ("idx", "MNIST-format folder", "folder"), ("folder", "Image folder", "folder"),
           ("npz", "NumPy .npz file", "file"), ("csv", "CSV file", "file"),
           ("spirals", "Synthetic: spirals", None), ("moons", "Synthetic: moons", None),
           ("circles", "Synthetic: circles", None), ("xor", "Synthetic: xor", None),
           ("signals", "Synthetic: signals", None))
NAMED = ("bundled", "shapes")  # data sets that need no path and take no options here
SYNTHETIC = ("spirals", "moons", "circles", "xor", "signals")
WAVES_PER_CLASS = 2
FILE_FILTERS = {"npz": "NumPy archives (*.npz)", "csv": "CSV files (*.csv *.txt)"}
ERROR_STYLE, OK_STYLE = "color: #c62828;", "color: #2e7d32;"
MAX_SCATTER = 3000


class DatasetPanel(QWidget):
    dataset_changed = Signal(object)  # the Dataset just loaded

    def __init__(self, project: Callable[[], Project],
                 apply_edits: Callable[[list], None] | None = None, parent: QWidget | None = None,
                 graph_path: Callable[[], Path | None] = lambda: None,
                 edit_data: Callable[[dict], object] | None = None):
        """``graph_path()``: the graph's file; a path typed here is relative to its folder, and
        data inside that folder is stored relative to it (the folder can move as a whole).
        ``edit_data(changes)`` sets keys of the project's "data" section (the window gives
        ``Document.edit_section`` there); without it the section is set directly."""
        super().__init__(parent)
        self._project, self._apply_edits, self._graph_path = project, apply_edits, graph_path
        self._edit_data = edit_data or self._set_data
        self.dataset: Dataset | None = None
        self._build()
        self.load_from_project()

    def _set_data(self, changes: dict) -> None:
        """Without a window: set the section's keys directly (None removes one, as the
        Document's edit_section does)."""
        section = self._project().data
        section.update({k: v for k, v in changes.items() if v is not None})
        for key in [k for k, v in changes.items() if v is None]:
            section.pop(key, None)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        self._build_form()
        self.info, self.fit_label = QLabel(), QLabel()
        for label in (self.info, self.fit_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self._build_preview()
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.load_button, 0, Qt.AlignRight)
        layout.addWidget(self.info)
        layout.addWidget(self.fit_label)
        # examples of the data, and for images the training-only augmentation with its previews
        self.augment = AugmentPanel()
        self.augment.changed.connect(self._on_augment)
        self.views = QTabWidget()
        self.views.addTab(self.preview, "Examples")
        self.views.addTab(self.augment, "Augmentation")
        self.views.setTabEnabled(1, False)
        layout.addWidget(self.views, 1)
        self.source.currentIndexChanged.connect(self._on_source)

    def _build_form(self) -> None:
        self.source = QComboBox()
        for kind, label, _ in SOURCES:
            self.source.addItem(label, kind)
        # long source names must not make the side dock wide: the combo elides, the popup shows all
        self.source.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.source.setMinimumContentsLength(14)
        self.path = QLineEdit()
        self.path.setPlaceholderText("choose a folder or file…")
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.setContentsMargins(0, 0, 0, 0)
        path_row.addWidget(self.path, 1)
        path_row.addWidget(self.browse)
        self.path_box = QWidget()
        self.path_box.setLayout(path_row)
        self.points, self.noise = QSpinBox(), QDoubleSpinBox()
        self.points.setRange(4, 1_000_000)
        self.points.setSingleStep(100)
        self.noise.setRange(0.0, 10.0)
        self.noise.setDecimals(2)
        self.noise.setSingleStep(0.05)
        self.val_fraction = QSpinBox()
        self.val_fraction.setRange(0, 90)
        self.val_fraction.setSuffix(" %")
        self.load_button = QPushButton("Load")
        self.load_button.clicked.connect(self.load)
        self.form = QFormLayout()
        self.form.addRow("Source", self.source)
        self.form.addRow("Path", self.path_box)
        self.form.addRow("Points", self.points)
        self.form.addRow("Noise", self.noise)
        self.folder_options, self.table_options = ImageFolderOptions(), TableOptions()
        self.form.addRow(self.folder_options)
        self.form.addRow(self.table_options)
        self.form.addRow("Validation split", self.val_fraction)

    def _build_preview(self) -> None:
        self.preview = QStackedWidget()
        self.images = QLabel()
        self.images.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        scroll = QScrollArea()
        scroll.setWidget(self.images)
        scroll.setWidgetResizable(True)
        self.scatter_view = make_view(pg.PlotWidget)
        style_plot(self.scatter_view.getPlotItem())
        self.scatter_view.getPlotItem().setAspectLocked(True)
        self.scatter_view.getPlotItem().addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.no_preview = QLabel()
        self.no_preview.setAlignment(Qt.AlignCenter)
        self.no_preview.setWordWrap(True)
        for w in (scroll, self.scatter_view, self.no_preview):
            self.preview.addWidget(w)
        self.preview.setCurrentWidget(self.no_preview)

    # ------------------------------------------------------------------ the choice
    @property
    def kind(self) -> str:
        return self.source.currentData()

    def _on_source(self, _index: int = 0) -> None:
        needs = dict((k, n) for k, _, n in SOURCES)[self.kind]
        synthetic = self.kind in SYNTHETIC
        for widget, visible in ((self.path_box, needs is not None), (self.points, synthetic),
                                (self.noise, synthetic)):
            widget.setVisible(visible)
            self.form.labelForField(widget).setVisible(visible)
        self.path.setPlaceholderText(f"choose a {needs}…" if needs else "")
        self.folder_options.setVisible(self.kind == "folder")
        self.table_options.setVisible(self.kind == "csv")
        if synthetic:
            self._set_synthetic_defaults()

    def _set_synthetic_defaults(self) -> None:
        from inspect import signature

        from layerloom.engine.data import synthetic

        params = signature(getattr(synthetic, f"load_{self.kind}")).parameters
        self.points.setValue(int(params["n"].default))
        self.noise.setValue(float(params["noise"].default))

    def spec(self) -> str:
        """The engine spec string the widgets describe."""
        if self.kind in NAMED:
            return self.kind
        if self.kind in SYNTHETIC:
            return f"{self.kind}?n={self.points.value()}&noise={self.noise.value():g}"
        options = {"folder": self.folder_options.options,
                   "csv": self.table_options.options}.get(self.kind, dict)()
        query = f"?{urlencode(options)}" if options else ""
        return f"{self.kind}:{self.path.text().strip()}{query}"

    def _browse(self) -> None:
        self.choose()

    def choose(self) -> Dataset | None:
        """Ask for a file (or folder) of the chosen kind and load it; None when cancelled or
        when it does not load (the panel says why)."""
        if dict((k, n) for k, _, n in SOURCES)[self.kind] is None:  # bundled, synthetic: a file
            self.source.setCurrentIndex(self.source.findData("npz"))
        start = str(self._graph_path().parent) if self._graph_path() else self.path.text()
        if self.kind in ("idx", "folder"):
            title = "MNIST-format folder" if self.kind == "idx" else "Folder of class folders"
            path = QFileDialog.getExistingDirectory(self, title, start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Data file", start,
                                                  FILE_FILTERS.get(self.kind, "All files (*)"))
        if not path:
            return None
        self.path.setText(path)
        if self.kind == "csv":
            self.table_options.list_file(path, {})
        return self.load()

    def load_from_project(self) -> None:
        """Show the project's data section in the widgets (nothing is loaded)."""
        section = self._project().data
        try:
            kind, path, options = parse_spec(section.get("spec") or "bundled")
        except LayerloomError:
            kind, path, options = "bundled", None, {}
        self.source.blockSignals(True)
        self.source.setCurrentIndex(max(0, self.source.findData(kind)))
        self.source.blockSignals(False)
        self._on_source()
        self.path.setText(path or "")
        self.points.setValue(int(options.get("n", self.points.value())))
        self.noise.setValue(float(options.get("noise", self.noise.value())))
        self.val_fraction.setValue(int(round(100 * float(section.get("val_fraction", 0.1)))))
        self.folder_options.set_options(options if kind == "folder" else {})
        if kind == "csv" and path:
            self.table_options.list_stored(section.get("spec"), self._graph_path(), options)
        self.augment.set_settings(section.get("augment"))

    # ------------------------------------------------------------------ loading
    def load(self) -> Dataset | None:
        """Load the chosen source; on success it becomes the project's data and is announced."""
        if self.kind not in SYNTHETIC and self.kind not in NAMED and not self.path.text().strip():
            self._show_error(f"Choose a {dict((k, n) for k, _, n in SOURCES)[self.kind]} first.")
            return None
        spec, val = self.spec(), self.val_fraction.value() / 100
        seed = self._project().data.get("seed", 0)
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            spec = place(spec, self._graph_path()).spec  # relative: from the graph's folder
            dataset = load_data(spec, val_fraction=val, seed=seed if isinstance(seed, int) else 0)
        except LayerloomError as err:
            self._show_error(str(err))
            return None
        finally:
            QApplication.restoreOverrideCursor()
        spec = portable_spec(spec, self._graph_path())
        # what predictions on a person's own files need is stored with the graph file too
        # (None removes a key, so a source without them leaves none behind); one undoable edit
        self._edit_data({"spec": spec, "val_fraction": val,
                         "preprocessing": dataset.preprocessing or None,
                         "classes": list(map(str, dataset.class_names)) or None})
        adopt(dataset, self._project().data, same_source=True)  # its augmentation for training
        self.set_dataset(dataset)
        return dataset

    def _on_augment(self, settings: dict) -> None:
        """New augmentation settings: into the data section, as one undoable edit (a run takes
        them from there when it starts)."""
        self._edit_data({"augment": settings or None})

    def set_dataset(self, dataset: Dataset) -> None:
        """Show ``dataset`` (loaded here or elsewhere), fit the graph to it, announce it."""
        self.dataset = dataset
        self._show_info(dataset)
        self._show_preview(dataset)
        self.views.setTabEnabled(1, self.augment.set_split(dataset.train))
        self.fit_graph()
        self.dataset_changed.emit(dataset)

    def show_dataset(self, dataset: Dataset) -> None:
        """Show the data a just-opened file names, without editing its graph (no fit)."""
        self.dataset = dataset
        self._show_info(dataset)
        self._show_preview(dataset)
        self.views.setTabEnabled(1, self.augment.set_split(dataset.train))
        self.refresh_fit()

    def _show_error(self, text: str) -> None:
        self.info.setStyleSheet(ERROR_STYLE)
        self.info.setText(text)

    def _show_info(self, d: Dataset) -> None:
        self.info.setStyleSheet("")
        classes = ""
        if d.task == "classification":
            shown = [escape(str(n)) for n in d.class_names[:12]]
            if np.ndim(d.train.y) == 1 and len(d.train):  # one class per sample: count them
                counts = np.bincount(d.train.y, minlength=d.num_classes)
                shown = [f"{n} {c:,}" for n, c in zip(shown, counts)]
                classes = f"<br><b>{d.num_classes} classes</b> (training samples each): "
            else:
                classes = f"<br><b>{d.num_classes} classes:</b> "
            classes += ", ".join(shown) + ("…" if d.num_classes > 12 else "")
        if d.description:
            classes += f"<br><small>{escape(d.description)}</small>"
        target = f", targets {fmt_shape(d.target_shape)}" if d.task != "classification" else ""
        total = len(d.train) + len(d.val) + len(d.test)
        self.info.setText(
            f"<b>{d.name}</b>: {total:,} samples — {len(d.train):,} training, "
            f"{len(d.val):,} validation ({self.val_fraction.value()} %), {len(d.test):,} test<br>"
            f"<b>Sample shape</b> {fmt_shape(d.sample_shape)} ({d.train.x.dtype}){target}{classes}")

    # ------------------------------------------------------------------ fitting the graph
    def fit_graph(self) -> list:
        """Give the Input/Label nodes the data's shapes, then say whether the graph fits."""
        if self.dataset is None:
            return []
        graph = self._project().graph
        try:
            edits = planned_fit(graph, self.dataset)
        except LayerloomError as err:
            self._show_fit(str(err), ok=False)
            return []
        if edits:
            if self._apply_edits is not None:
                self._apply_edits(edits)
            else:
                for node_id, name, _old, new in edits:
                    graph.set_attr(node_id, name, new)
        self.refresh_fit(edits)
        return edits

    def refresh_fit(self, edits: list = ()) -> None:
        """Re-check the graph against the data (call after graph edits)."""
        if self.dataset is None:
            return
        changed = "".join(f"<br>Set {node}.{name} to {fmt_shape(new) if name == 'shape' else new}"
                          for node, name, _old, new in edits)
        try:
            check_fit(self._project().graph, self.dataset)
        except LayerloomError as err:
            self._show_fit(f"✗ {err}{changed}", ok=False)
            return
        self._show_fit(f"✓ The graph takes this data.{changed}", ok=True)

    def _show_fit(self, text: str, ok: bool) -> None:
        self.fit_label.setStyleSheet(OK_STYLE if ok else ERROR_STYLE)
        self.fit_label.setText(text)
        self.fit_ok = ok

    # ------------------------------------------------------------------ preview
    def _show_preview(self, d: Dataset) -> None:
        if len(d.train) and displayable(d.train.x[0]) is not None and d.task == "classification":
            self.images.setPixmap(class_grid_pixmap(d.train.x, d.train.y, d.class_names))
            self.preview.setCurrentIndex(0)
        elif d.sample_shape == (2,):
            self._scatter(d)
            self.preview.setCurrentWidget(self.scatter_view)
        elif len(d.sample_shape) == 2 and d.task == "classification" and len(d.train):
            self._waves(d)
            self.preview.setCurrentWidget(self.scatter_view)
        else:
            self.no_preview.setText(f"Samples of {fmt_shape(d.sample_shape)}: no picture for these.")
            self.preview.setCurrentWidget(self.no_preview)

    def _waves(self, d: Dataset) -> None:
        """Signals (channels × length): the first channel of a few samples of each class, one
        band per class from the top."""
        plot = self.scatter_view.getPlotItem()
        plot.clear()
        plot.setAspectLocked(False)
        x, y = d.train.x, np.asarray(d.train.y)
        classes = sorted(set(y.ravel().tolist()))
        low, high = np.inf, -np.inf
        for i, c in enumerate(classes):
            color = node_color(str(c), i, len(classes))
            for k, row in enumerate(np.flatnonzero(y == c)[:WAVES_PER_CLASS]):
                wave = np.asarray(x[row][0], dtype=np.float64) - 3.0 * i
                low, high = min(low, wave.min()), max(high, wave.max())
                name = str(d.class_names[c]) if k == 0 and c < d.num_classes else None
                plot.addItem(pg.PlotDataItem(wave, pen=pg.mkPen(color, width=1.2), name=name))
        plot.autoRange()
        plot.setYRange(low, high + 0.3 * (high - low), padding=0.02)  # room for the legend

    def _scatter(self, d: Dataset) -> None:
        plot = self.scatter_view.getPlotItem()
        plot.clear()
        plot.setAspectLocked(True)
        x, y = d.train.x[:MAX_SCATTER], d.train.y[:MAX_SCATTER]
        classes = sorted(set(np.asarray(y).ravel().tolist())) if d.task == "classification" else [None]
        for i, c in enumerate(classes):
            pts = x if c is None else x[y == c]
            color = node_color(str(c), i, len(classes))
            name = str(d.class_names[c]) if c is not None and c < d.num_classes else "samples"
            plot.addItem(pg.ScatterPlotItem(pts[:, 0], pts[:, 1], size=5, pen=None,
                                            brush=pg.mkBrush(color), name=name))
        plot.autoRange()
