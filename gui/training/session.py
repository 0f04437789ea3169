"""The training parts inside the main window: docks, File > Export/Import Weights, weights saved
beside the graph file, and the canvas overlays (data mismatch, gradient warnings, divergence).

The window stays wiring-only: it makes one ``TrainingSession`` and forwards Save, Open and close
to it. The controller reaches the project through ``window.document`` and locks structural edits
with ``Document.set_locked`` while a run goes; setting changes in the panels are undoable
``Document.edit_section`` edits, so they mark the file dirty like any other edit.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QFileDialog, QFrame, QMainWindow, QMessageBox, QScrollArea,
                               QWidget)

from layerloom.engine.data import Dataset
from layerloom.engine.export.weights import save_weights, weights_path
from layerloom.engine.graph import Graph
from layerloom.engine.network import WeightsError
from layerloom.engine.objective import graph_needs_no_data
from layerloom.engine.spec import LayerloomError
from layerloom.gui import data_question
from layerloom.gui.dataset_panel import DatasetPanel
from layerloom.gui.inference_view import InferenceView
from layerloom.gui.plots.panel import PlotsPanel
from layerloom.gui.problems import Analyzer, ProblemsPanel
from layerloom.gui.training import controller as ctl
from layerloom.gui.training import export
from layerloom.gui.training.compiler import CompileStatus, KernelCompiler
from layerloom.gui.training.controller import TrainingController
from layerloom.gui.training.panel import TrainingPanel


COMPACT_HEIGHT = 760  # available screen height (px) below which the docks go compact


class TrainingSession(QObject):
    """Owns the controller and the four training docks of one main window."""

    def __init__(self, window: QMainWindow, save_with_graph: QAction):
        """``window``: the MainWindow (its document, view, docks and ``add_panel``);
        ``save_with_graph``: the checkable File > Save Trained Weights with Graph."""
        super().__init__(window)
        self.window, self.document = window, window.document
        self.save_weights_action = save_with_graph
        doc = self.document
        self.controller = TrainingController(lambda: doc.project, doc.set_locked,
                                             self._apply_fit, parent=window,
                                             graph_path=lambda: doc.data_home)
        self.controller.data_access.confirm = data_question.confirmer(  # asked before reading
            window, self.controller.data_access,  # data outside the graph's folder
            lambda: (self.dataset_dock.raise_(), self.dataset_panel.choose())[1], self._say)
        self.training_panel = TrainingPanel(self.controller, doc)
        self.dataset_panel = DatasetPanel(lambda: doc.project, self._apply_fit,
                                          graph_path=lambda: doc.data_home,
                                          edit_data=self._edit_data)
        self.plots = PlotsPanel(self.controller)
        self.inference = InferenceView(self.controller)
        self.problems = ProblemsPanel()
        self.analyzer = Analyzer(lambda: (doc.graph, doc.report, self.controller.dataset,
                                          doc.project.training),
                                 window.view, self.problems, window.problems_label,
                                 parent=self)
        self.compiler = KernelCompiler(lambda: (doc.graph, self.controller.dataset,
                                                self.controller.config()),
                                       lambda: self.controller.busy, parent=self)
        self.controller.gate = self.compiler.gate
        self.compile_status = CompileStatus()
        window.statusBar().insertPermanentWidget(0, self.compile_status)
        self.weights_unsaved = False  # a run changed the weights since the last Save or Open
        self.weights_generation = 0  # counts changes of the trained weights (autosave's token)
        self._dock()
        self._wire()

    @property
    def scene(self):
        return self.window.view.graph_scene

    # ------------------------------------------------------------------ docks
    def _dock(self) -> None:
        """Data beside the palette (left), Training above the inspector (right), Plots,
        Inference and Problems tabbed under the canvas; the right column runs the full height.
        On a small screen (``compact``) Training and the Inspector share the right column as
        tabs and the plots take the whole width: at 1280×720 the plots were cramped beside a
        column whose lower half was an empty Inspector."""
        w = self.window
        self.dataset_dock = w.add_panel(scrolled(self.dataset_panel), Qt.LeftDockWidgetArea,
                                        "Data")
        w.tabifyDockWidget(w.palette_dock, self.dataset_dock)
        w.palette_dock.raise_()
        self.training_dock = w.add_panel(self.training_panel, Qt.RightDockWidgetArea, "Training")
        screen = w.screen().availableGeometry() if w.screen() is not None else None
        self.compact = screen is not None and screen.height() < COMPACT_HEIGHT
        if self.compact:
            w.tabifyDockWidget(self.training_dock, w.inspector_dock)
            self.training_dock.raise_()
        else:
            w.splitDockWidget(self.training_dock, w.inspector_dock, Qt.Vertical)
        self.plots_dock = w.add_panel(self.plots, Qt.BottomDockWidgetArea, "Plots")
        self.inference_dock = w.add_panel(scrolled(self.inference), Qt.BottomDockWidgetArea,
                                          "Inference")
        self.problems_dock = self.analyzer.dock = w.add_panel(self.problems,
                                                              Qt.BottomDockWidgetArea, "Problems")
        self.plots_dock.raise_()
        w.setCorner(Qt.BottomLeftCorner, Qt.BottomDockWidgetArea)
        w.setCorner(Qt.BottomRightCorner, Qt.BottomDockWidgetArea if self.compact
                    else Qt.RightDockWidgetArea)

    def default_sizes(self) -> None:
        """Sizes for the first show (the window calls this once it has its size)."""
        w, em = self.window, self.window.fontMetrics().horizontalAdvance("M")
        w.resizeDocks([self.plots_dock], [int(w.height() * (0.4 if self.compact else 0.36))],
                      Qt.Vertical)
        w.resizeDocks([w.palette_dock], [(17 if self.compact else 22) * em], Qt.Horizontal)
        if not self.compact:
            w.resizeDocks([self.training_dock, w.inspector_dock], [22 * em, 30 * em],
                          Qt.Vertical)

    # ------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        doc, c, view = self.document, self.controller, self.window.view
        doc.project_replaced.connect(self._on_project_replaced)
        doc.section_changed.connect(self._on_section_changed)
        doc.report_changed.connect(self._on_graph_changed)
        self.dataset_panel.dataset_changed.connect(self._on_dataset)
        view.selection_changed.connect(
            lambda ids: self.plots.highlight(ids[0] if len(ids) == 1 else None))
        view.selection_changed.connect(  # compact: a selected node brings its Inspector tab up
            lambda ids: self.compact and ids and not c.busy and self.window.inspector_dock.raise_())
        self.plots.node_warning.connect(
            lambda node, reason: self.scene.overlays.set_warning(node, "gradient", reason))
        self.plots.warnings_cleared.connect(lambda: self.scene.overlays.clear_warnings("gradient"))
        c.started.connect(self._on_started)
        c.state_changed.connect(lambda state: self.dataset_panel.setEnabled(state == ctl.IDLE))
        c.status.connect(self._on_status)
        c.diverged.connect(self._on_diverged)
        c.warning.connect(lambda r: self._say(f"Warning at step {r.global_step + 1}: {r.message}", 0))
        c.weights_changed.connect(self._on_weights_changed)
        c.failed.connect(lambda text: self._say(f"Training could not run: {text}", 0))
        c.finished.connect(self._on_finished)
        c.refused.connect(lambda _text: self.analyzer.show_list())
        self.window.problems_label.linkActivated.connect(lambda _link: self.analyzer.show_list())
        self.compiler.progress.connect(self.compile_status.show_progress)
        self.compiler.progress.connect(  # Train pressed meanwhile: its panel says how far
            lambda p: c.state == ctl.PREPARING and p is not None
            and self.training_panel._on_status(p.text()))
        for signal in (doc.report_changed, self.dataset_panel.dataset_changed,
                       doc.section_changed):
            signal.connect(lambda *_: c.state == ctl.IDLE and self.compiler.schedule())

    def _say(self, text: str, timeout: int = 8000) -> None:
        self.window.statusBar().showMessage(text, timeout)

    def _apply_fit(self, edits: list) -> None:
        """Fit the Input/Label nodes to the data as one undoable edit."""
        doc = self.document
        doc.stack.beginMacro("Fit graph to data")
        try:
            for node_id, name, _old, new in edits:
                doc.set_attr(node_id, name, new)
        finally:
            doc.stack.endMacro()

    def _edit_data(self, changes: dict) -> None:
        """The Data panel loaded a source: one undoable edit of the data section, and the data
        the person picked is theirs to read wherever it is."""
        self.document.edit_section("data", changes)
        self.controller.data_access.approve_section(self.document.project.data)

    def _on_section_changed(self, name: str) -> None:
        """A section changed (an edit, its undo or redo): Analyze again; show the data again."""
        self.analyzer.run()
        if name == "data":
            self.dataset_panel.load_from_project()
            self.inference.refresh_panes()  # paired sequences or not

    def _on_project_replaced(self, graph: Graph) -> None:
        """New or Open: show the file's data (the training panel shows its settings itself),
        and load its weights if saved."""
        self.controller.drop_weights()
        self.weights_unsaved = False
        self.controller.set_dataset(None)
        self.controller.data_access.approved.clear()  # agreed to for the graph it was given to
        self.controller.last_done = None
        self.scene.overlays.set_alert(None)
        self.plots.reset(None)  # a clean slate: no curve, matrix or map of the last graph's run
        self.training_panel.clear()
        self.inference.set_network(None, None)
        self.dataset_panel.load_from_project()
        if not graph.nodes:
            return
        if graph_needs_no_data(graph) and not self.document.project.data.get("spec"):
            self.dataset_panel.show_no_data_needed()  # the founding example: Parameters only
            self.analyzer.run()
        else:
            try:
                dataset = self.controller.load_dataset()
            except LayerloomError as err:
                self.dataset_panel._show_error(str(err))
            else:
                self.dataset_panel.show_dataset(dataset)
                self.analyzer.run()  # every problem on its node and listed
        path = self.document.path
        if path is not None and weights_path(path).exists():
            self.import_weights(weights_path(path), quiet_errors=True)

    def _on_dataset(self, dataset: Dataset) -> None:
        self.controller.set_dataset(dataset)
        self.analyzer.run()  # every problem on its node and listed

    def _on_graph_changed(self, _report=None) -> None:
        if self.controller.state == ctl.IDLE:
            self.controller.has_weights()  # drops them (and says so) when the structure changed
        self.dataset_panel.refresh_fit()
        self.analyzer.run()  # every problem on its node and listed

    # ------------------------------------------------------------------ run reports
    def _on_started(self, _info) -> None:
        """The plots were reset for the run: clear the last run's alert, follow the selection."""
        self.scene.overlays.set_alert(None)
        ids = self.scene.selected_node_ids()
        self.plots.highlight(ids[0] if len(ids) == 1 else None)
        self.plots_dock.raise_()
        self.training_dock.raise_()  # compact: the Inspector may have been in front

    def _on_status(self, text: str) -> None:
        if text:
            self._status_text = text
            self._say(text, 0)
        elif self.window.statusBar().currentMessage() == getattr(self, "_status_text", None):
            self.window.statusBar().clearMessage()

    def _on_weights_changed(self, trained: bool) -> None:
        self.weights_generation += 1
        self.weights_unsaved = trained and self.save_weights_action.isChecked()

    def unsaved_weights(self) -> tuple | None:
        """(a token that changes with them, the parameters) of trained weights that are saved
        nowhere, while no run is changing them: what autosave keeps; else None."""
        net = self.controller.trained_network()
        if not self.weights_unsaved or self.controller.busy or net is None:
            return None
        return self.weights_generation, net.params

    def _on_diverged(self, report) -> None:
        item = self.scene.items_by_id.get(self.scene.overlays.local(report.node_id))
        self.scene.overlays.set_alert(report.node_id, f"training stopped here at step "
                             f"{report.global_step + 1}: {report.message}")
        if item is not None:
            self.window.view.ensureVisible(item)
        self._say(f"Training stopped: {report.message}. The last good weights are kept.", 0)

    def _on_finished(self, report) -> None:
        acc = (f", test accuracy {100 * report.test_accuracy:.1f}%"
               if report.test_accuracy is not None else "")
        self._say(f"Training {'stopped' if report.stopped else 'finished'} after "
                  f"{report.steps:,} steps{acc}", 10_000)

    # ------------------------------------------------------------------ weights files
    def export_weights(self) -> Path | None:
        graph_path = self.document.path
        start = (graph_path.with_suffix(".safetensors") if graph_path is not None
                 else Path.cwd() / "weights.safetensors")
        path = export.export_dialog(self.controller, self.window, str(start))
        if path is not None:
            self._say(f"Exported weights to {path.name}")
        return path

    def import_dialog(self) -> bool:
        if self.controller.busy:
            self._say("Stop training before importing weights")
            return False
        start = str(self.document.path.parent if self.document.path else Path.cwd())
        path, _ = QFileDialog.getOpenFileName(self.window, "Import weights", start,
                                              "Weights (*.safetensors *.npz)")
        return bool(path) and self.import_weights(Path(path))

    def import_weights(self, path: Path, quiet_errors: bool = False) -> bool:
        """Load a weights file into the current graph; predictions use it from now on."""
        try:
            if self.controller.dataset is None:  # the inference view needs samples to show
                self.controller.load_dataset(ask=False)  # asked once already, on open
        except LayerloomError:
            pass
        try:
            export.import_weights(self.controller, path)
        except (WeightsError, LayerloomError) as err:
            taken = None if quiet_errors else export.offer_shared(
                self.window, self.controller, self.document.project.graph, path, err)
            if taken:
                self._say(f"Loaded {len(taken)} parameters from {path.name}; the others start fresh")
                self.weights_unsaved = self.save_weights_action.isChecked()
            if taken is not None:
                return bool(taken)
            if quiet_errors:
                self._say(f"{path.name} does not fit this graph, not loaded: {err}", 0)
            else:
                QMessageBox.critical(self.window, "Import weights", str(err))
            return False
        self._say(f"Loaded trained weights from {path.name}")
        beside = self.document.path is not None and path == weights_path(self.document.path)
        self.weights_unsaved = not beside and self.save_weights_action.isChecked()
        return True

    def adopt_weights(self, params: dict) -> None:
        """Weights that came with the graph itself (an imported model): the trained state, not
        yet saved anywhere; raises WeightsError when they do not fit."""
        self.controller.load_weights(params)
        self.weights_unsaved = self.save_weights_action.isChecked()

    def save_weights_beside(self, graph_path: Path) -> Path | None:
        """After Save: write the trained weights to ``<stem>.weights.npz`` when
        ``save_weights_action`` is checked. Without trained weights (none yet, reset,
        or the structure changed) an older file there is removed, so Open never loads weights
        the saved graph did not have. While a run goes the file is left as it is."""
        if not self.save_weights_action.isChecked() or self.controller.busy:
            return None
        target, net = weights_path(graph_path), self.controller.trained_network()
        if net is None:
            target.unlink(missing_ok=True)
            return None
        try:
            save_weights(net.params, target)
        except WeightsError as err:
            QMessageBox.critical(self.window, "Cannot save weights", str(err))
            return None
        self.weights_unsaved = False
        return target

    def shutdown(self) -> None:
        """The window closes: end a run (or a text generation) at once and join its thread."""
        self.compiler.shutdown()
        self.controller.shutdown()
        self.inference.shutdown()


def scrolled(panel: QWidget) -> QScrollArea:
    """``panel`` in a scroll area: a panel with many rows (the Data tab's options for paired
    sequences, the Inference tab's decode and fill-in sections) must not make the window taller
    than a 1280×720 laptop screen. As wide as the panel's form at first; what grows wider later
    (a data set's example grid) scrolls sideways instead of squeezing the canvas."""
    scroll = QScrollArea()
    scroll.setWidget(panel)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setMinimumWidth(panel.minimumSizeHint().width()
                           + scroll.verticalScrollBar().sizeHint().width())
    return scroll
