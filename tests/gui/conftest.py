"""GUI test fixtures: a main window with private settings, and modal dialogs that never block."""
import gc
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QSettings
from PySide6.QtWidgets import QMessageBox


class Dialogs:
    """Records every message box; ``answer`` is what a question returns (Discard by default)."""

    def __init__(self):
        self.shown: list[tuple[str, str, str]] = []
        self.answer = QMessageBox.Discard

    def question(self, parent, title, text, *args, **kwargs):
        self.shown.append(("question", title, text))
        return self.answer

    def critical(self, parent, title, text, *args, **kwargs):
        self.shown.append(("critical", title, text))
        return QMessageBox.Ok


GUI = Path(__file__).resolve().parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Windows pytest-qt closed at a GUI test's end (``deleteLater``) deleted once the test has
    let go of them, not at the next event loop: no loop runs between tests, so they piled up and
    the first wait of a later test deleted them all (a window trained after the 114 of
    ``test_inspector`` waited 24-54 s on their deletion, 4-5 s alone). Python's garbage first:
    a window deleted while a cycle of Python objects still held parts of it crashed a later test
    (a painter's restore in a scene, 4 runs in 4; the hook applies to every item, hence the
    path). What outlives the first GUI test's start is frozen out of the collections, which
    otherwise took 0.15 s a test."""
    gui = GUI in item.path.parents
    if gui and not gc.get_freeze_count():
        gc.collect()
        gc.freeze()
    yield
    if gui and QCoreApplication.instance() is not None:
        gc.collect()
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)


@pytest.fixture(autouse=True)
def dialogs(monkeypatch):
    d = Dialogs()
    monkeypatch.setattr(QMessageBox, "question", d.question)
    monkeypatch.setattr(QMessageBox, "critical", d.critical)
    monkeypatch.setattr(QMessageBox, "warning", d.critical)
    yield d
    # A test that leaves a Yes, No or Cancel answer makes its window refuse pytest-qt's close:
    # the window, its compiler and its timers then lived on into later tests (a compile it
    # started there held collection through test_gc_guard). Close such windows here.
    # No garbage collected while Qt's list is walked: a collection there can delete a window
    # an earlier test left in a reference cycle while the list still names it (one full-suite
    # run here crashed in this loop, in Qt, after the file-limit tests). Collecting first cost
    # ~0.25 s a test.
    from PySide6.QtWidgets import QApplication
    from shiboken6 import isValid

    d.answer = QMessageBox.Discard
    gc.disable()
    try:
        for w in QApplication.topLevelWidgets():  # by class name: a test may patch the class
            if isValid(w) and w.metaObject().className() == "MainWindow" and w.isVisible():
                assert w.close()
    finally:
        gc.enable()


@pytest.fixture(autouse=True)
def no_compile_left_running(qtbot):
    """A window closed in the middle of a kernel compile leaves that daemon thread running (it
    cannot be interrupted); on a cold numba cache it ran into the next test and was counted as
    that test's compile and garbage-collection hold. Each test starts once it has ended."""
    from layerloom.gui.training.compiler import THREAD_NAME

    qtbot.waitUntil(lambda: not any(t.name == THREAD_NAME and t.is_alive()
                                    for t in threading.enumerate()), timeout=600_000)


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    from layerloom.gui.main_window import MainWindow

    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    return w


def build(document, nodes, edges):
    """Add nodes [(id, type, attrs, pos)] and edges [((src, port), (dst, port))] via the
    Document, renaming each new node to its wanted id; returns the document."""
    for node_id, type_id, attrs, pos in nodes:
        new = document.add_node(type_id, pos, attrs)
        assert new is not None and document.rename(new, node_id)
    for src, dst in edges:
        assert document.connect(src, dst), (src, dst)
    return document


MLP_NODES = [("image", "Input", {"shape": (1, 28, 28)}, (0, 0)),
             ("fc1", "Dense", {"out_features": 32}, (250, 0)),
             ("act1", "ReLU", {}, (500, 0)),
             ("fc2", "Dense", {"out_features": 10}, (750, 0)),
             ("label", "Label", {}, (750, 150)),
             ("loss", "CrossEntropyLoss", {}, (1000, 50))]
MLP_EDGES = [(("image", "y"), ("fc1", "x")), (("fc1", "y"), ("act1", "x")),
             (("act1", "y"), ("fc2", "x")), (("fc2", "y"), ("loss", "input")),
             (("label", "y"), ("loss", "target"))]


@pytest.fixture
def mlp(window):
    """The window holding a small classifier whose first Dense is fed an image (a shape error)."""
    build(window.document, MLP_NODES, MLP_EDGES)
    window.view.zoom_to_fit()
    return window


@pytest.fixture(autouse=True)
def empty_clipboard():
    """Copy tests leave mime data on the system clipboard; Qt deletes it at exit after Python
    objects it refers to are gone, which crashed the process after every test passed."""
    yield
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is not None:
        QApplication.clipboard().clear()
