"""Records the window's training runs in the run store, as ``layerloom train`` records its own.

It listens to the training controller's signals on the UI thread (where the reports already
arrive, batched) and feeds the engine's ``RunRecorder``: one writer for CLI and window, so a run
looks the same in the store whichever started it. A store that cannot open is said once in the
status line and training goes on unrecorded.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from layerloom.engine.objective import DATA_SPEC
from layerloom.engine.run_recorder import RunRecorder, open_store_or_warn
from layerloom.engine.runs import RunMeta, RunStore
from layerloom.engine.serialize import Project, project_to_dict
from layerloom.engine.spec import LayerloomError
from layerloom.engine.threads import get_threads


class WindowRunLog(QObject):
    run_started = Signal(int)  # run id
    run_ended = Signal(int)  # run id (finished, stopped, diverged or failed)
    message = Signal(str)  # a one-line notice for the status bar

    def __init__(self, controller, project: Callable[[], Project],
                 path: Callable[[], Path | None], db_path: str | Path | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._project, self._path, self.db_path = project, path, db_path
        self._controller = controller
        self.store: RunStore | None = None
        self.recorder: RunRecorder | None = None
        self.last_run_id: int | None = None
        self._warned = False
        controller.started.connect(self._on_started)
        controller.steps.connect(self._on_reports)
        controller.epoch.connect(lambda r: self._on_reports([r]))
        controller.finished.connect(lambda r: self._end_with(r))
        controller.diverged.connect(lambda r: self._end_with(r))
        controller.failed.connect(lambda text: self._finish("failed", text))

    def open_store(self) -> RunStore | None:
        if self.store is None:
            self.store = open_store_or_warn(self.db_path, self._warn)
        return self.store

    def _warn(self, text: str) -> None:
        if not self._warned:
            self._warned = True
            self.message.emit(text)

    def _on_started(self, info) -> None:
        store = self.open_store()
        if store is None:
            return
        self._finish("stopped", "a new run started")  # never two open runs
        project, path = self._project(), self._path()
        meta = RunMeta(name=path.stem if path else "untitled",
                       graph_json=json.dumps(project_to_dict(project), sort_keys=True),
                       settings=info.config.to_dict(), source="window",
                       graph_path=str(path) if path else None,
                       data_spec=(str(project.data.get("spec", "bundled")) if info.dataset
                                  is not None else DATA_SPEC),  # a data-free run: none
                       seed=info.config.seed, threads=get_threads())
        self.recorder = RunRecorder(store, meta)
        self.last_run_id = self.recorder.run_id
        self.run_started.emit(self.recorder.run_id)

    def _on_reports(self, reports: list) -> None:
        if self.recorder is not None:
            for report in reports:
                self.recorder.consume(report)

    def _end_with(self, report) -> None:
        if self.recorder is not None:
            self.recorder.consume(report)
            self._closed()

    def _finish(self, status: str, reason: str) -> None:
        if self.recorder is not None:
            self.recorder.finish(status, reason)
            self._closed()

    def _closed(self) -> None:
        run_id, self.recorder = self.recorder.run_id, None
        net = self._controller.trained_network()
        if net is not None and self.store is not None:  # Restore reopens the run as it ended
            try:
                self.store.keep_weights(run_id, net.params)
            except (OSError, LayerloomError) as err:
                self.message.emit(f"run #{run_id}: its weights could not be kept ({err})")
        self.run_ended.emit(run_id)

    def weights_saved(self, path: Path) -> None:
        """The last run's weights were written (Save with weights, Export Weights)."""
        if self.store is not None and self.last_run_id is not None:
            self.store.set_weights_path(self.last_run_id, path)

    def shutdown(self) -> None:
        """The window closes: a run still open ends as stopped, and the store closes."""
        self._finish("stopped", "the window closed during the run")
        if self.store is not None:
            self.store.close()
            self.store = None
