"""Autosave and crash recovery: unsaved edits survive a crash, and only a crash."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox
from shiboken6 import isValid

import layerloom.gui.main
from layerloom.engine import paths
from layerloom.engine.graph import Graph, Node
from layerloom.engine.serialize import Project, load_project, project_to_dict, save_project
from layerloom.gui.autosave import recovery_dir, write_recovery
from layerloom.gui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]

# A crashed session: edit a saved graph, let the real timer write the recovery copy, then die
# with os._exit (no close, no cleanup; its lock file stays behind with a dead pid).
CRASHING_SESSION = """
import os, sys
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
import layerloom.gui.autosave
layerloom.gui.autosave.AUTOSAVE_INTERVAL_MS = 50
from layerloom.gui.main_window import MainWindow
window = MainWindow(QSettings(sys.argv[1], QSettings.IniFormat))
window.open_path(sys.argv[2], ask=False)
window.document.add_node("Dense", (300, 0), {"out_features": 7})
poll = QTimer()
poll.timeout.connect(lambda: window.autosave.file and window.autosave.file.exists() and os._exit(3))
poll.start(20)
QTimer.singleShot(30000, lambda: os._exit(4))
app.exec()
"""


def _open_window(qtbot, settings) -> MainWindow:
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def _saved_graph(path: Path) -> Path:
    graph = Graph()
    graph.add_node(Node("image", "Input", {"shape": (4,)}, (0.0, 0.0)))
    save_project(Project(graph), path)
    return path


def _orphan(settings, original: Path | None, name: str = "net-0badc0de.json") -> Path:
    """A recovery file as a crashed window would have left it: a graph with one extra Dense."""
    graph = Graph()
    graph.add_node(Node("image", "Input", {"shape": (4,)}, (0.0, 0.0)))
    graph.add_node(Node("fc", "Dense", {"out_features": 5}, (300.0, 0.0)))
    folder = recovery_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    write_recovery(folder / name, project_to_dict(Project(graph)), original)
    return folder / name


def test_after_a_crash_the_next_start_offers_the_edits_and_save_writes_the_original(
        qtbot, settings, tmp_path, dialogs):
    graph = _saved_graph(tmp_path / "net.json")
    settings.sync()
    crashed = subprocess.run([sys.executable, "-c", CRASHING_SESSION, settings.fileName(),
                              str(graph)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 3, crashed.stdout + crashed.stderr
    (left,) = recovery_dir(settings).glob("*.json")
    dialogs.answer = QMessageBox.Yes
    window = _open_window(qtbot, settings)
    assert window.offer_recovery()
    (question,) = [text for kind, _, text in dialogs.shown if kind == "question"]
    assert question.startswith("Layerloom closed without saving net.json (last autosaved ")
    assert question.endswith("). Recover it?")
    doc = window.document
    assert doc.graph.nodes["dense1"].attrs["out_features"] == 7
    assert doc.dirty and doc.path == graph and window.windowTitle().startswith("net.json")
    assert left.exists()  # until the person saves or discards
    assert window.save()
    assert not left.exists() and not doc.dirty
    assert "dense1" in load_project(graph).graph.nodes


def test_the_timer_writes_the_project_only_while_dirty_and_only_after_a_change(qtbot, window):
    saver = window.autosave
    saver.timer.setInterval(20)
    qtbot.wait(100)
    assert saver.file is None  # clean: nothing to recover
    window.document.add_node("Dense", (0, 0), {"out_features": 3})
    qtbot.waitUntil(lambda: saver.file is not None)
    assert saver.file.parent == recovery_dir(window.settings)
    data = json.loads(saver.file.read_text())
    assert data["recovery"]["path"] is None and saver.file.name.startswith("untitled-")
    assert data["nodes"][0]["attrs"]["out_features"] == 3
    assert not saver.write_if_changed()  # nothing changed since
    window.document.set_attr("dense1", "out_features", 4)
    assert saver.write_if_changed()
    assert json.loads(saver.file.read_text())["nodes"][0]["attrs"]["out_features"] == 4


@pytest.mark.parametrize("leave", ["save", "new", "open another", "undo to clean", "close"])
def test_a_recovery_file_does_not_outlive_save_new_open_or_a_clean_close(window, tmp_path, leave):
    other = _saved_graph(tmp_path / "other.json")
    window.document.add_node("ReLU", (0, 0))
    assert window.autosave.write_if_changed()
    file = window.autosave.file
    actions = {"save": lambda: window._save_to(tmp_path / "a.json"),
               "new": window.new_graph,  # the question is answered Discard
               "open another": lambda: window.open_path(other),
               "undo to clean": window.document.undo,
               "close": window.close}
    actions[leave]()
    assert not file.exists() and not Path(f"{file}.lock").exists()


def test_a_live_windows_recovery_file_is_not_offered_to_another_window(qtbot, window, dialogs):
    window.document.add_node("ReLU", (0, 0))
    assert window.autosave.write_if_changed()
    dialogs.answer = QMessageBox.No
    second = _open_window(qtbot, window.settings)
    assert not second.offer_recovery()
    assert not dialogs.shown and window.autosave.file.exists()


@pytest.mark.parametrize("answer, kept", [(QMessageBox.No, False), (QMessageBox.Cancel, True)])
def test_no_deletes_the_recovery_file_and_any_other_dismissal_keeps_it(qtbot, settings, dialogs,
                                                                        answer, kept):
    orphan = _orphan(settings, None)
    dialogs.answer = answer
    window = _open_window(qtbot, settings)
    assert not window.offer_recovery()
    assert "saving Untitled (last autosaved" in dialogs.shown[-1][2]
    assert orphan.exists() == kept and not window.document.graph.nodes
    assert not Path(f"{orphan}.lock").exists()


def test_an_untitled_recovery_opens_as_an_unsaved_untitled_graph(qtbot, settings, dialogs):
    orphan = _orphan(settings, None)
    dialogs.answer = QMessageBox.Yes
    window = _open_window(qtbot, settings)
    assert window.offer_recovery()
    assert set(window.document.graph.nodes) == {"image", "fc"}
    assert window.document.dirty and window.document.path is None
    window.document.add_node("ReLU", (0, 0))  # edits go on into the same file
    assert window.autosave.write_if_changed() and window.autosave.file == orphan
    dialogs.answer = QMessageBox.Discard
    assert window.close() and not orphan.exists()


def _start(settings, monkeypatch, during) -> None:
    """``layerloom`` with no file, its window built on the test's private settings; ``during``
    gets the window while the app runs (the app deletes it at its end)."""
    import layerloom.gui.main_window

    def loop(*_):
        (window,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)
                     and isValid(w) and w.settings is settings]
        during(window)
        return 0
    monkeypatch.setattr(layerloom.gui.main_window, "MainWindow", lambda: MainWindow(settings))
    monkeypatch.setattr(QApplication, "exec", loop)  # the checks instead of the loop
    assert layerloom.gui.main.main([]) == 0


def test_corrupt_recovery_files_are_moved_aside_and_named_in_the_status_bar(
        qtbot, settings, monkeypatch, dialogs):
    folder = recovery_dir(settings)
    folder.mkdir(parents=True)
    broken, bare = folder / "net-12345678.json", folder / "old-87654321.json"
    broken.write_text('{"format": "layerloom-graph", "nodes": [')
    bare.write_text(json.dumps({"format": "layerloom-graph", "version": 1, "nodes": []}))
    os.utime(bare, (1e9, 1e9))  # older: the notice names the newest
    seen = []

    def during(window):
        assert not dialogs.shown and window.document.path == paths.DEFAULT_GRAPH
        assert sorted(f.name for f in folder.iterdir()) == [
            "net-12345678.json.corrupt", "old-87654321.json.corrupt"]
        bar = window.statusBar()  # shown after the sample's own "Opened" notice, not under it
        qtbot.waitUntil(lambda: "net-12345678.json" in bar.currentMessage())
        assert "not valid JSON" in bar.currentMessage() and "(and 1 more)" in bar.currentMessage()
        seen.append(window)
    _start(settings, monkeypatch, during)
    assert len(seen) == 1


def test_the_recovered_graph_wins_over_the_sample_at_start(qtbot, settings, tmp_path,
                                                           monkeypatch, dialogs):
    original = tmp_path / "mine.json"
    orphan = _orphan(settings, original)
    dialogs.answer = QMessageBox.Yes
    seen = []

    def during(window):
        assert window.document.path == original  # not the LeNet-5 sample
        assert set(window.document.graph.nodes) == {"image", "fc"} and window.document.dirty
        dialogs.answer = QMessageBox.Discard
        assert window.close() and not orphan.exists()
        seen.append(window)
    _start(settings, monkeypatch, during)
    assert len(seen) == 1


def test_trained_weights_saved_nowhere_survive_a_crash_and_come_back(qtbot, window, settings,
                                                                    tmp_path, dialogs):
    """A graph saved, then trained (weights only in memory), then a crash: the next start
    restores the weights with the graph, unsaved, and Save writes both where they belong."""
    import numpy as np

    from layerloom.engine.network import Network

    graph_file = _saved_graph(tmp_path / "net.json")
    graph = load_project(graph_file).graph
    graph.add_node(Node("fc", "Dense", {"out_features": 3}, (300.0, 0.0)))
    graph.connect(("image", "y"), ("fc", "x"))
    save_project(Project(graph), graph_file)
    assert window.open_path(graph_file, ask=False) and not window.document.dirty
    trained = Network(window.document.graph, seed=5)
    window.training.adopt_weights(trained.params)  # as a finished run leaves them
    saver = window.autosave
    assert saver.write_if_changed()
    copy = saver.file
    assert copy.exists() and (copy.parent / f"{copy.stem}.weights.npz").exists()
    assert not saver.write_if_changed()  # neither the graph nor the weights changed
    saver._lock.unlock()  # the process "dies": its lock goes stale, its files stay

    dialogs.answer = QMessageBox.Yes
    second = _open_window(qtbot, settings)
    assert second.offer_recovery()
    back = second.training.controller.trained_network()
    assert back is not None and second.training.weights_unsaved
    for key, value in trained.params.items():
        np.testing.assert_array_equal(back.params[key], value)
    assert second.document.path == graph_file and second.document.dirty
    assert second.save()
    assert (tmp_path / "net.weights.npz").exists()
    assert not copy.exists() and not (copy.parent / f"{copy.stem}.weights.npz").exists()


def test_saving_the_weights_ends_their_recovery_copy(window, tmp_path):
    from layerloom.engine.network import Network

    graph_file = _saved_graph(tmp_path / "net.json")
    assert window.open_path(graph_file, ask=False)
    window.training.adopt_weights(Network(window.document.graph, seed=1).params)
    saver = window.autosave
    assert saver.write_if_changed()
    copy = saver.file
    assert window.save() and (tmp_path / "net.weights.npz").exists()  # the graph was clean
    assert not saver.write_if_changed()
    assert saver.file is None and not copy.exists()
    assert not (copy.parent / f"{copy.stem}.weights.npz").exists()
