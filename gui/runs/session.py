"""Wires the run store into a main window: the recorder on the training controller, the Runs dock
beside Plots, and what its buttons open (compare, restore, sweep, learning-rate finder)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from layerloom.engine.graph_diff import GraphDiff
from layerloom.engine.network import Network
from layerloom.engine.project import check_fit
from layerloom.engine.runs import RunStore
from layerloom.engine.serialize import FormatError, atomic_write_bytes, project_to_dict
from layerloom.engine.spec import LayerloomError
from layerloom.gui.runs.dialogs import CompareDialog, SweepDialog
from layerloom.gui.runs.lr_dialog import LRFinderDialog
from layerloom.gui.runs.panel import RunsPanel
from layerloom.gui.runs.recorder import WindowRunLog


class RunsSession(QObject):
    def __init__(self, window, db_path: str | Path | None = None):
        super().__init__(window)
        self.window, self.document = window, window.document
        training = window.training
        self.log = WindowRunLog(training.controller, lambda: self.document.project,
                                lambda: self.document.path, db_path, parent=self)
        self.panel = RunsPanel(self.log.open_store)
        self.dock = window.add_panel(self.panel, Qt.BottomDockWidgetArea, "Runs")
        window.tabifyDockWidget(training.plots_dock, self.dock)
        training.plots_dock.raise_()
        self.dialogs: list = []  # non-modal dialogs stay referenced while open
        self.log.message.connect(lambda text: window.statusBar().showMessage(text, 10000))
        self.log.run_started.connect(self._on_run_started)
        self.log.run_ended.connect(lambda _id: self.panel.refresh(force=True))
        self.panel.compare_requested.connect(self.compare)
        self.panel.restore_requested.connect(lambda run_id: self.restore(run_id))
        self.panel.sweep_requested.connect(self.sweep)
        self.panel.lr_finder_requested.connect(self.find_lr)
        self.panel.import_requested.connect(self.import_dialog)

    @property
    def store(self) -> RunStore | None:
        return self.log.open_store()

    def _on_run_started(self, run_id: int) -> None:
        self.panel.refresh(force=True)
        self.panel.set_ticked(run_id)  # the run being watched is drawn beside the ticked ones

    def _show(self, dialog) -> None:
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [dialog]
        dialog.show()

    # ------------------------------------------------------------------ actions
    def compare(self, a: int, b: int) -> None:
        if self.store is None:
            return
        dialog = CompareDialog(self.store, a, b, self.window)
        dialog.show_on_canvas.connect(lambda run_id, diff: self.restore(run_id, diff, a))
        self._show(dialog)

    def restore(self, run_id: int, diff: GraphDiff | None = None, since: int | None = None) -> bool:
        """Open a run's graph (as an unsaved graph) with the weights it ended with."""
        store = self.store
        if store is None or not self.window.maybe_save():
            return False
        run = store.run(run_id)
        folder = store.path.parent / "restored"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run-{run_id}.json"
        atomic_write_bytes(path, store.graph_json(run_id).encode())
        try:
            if not self.document.open_unsaved(path, None):
                return False
        except FormatError as err:
            QMessageBox.critical(self.window, "Restore run", str(err))
            return False
        weights = Path(run.weights_path) if run.weights_path else None
        loaded = weights is not None and weights.is_file() and \
            self.window.training.import_weights(weights, quiet_errors=True)
        self.window.statusBar().showMessage(
            f"Restored run #{run_id} ({run.name}) as an unsaved graph"
            + (", with the weights it ended with" if loaded else ", without weights"), 10000)
        if diff is not None:
            scene = self.window.view.graph_scene
            for node in sorted(diff.touched_nodes & set(self.document.graph.nodes)):
                changes = "; ".join(f"{w}: {x!r} → {y!r}" for w, x, y in diff.changed.get(node, ()))
                scene.overlays.set_warning(node, "diff", f"changed since run #{since}: "
                                           + (changes or "new or newly wired"))
        return True

    def import_dialog(self) -> int | None:
        folder = QFileDialog.getExistingDirectory(self.window, "Import a run (the project folder, "
                                                  "or its out/ folder)")
        return self.import_folder(Path(folder)) if folder else None

    def import_folder(self, folder: Path) -> int | None:
        """Record a run an exported project trained elsewhere; it is ticked to be compared."""
        from layerloom.engine.runs_import import import_run

        store = self.store
        if store is None:
            return None
        try:
            run_id = import_run(folder, store)
        except LayerloomError as err:
            QMessageBox.critical(self.window, "Import run", str(err))
            return None
        self.panel.refresh(force=True)
        self.panel.set_ticked(run_id)
        self.window.statusBar().showMessage(f"Imported run #{run_id} from {folder}", 8000)
        return run_id

    def sweep(self) -> None:
        store = self.store
        if store is None:
            return
        path = self.document.path
        if path is None or self.document.dirty:  # sweep what is on the canvas, as it is now
            folder = store.path.parent / "sweeps"
            folder.mkdir(parents=True, exist_ok=True)
            stem = path.stem if path else "untitled"
            path = folder / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.json"
            atomic_write_bytes(path, json.dumps(project_to_dict(self.document.project),
                                                indent=1).encode())
        try:  # the data the window reads, as the window may read it (asked about if outside)
            data = self.window.training.controller.data_access.spec()
        except LayerloomError as err:
            QMessageBox.critical(self.window, "Sweep", str(err))
            return
        dialog = SweepDialog(str(path), str(store.path), dict(self.document.project.training),
                             self.window, data=data)
        dialog.sweep_progress.connect(lambda _t: self.panel.refresh())
        self._show(dialog)

    def find_lr(self) -> None:
        dialog = LRFinderDialog(self._lr_job, self.window)
        dialog.apply_rate.connect(self._apply_rate)
        self._show(dialog)

    def _lr_job(self) -> tuple:
        controller = self.window.training.controller
        if controller.busy:
            raise LayerloomError("the learning-rate test waits until the run stops")
        data = controller.load_dataset()
        graph = self.document.project.graph.copy()
        check_fit(graph, data)
        config = controller.config()
        kept = controller.trained_network()
        params = {k: v.copy() for k, v in kept.params.items()} if kept is not None else None
        return Network(graph, seed=config.seed, params=params), data, config

    def _apply_rate(self, rate: float) -> None:
        """Through the training panel's own field: one undoable settings edit, as typing it."""
        self.window.training.training_panel.lr.setValue(rate)
        self.window.statusBar().showMessage(f"Learning rate set to {rate:g} (Ctrl+Z undoes)", 8000)

    def weights_saved(self, path: Path | None) -> None:
        if path is not None:
            self.log.weights_saved(path)

    def shutdown(self) -> None:
        self.panel.timer.stop()
        for dialog in self.dialogs:
            dialog.close()
        self.log.shutdown()
