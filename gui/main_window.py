"""The main window: palette and data (left), canvas (centre), training and inspector (right),
plots and inference (bottom), status bar; wiring only.

The training docks attach with ``add_panel`` (``gui.training.session``); they reach the project
through ``window.document`` and lock structural edits with ``document.set_locked(True, reason)``.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QMessageBox, QWidget

from layerloom.engine.spec import LayerloomError
from layerloom.gui import theme as th
from layerloom.gui.autosave import Autosaver, recovery_dir
from layerloom.gui.canvas.flow_overlay import GradientFlowOverlay
from layerloom.gui.canvas.view import GraphView
from layerloom.gui.clipboard import GraphClipboard
from layerloom.gui.document import Document
from layerloom.gui.explain_view import ExplainView
from layerloom.gui.file_places import documents_dir, is_template, save_as_start, sweep_on_start
from layerloom.gui.inspector import Inspector
from layerloom.gui.layout import layered_positions
from layerloom.gui.menus import build_menus
from layerloom.gui.palette import LayerPalette
from layerloom.gui.plots.style import restyle
from layerloom.gui.runs.session import RunsSession
from layerloom.gui.status_bar import StatusParts
from layerloom.gui.training.session import TrainingSession

MAX_RECENT = 8
LAYOUT_VERSION = 3  # bump when the set of docks changes: an older saved layout is then ignored


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings or QSettings("Layerloom", "Layerloom")
        self.theme_mode = str(self.settings.value("theme", "system"))
        if self.theme_mode != "system":
            th.apply_theme(self.theme_mode)
        self.document = Document(parent=self)
        self.view = GraphView(self.document, self)
        self.setCentralWidget(self.view)
        self.palette_panel = LayerPalette(self)
        self.inspector = Inspector(self.document, self)
        self.palette_dock = self._dock(self.palette_panel, Qt.LeftDockWidgetArea, "Layers")
        self.inspector_dock = self._dock(self.inspector, Qt.RightDockWidgetArea, "Inspector")
        self.explain = ExplainView(self)
        self.explain_dock = self._dock(self.explain, Qt.RightDockWidgetArea, "Explain")
        self.status = StatusParts(self.statusBar(), self.document,
                                  self.view.graph_scene.selected_node_ids)
        # the labels by their old names: the window's tests and tools read them here
        self.lock_label, self.problems_label = self.status.lock_label, self.status.problems_label
        self.params_label = self.status.params_label
        self.clipboard = GraphClipboard(self.document, self.view.graph_scene)
        self.flow_overlay = GradientFlowOverlay(self.view.graph_scene, self.document)
        menus = build_menus(self)
        self.actions_by_name = menus.actions
        self.recent_menu, self.samples_menu, self.panels_menu = (menus.recent, menus.samples,
                                                                  menus.panels)
        for dock in (self.palette_dock, self.inspector_dock, self.explain_dock):
            self.panels_menu.addAction(dock.toggleViewAction())
        self.training = TrainingSession(self, save_with_graph=self.actions_by_name["save_weights"])
        self.runs = RunsSession(self)
        self.tabifyDockWidget(self.inspector_dock, self.explain_dock)  # after training's split
        self.inspector_dock.raise_()
        self.autosave = Autosaver(self.document, recovery_dir(self.settings), parent=self,
                                  weights=self.training.unsaved_weights,
                                  restore=self.training.adopt_weights)
        # what a killed write of an earlier session left beside the files it wrote
        sweep_on_start([*(Path(f).parent for f in self.recent_files()), documents_dir(),
                        recovery_dir(self.settings)])
        self._wire()
        self._update_title()
        self.status.show_report(self.document.report)
        self.resize(1440, 900)
        if self.training.compact:  # a small screen: the window fits it at first start
            avail = self.screen().availableGeometry()
            self.resize(min(1440, avail.width()), min(900, avail.height()))
        self._default_sizes()
        self._default_layout = self.saveState(LAYOUT_VERSION)
        self._restore_layout()

    # ------------------------------------------------------------------ layout
    def _default_sizes(self) -> None:
        em = self.fontMetrics().horizontalAdvance("M")
        self.resizeDocks([self.palette_dock, self.inspector_dock], [19 * em, 30 * em],
                         Qt.Horizontal)
        self.training.default_sizes()

    def _restore_layout(self) -> None:
        """The size, place and dock arrangement of the last session; a saved layout that no
        longer fits the docks (another version) is ignored and the defaults stay."""
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state, LAYOUT_VERSION)

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))

    def reset_layout(self) -> None:
        """Every dock back where a first start puts it, shown, at its first size."""
        self.restoreState(self._default_layout, LAYOUT_VERSION)
        for dock in self.findChildren(QDockWidget):
            dock.setFloating(False)
        self._default_sizes()

    def _wire(self) -> None:
        doc = self.document
        self.palette_panel.add_requested.connect(self.view.adding.add_at_centre)
        self.palette_panel.block_requested.connect(self.view.adding.add_block)
        self.palette_panel.blocks.set_model(doc.model)
        doc.project_replaced.connect(lambda _graph: self.palette_panel.blocks.set_model(doc.model))
        doc.library_changed.connect(self.palette_panel.blocks.saved_to)
        self.view.selection_changed.connect(self.inspector.show_nodes)
        self.view.selection_changed.connect(
            lambda ids: self.explain.show_node(ids[0] if len(ids) == 1 else None))
        doc.report_changed.connect(lambda _r: self.explain.show_node(self.explain.node_id))
        self.view.selection_changed.connect(lambda _ids: self.status.show_report(doc.report))
        doc.dirty_changed.connect(lambda _d: self._update_title())
        doc.path_changed.connect(lambda _p: self._update_title())
        # posted: at start run_gui opens the sample right after the recovery offer, and its
        # "Opened …" notice would otherwise hide a damaged-file notice at once
        self.autosave.message.connect(lambda text: QTimer.singleShot(
            0, self, lambda: self.statusBar().showMessage(text, 15000)))

    # ------------------------------------------------------------------ panels
    def _dock(self, widget: QWidget, area: Qt.DockWidgetArea, title: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetClosable
                         | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def add_panel(self, widget: QWidget, area: Qt.DockWidgetArea = Qt.BottomDockWidgetArea,
                  title: str = "Panel") -> QDockWidget:
        """Dock a side panel (training, plots, data...) and list it under View > Panels.

        ``area`` is a Qt.DockWidgetArea; panels added to the same area are tabbed together.
        Returns the QDockWidget so the caller can raise or hide it.
        """
        existing = [d for d in self.findChildren(QDockWidget) if self.dockWidgetArea(d) == area]
        dock = self._dock(widget, area, title)
        if existing and area in (Qt.BottomDockWidgetArea, Qt.TopDockWidgetArea):
            self.tabifyDockWidget(existing[-1], dock)
            dock.raise_()
        self.panels_menu.addAction(dock.toggleViewAction())
        return dock

    def _update_title(self) -> None:
        path = self.document.path
        name = (f"{path.name} (sample: Save asks where)" if is_template(path)
                else path.name if path else "Untitled")
        self.setWindowTitle(f"{name}[*] — Layerloom")
        self.setWindowModified(self.document.dirty)

    # ------------------------------------------------------------------ editing
    def delete_selection(self) -> None:
        scene = self.view.graph_scene
        self.document.remove(scene.selected_node_ids(), scene.selected_edges())

    def auto_layout(self) -> None:
        sizes = self.view.graph_scene.node_sizes()
        positions = layered_positions(self.document.graph, sizes, self.view.viewport_extent())
        if self.document.move_nodes(positions, text="Auto-layout"):
            self.view.zoom_to_fit()

    def set_theme(self, mode: str) -> None:
        self.theme_mode = mode
        self.settings.setValue("theme", mode)
        th.apply_theme(mode)
        self.view.graph_scene.set_theme(th.current())
        self.palette_panel.refresh_icons()
        restyle(self)
        for widget in self.findChildren(QWidget):  # "palette(...)" in a style sheet is read when
            if widget.styleSheet():                # the sheet is set: set it again
                widget.setStyleSheet(widget.styleSheet())

    # ------------------------------------------------------------------ files
    def maybe_save(self) -> bool:
        """Ask before unsaved changes (or trained weights not yet saved beside the graph) are
        lost; False means the person cancelled."""
        if not self.document.dirty and not self.training.weights_unsaved:
            return True
        name = self.document.path.name if self.document.path else "Untitled"
        answer = QMessageBox.question(
            self, "Unsaved changes", f"Save the changes to {name} before closing it?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if answer == QMessageBox.Save:
            return self.save()
        return answer == QMessageBox.Discard

    def new_graph(self) -> bool:
        return self.maybe_save() and self.document.new()

    def open_dialog(self) -> bool:
        start = str(self.document.path.parent) if self.document.path else str(Path.cwd())
        path, _ = QFileDialog.getOpenFileName(self, "Open graph", start,
                                              "Layerloom graph (*.json);;All files (*)")
        return bool(path) and self.open_path(path)

    def open_path(self, path: str | Path, ask: bool = True) -> bool:
        """Open a graph file; a file that fails to load leaves the current graph untouched."""
        if ask and not self.maybe_save():
            return False
        try:
            opened = self.document.open(path)
        except LayerloomError as err:  # any file: one line, and the open graph stays as it was
            QMessageBox.critical(self, "Cannot open graph", str(err))
            return False
        if opened:
            self._remember(Path(path))
            self.statusBar().showMessage(f"Opened {Path(path).name}", 4000)
        return opened

    def save(self) -> bool:
        """Save where the graph came from; an untitled graph or a sample (a template) asks."""
        if self.document.path is None or is_template(self.document.path):
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        start = str(save_as_start(self.document.path))
        path, _ = QFileDialog.getSaveFileName(self, "Save graph as", start,
                                              "Layerloom graph (*.json)")
        if not path:
            return False
        path = Path(path) if Path(path).suffix == ".json" else Path(path).with_suffix(".json")
        if is_template(path):
            QMessageBox.warning(self, "Samples are templates", "The samples folder keeps the "
                                "samples as they ship: save your copy in another folder.")
            return False
        return self._save_to(path)

    def _save_to(self, path: Path) -> bool:
        try:
            self.document.save(path)
        except OSError as err:
            QMessageBox.critical(self, "Cannot save graph", f"{path}: {err.strerror or err}")
            return False
        self._remember(path)
        weights = self.training.save_weights_beside(path)
        self.runs.weights_saved(weights)
        also = f" and {weights.name}" if weights is not None else ""
        self.statusBar().showMessage(f"Saved {path.name}{also}", 4000)
        return True

    def offer_recovery(self) -> bool:
        """At start: offer what a crashed session left unsaved; True when a graph was recovered
        (it is open, dirty, under its original path), so the caller opens nothing over it."""
        return self.autosave.offer_recovery(self)

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        files = [value] if isinstance(value, str) else list(value or [])
        return [f for f in files if Path(f).exists()]

    def _remember(self, path: Path) -> None:
        files = [str(path.resolve())] + [f for f in self.recent_files()
                                          if f != str(path.resolve())]
        self.settings.setValue("recent_files", files[:MAX_RECENT])

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.maybe_save():
            self.shutdown()
            self.autosave.discard()  # saved or discarded: only a crash leaves a recovery file
            event.accept()
        else:
            event.ignore()

    def shutdown(self) -> None:
        """End and join what runs beside the UI (a training run, a sweep, explain pictures) and
        keep the layout: the window's close, or the app's end without one (``gui.main``), where
        an unsaved graph keeps its recovery file."""
        self.training.shutdown()
        self.runs.shutdown()
        self.explain.shutdown()
        self.save_layout()
