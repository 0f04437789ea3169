"""The dataset panel: choose the data a graph trains on and see what it holds.

Sources are every reader the engine has (``gui.data_sources``: the bundled images, MNIST-format
and image folders, .npz and CSV files, text for language models, the synthetic sequence tasks,
2-D sets and signals), each with its reader's options. Loading one writes it into the project's
"data" section
(through ``edit_data``, the window's undoable ``Document.edit_section``), fits the graph's Input
and Label nodes to it (through ``apply_edits`` so the window can make it an undoable edit) and
reports, in the engine's words, why the graph cannot take it if so.
"""
from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QApplication, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QScrollArea, QSpinBox,
                               QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from layerloom.engine.data import Dataset, load_data
from layerloom.engine.data.location import place, portable_spec
from layerloom.engine.data.section import adopt
from layerloom.engine.objective import NO_DATA_NEEDED, graph_needs_no_data
from layerloom.engine.project import check_fit, planned_fit
from layerloom.engine.serialize import Project
from layerloom.engine.spec import LayerloomError, fmt_shape
from layerloom.gui.augment_panel import AugmentPanel
from layerloom.gui.data_options import ImageFolderOptions, TableOptions
from layerloom.gui import data_sources as ds
from layerloom.gui.plots.images import class_grid_pixmap, displayable
from layerloom.gui.plots.style import legend_label, make_view, style_plot

WAVES_PER_CLASS = 2
OWN_FORMS = {"folder": "folder_options", "csv": "table_options"}  # sources with a form of their own
NOT_LOADED = "Press Load to read this data and see what it holds."
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
        self.sources = ds.sources()
        self.source = QComboBox()
        for src in self.sources:
            self.source.addItem(src.label, src.key)
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
        self.task = QComboBox()  # a sequence task: the "path" of seq:TASK
        self.val_fraction = QSpinBox()
        self.val_fraction.setRange(0, 90)
        self.val_fraction.setSuffix(" %")
        self.load_button = QPushButton("Load")
        self.load_button.clicked.connect(self.load)
        self.form = QFormLayout()
        self.form.addRow("Source", self.source)
        self.form.addRow("Path", self.path_box)
        self.form.addRow("Task", self.task)
        self.options: dict[str, QWidget] = {}  # one widget per option name, shown as needed
        for src in self.sources:
            for name, default in ({} if src.kind in OWN_FORMS else src.options).items():
                if name not in self.options:
                    self.options[name] = ds.option_widget(default)
                    self.form.addRow(ds.OPTION_LABELS.get(name, name), self.options[name])
        # an image folder and a CSV table have forms of their own (gui.data_options)
        self.folder_options, self.table_options = ImageFolderOptions(), TableOptions()
        self.form.addRow(self.folder_options)
        self.form.addRow(self.table_options)
        self.form.addRow("Validation split", self.val_fraction)
        self._extra: dict = {}  # options of the project's spec that no widget shows

    @property
    def points(self) -> QSpinBox:
        return self.options["n"]

    @property
    def noise(self) -> QDoubleSpinBox:
        return self.options["noise"]

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
        self.scatter_legend = legend_label([])  # above the points, in the Regions map's colours
        self.scatter_box = QWidget()
        box = QVBoxLayout(self.scatter_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addWidget(self.scatter_legend)
        box.addWidget(self.scatter_view, 1)
        self.no_preview = QLabel()
        self.no_preview.setAlignment(Qt.AlignCenter)
        self.no_preview.setWordWrap(True)
        for w in (scroll, self.scatter_box, self.no_preview):
            self.preview.addWidget(w)
        self.preview.setCurrentWidget(self.no_preview)

    # ------------------------------------------------------------------ the choice
    @property
    def kind(self) -> str:
        return self.source.currentData()

    @property
    def current(self) -> ds.Source:
        return next(src for src in self.sources if src.key == self.kind)

    def _on_source(self, _index: int = 0) -> None:
        """Show the rows the chosen source takes, at its reader's defaults."""
        src = self.current
        self._extra = {}
        for widget, visible in ((self.path_box, src.needs in ("folder", "file")),
                                (self.task, src.needs == "task")):
            widget.setVisible(visible)
            self.form.labelForField(widget).setVisible(visible)
        self.folder_options.setVisible(src.kind == "folder")
        self.table_options.setVisible(src.kind == "csv")
        for name, widget in self.options.items():
            visible = name in src.options and src.kind not in OWN_FORMS
            widget.setVisible(visible)
            self.form.labelForField(widget).setVisible(visible)
            if visible:
                ds.set_option(widget, src.options[name])
        self.path.setPlaceholderText(f"choose a {src.needs}…" if src.needs else "")
        if src.needs == "task":
            self.task.clear()
            self.task.addItems(ds.tasks(src))

    def spec(self) -> str:
        """The engine spec string the widgets describe."""
        src = self.current
        path = self.task.currentText() if src.needs == "task" else self.path.text()
        if src.kind in OWN_FORMS:
            return ds.build_spec(src, path, {}, getattr(self, OWN_FORMS[src.kind]).options())
        values = {name: ds.option_value(self.options[name]) for name in src.options}
        return ds.build_spec(src, path, values, self._extra)

    def _browse(self) -> None:
        self.choose()

    def choose(self) -> Dataset | None:
        """Ask for a file (or folder) of the chosen kind and load it; None when cancelled or
        when it does not load (the panel says why)."""
        if self.current.needs not in ("file", "folder"):  # bundled, synthetic, a task: a file
            self.source.setCurrentIndex(self.source.findData("npz"))
        src = self.current
        start = str(self._graph_path().parent) if self._graph_path() else self.path.text()
        if src.needs == "folder":
            title = "Folder of class folders" if src.kind == "folder" else src.label
            path = QFileDialog.getExistingDirectory(self, title, start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Data file", start,
                                                  ds.FILE_FILTERS.get(src.kind, "All files (*)"))
        if not path:
            return None
        self.path.setText(path)
        if src.kind == "csv":
            self.table_options.list_file(path, {})
        return self.load()

    def load_from_project(self) -> None:
        """Show the project's data section in the widgets, and nothing of earlier data: the
        choice is loaded by the caller (or by Load)."""
        section = self._project().data
        try:
            src, path, shown, extra = ds.read_spec(section.get("spec") or "bundled", self.sources)
        except LayerloomError:
            src, path, shown, extra = self.sources[0], "", {}, {}
        self.source.blockSignals(True)
        self.source.setCurrentIndex(max(0, self.source.findData(src.key)))
        self.source.blockSignals(False)
        self._on_source()
        if src.needs == "task":
            self.task.setCurrentIndex(max(0, self.task.findText(path)))
        else:
            self.path.setText(path)
        for name, value in shown.items():
            if name in self.options and src.kind not in OWN_FORMS:
                ds.set_option(self.options[name], value)
        self._extra = extra
        every = {**shown, **extra}
        self.folder_options.set_options(every if src.kind == "folder" else {})
        if src.kind == "csv" and path:
            self.table_options.list_stored(section.get("spec"), self._graph_path(), every)
        self.augment.set_settings(section.get("augment"))
        self.val_fraction.setValue(int(round(100 * float(section.get("val_fraction", 0.1)))))
        self.dataset = None
        self.info.setStyleSheet("")
        self.info.setText(NOT_LOADED)
        self._show_fit("", ok=False)
        self.no_preview.setText("")
        self.preview.setCurrentWidget(self.no_preview)

    # ------------------------------------------------------------------ loading
    def load(self) -> Dataset | None:
        """Load the chosen source; on success it becomes the project's data and is announced."""
        if self.current.needs in ("folder", "file") and not self.path.text().strip():
            self._show_error(f"Choose a {self.current.needs} first.")
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

    def show_no_data_needed(self) -> None:
        """A graph of Parameters and an Objective (the founding example) trains on no data."""
        self.dataset = None
        self.info.setStyleSheet("")
        self.info.setText("This graph has no Input and no Label node.")
        self.preview.setCurrentWidget(self.no_preview)
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
        if graph_needs_no_data(self._project().graph):
            self._show_fit(NO_DATA_NEEDED, ok=True)
            return
        if self.dataset is None:
            self._show_fit("", ok=False)  # a "needs no data" of an earlier version goes
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
            ds.draw_scatter(self.scatter_view.getPlotItem(), self.scatter_legend, d, MAX_SCATTER)
            self.preview.setCurrentWidget(self.scatter_box)
        elif len(d.sample_shape) == 2 and d.task == "classification" and len(d.train):
            ds.draw_waves(self.scatter_view.getPlotItem(), self.scatter_legend, d, WAVES_PER_CLASS)
            self.preview.setCurrentWidget(self.scatter_box)
        else:
            self.no_preview.setText(ds.text_preview(d) or
                                    f"Samples of {fmt_shape(d.sample_shape)}: no picture for these.")
            self.preview.setCurrentWidget(self.no_preview)
