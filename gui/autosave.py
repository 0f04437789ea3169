"""Autosave and crash recovery: a recovery copy of the open project while it has unsaved edits,
and of the trained weights while they are saved nowhere (``<copy>.weights.npz`` beside it).

While the document is dirty a timer writes the project, in the normal file format plus one
``"recovery"`` key (the graph file it belongs to and when it was written), to a per-user folder.
Becoming clean (Save, Open, New, an undo back to the saved state) or a clean close deletes it, so
a recovery file only outlives a crash. At the next start ``offer_recovery`` finds it.

Each window names its files with a random session token, so two windows or two instances never
write the same file, and holds a ``QLockFile`` beside each: a file whose lock belongs to a live
process is another window's work in progress, not a crash, and is never offered or deleted.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QLockFile, QObject, QSettings, QStandardPaths, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from layerloom.engine.export.weights import load_weights, save_weights, weights_path
from layerloom.engine.network import WeightsError
from layerloom.engine.serialize import (FormatError, atomic_write_bytes, load_project, parse_text,
                                        project_to_dict, read_text)
from layerloom.gui.document import Document

AUTOSAVE_INTERVAL_MS = 30_000  # read when an Autosaver is built: tests patch it shorter
RECOVERY_KEY = "recovery"  # the extra top-level key; the graph loader ignores unknown keys


def recovery_dir(settings: QSettings) -> Path:
    """Beside the settings file when the settings are a private ini file (every test builds its
    window on one, so no test can touch the real home), else the per-user app-data folder.

    Derived rather than read from a settings key: a key would have to be set by every caller, and
    forgetting it would autosave into (and at start delete from) the real home."""
    if settings.format() == QSettings.IniFormat:
        return Path(settings.fileName()).parent / "recovery"
    return Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)) / "recovery"


@dataclass(frozen=True)
class Recovery:
    """One recovery file as read back: where it is, the graph file it belongs to, when written."""

    file: Path
    original: Path | None  # None: the graph was Untitled
    written: datetime

    def question(self) -> str:
        name = self.original.name if self.original else "Untitled"
        today = self.written.date() == datetime.now().astimezone().date()
        when = f"{self.written:%H:%M}" if today else f"{self.written:%Y-%m-%d %H:%M}"
        return f"Layerloom closed without saving {name} (last autosaved {when}). Recover it?"


def write_recovery(file: Path, data: dict, original: Path | None) -> None:
    """The project dict (``project_to_dict``, as Save writes it) plus where it came from, written
    atomically so a crash mid-write leaves the previous copy whole."""
    meta = {"path": str(original) if original is not None else None,
            "written": datetime.now().astimezone().isoformat(timespec="seconds")}
    text = json.dumps({**data, RECOVERY_KEY: meta}, indent=1)
    atomic_write_bytes(file, (text + "\n").encode("utf-8"))


def read_recovery(file: Path) -> Recovery:
    """Check the project with the normal loader, then read the recovery key; FormatError names the
    file and the problem in one line."""
    load_project(file)  # the same checks as File > Open; raises FormatError
    try:
        meta = parse_text(read_text(file)).get(RECOVERY_KEY)
    except FormatError as err:  # changed on disk since the check above
        raise FormatError(f"{file.name}: cannot read ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("path"), (str, type(None))):
        raise FormatError(f"{file.name}: {RECOVERY_KEY}: must be an object with a path")
    try:
        written = datetime.fromisoformat(meta.get("written"))
    except (TypeError, ValueError):
        raise FormatError(f"{file.name}: {RECOVERY_KEY}.written: must be an ISO date and time, "
                          f"got {meta.get('written')!r}") from None
    original = Path(meta["path"]) if meta["path"] is not None else None
    return Recovery(file, original, written.astimezone())


def _lock_beside(file: Path) -> QLockFile | None:
    """Take the lock of ``file``; None when a live process (this one included) holds it."""
    lock = QLockFile(str(file) + ".lock")
    lock.setStaleLockTime(0)  # a window holds its lock for hours: only a dead owner makes it stale
    return lock if lock.tryLock(0) else None


class Autosaver(QObject):
    """Writes the document's recovery file on a timer while it is dirty; owned by the window."""

    message = Signal(str)  # one line for the status bar: a failed write, a damaged file

    def __init__(self, document: Document, folder: Path, interval_ms: int | None = None,
                 parent: QObject | None = None,
                 weights: Callable[[], tuple | None] | None = None,
                 restore: Callable[[dict], None] | None = None):
        """``weights()``: (a token that changes with them, the parameters) of trained weights
        saved nowhere, else None; ``restore(params)`` takes them back after a crash."""
        super().__init__(parent)
        self.document, self.folder = document, Path(folder)
        self.weights, self.restore = weights, restore
        self._token = None  # the weights' token as last written
        self.session = uuid.uuid4().hex[:8]  # not the pid: a pid comes back after a reboot
        self.file: Path | None = None  # the recovery file this window owns, if any
        self._lock: QLockFile | None = None
        self._text: str | None = None  # the project as last written, to skip unchanged ticks
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms or AUTOSAVE_INTERVAL_MS)
        self.timer.timeout.connect(self.write_if_changed)
        self.timer.start()
        document.dirty_changed.connect(self._on_dirty)

    def _on_dirty(self, dirty: bool) -> None:
        """Clean again (Save, Open, New, undo to the saved state): the copy is not needed."""
        if not dirty:
            self.discard()

    def write_if_changed(self) -> bool:
        """The timer's slot: write when the document is dirty, or its trained weights are saved
        nowhere, and something differs from the last copy."""
        weights = self.weights() if self.weights is not None else None
        if not self.document.dirty and weights is None:
            if self.file is not None:  # the weights were saved (or dropped) since
                self.discard()
            return False
        data = project_to_dict(self.document.project)
        text = json.dumps(data, indent=1)  # compared as text: sections may hold nested dicts
        token = weights[0] if weights is not None else None
        if text == self._text and token == self._token:
            return False
        file, lock = self.file, self._lock
        if file is None:
            stem = self.document.path.stem if self.document.path else "untitled"
            file = self.folder / f"{stem}-{self.session}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if lock is None:
                lock = _lock_beside(file)
            if lock is None:
                raise OSError(f"cannot lock {file}")
            write_recovery(file, data, self.document.path)
            if weights is not None and token != self._token:
                save_weights(weights[1], weights_path(file))
            elif weights is None:
                weights_path(file).unlink(missing_ok=True)
        except (OSError, WeightsError) as err:
            if lock is not None and lock is not self._lock:
                lock.unlock()
            self.message.emit(f"Autosave failed: {err}")
            return False
        self.file, self._lock, self._text, self._token = file, lock, text, token
        return True

    def discard(self) -> None:
        """Delete this window's recovery file and release its lock."""
        if self.file is not None:
            _remove(self.file, self.message.emit)
            _remove(weights_path(self.file), self.message.emit)
            self._lock.unlock()
        self.file, self._lock, self._text, self._token = None, None, None, None

    # ------------------------------------------------------------------ recovery at start
    def orphans(self) -> list[Path]:
        """Every recovery file in the folder but this window's own, newest first (live or not:
        the lock tells, in ``offer_recovery``)."""
        if not self.folder.is_dir():
            return []
        files = [f for f in self.folder.glob("*.json") if f != self.file]
        return sorted(files, key=_mtime, reverse=True)

    def offer_recovery(self, parent: QWidget) -> bool:
        """Ask about each graph a crashed session left unsaved, newest first, until one is
        recovered (it becomes this window's recovery file) or none is left. Only an explicit No
        deletes a file; a damaged one is moved aside as ``*.corrupt``. True when one was
        recovered."""
        damaged: list[str] = []
        recovered = False
        for file in self.orphans():
            lock = _lock_beside(file)
            if lock is None:
                continue  # another window's work in progress
            try:  # exists: another start may have just declined it
                recovered = file.exists() and self._offer(parent, read_recovery(file), lock)
            except FormatError as err:
                damaged.append(self._move_aside(file, str(err)))
            if recovered:
                break
            lock.unlock()
        if damaged:  # after the questions: a notice posted during one would be covered at start
            more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
            self.message.emit(damaged[0] + more)
        return recovered

    def _offer(self, parent: QWidget, found: Recovery, lock: QLockFile) -> bool:
        """Ask about one file: Yes opens it, No deletes it, anything else leaves it for later."""
        answer = QMessageBox.question(parent, "Recover unsaved changes", found.question(),
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        if answer == QMessageBox.No:
            _remove(found.file, self.message.emit)
            _remove(weights_path(found.file), self.message.emit)
        return answer == QMessageBox.Yes and self._adopt(found, lock)

    def _adopt(self, found: Recovery, lock: QLockFile) -> bool:
        """Open the recovered project as an unsaved document of its original file: Save writes
        there, and the recovery file stays until this document is saved or discarded."""
        doc = self.document
        if not doc.open_unsaved(found.file, found.original):  # FormatError; refused if locked
            return False
        self.file, self._lock = found.file, lock
        self._text = json.dumps(project_to_dict(doc.project), indent=1)
        saved = weights_path(found.file)
        if saved.exists() and self.restore is not None:
            try:
                self.restore(load_weights(saved))
            except WeightsError as err:
                self.message.emit(f"The recovered graph's trained weights were not restored: {err}")
        return True  # no "Recovered" notice: it would hide a damaged-file one; the title says it

    def _move_aside(self, file: Path, problem: str) -> str:
        """Keep a damaged file for a person to look at, out of the way of the next start; returns
        the one-line notice."""
        aside = file.with_name(file.name + ".corrupt")
        try:
            file.replace(aside)
            if weights_path(file).exists():  # kept too: the weights may well be whole
                weights_path(file).replace(weights_path(file).with_name(
                    weights_path(file).name + ".corrupt"))
        except OSError as err:
            return f"Damaged recovery file {file}: {problem}; cannot move it aside: {err}"
        problem = problem.removeprefix(f"{file}: ").removeprefix(f"{file.name}: ")
        return f"Damaged recovery file {file.name} moved aside to {aside.name}: {problem}"


def _mtime(file: Path) -> float:
    try:
        return file.stat().st_mtime
    except OSError:  # deleted meanwhile by another window's start
        return 0.0


def _remove(file: Path, report: Callable[[str], None]) -> None:
    try:
        file.unlink(missing_ok=True)
    except OSError as err:
        report(f"Cannot delete recovery file {file}: {err.strerror or err}")
