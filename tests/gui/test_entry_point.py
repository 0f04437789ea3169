"""`layerloom [FILE]` opens the window on FILE; subcommands never import Qt."""
import gc
import json
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication
from shiboken6 import isValid

import layerloom.gui.main
from layerloom.gui import gc_guard
from layerloom.gui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "mlp_spirals.json"


def test_a_subcommand_goes_to_the_cli_before_qt_is_imported(tmp_path):
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"format": "layerloom-graph", "version": 1,
                                 "nodes": [{"id": "x", "type": "Input", "attrs": {"shape": [3]}}],
                                 "edges": []}))
    code = ("import sys\nfrom layerloom.gui.main import main\ncode = main(['check', sys.argv[1]])\n"
            "print('QT' if any(m.startswith('PySide6') for m in sys.modules) else 'NO-QT', code)")
    out = subprocess.run([sys.executable, "-c", code, str(graph)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "NO-QT 0", out.stdout + out.stderr


def opened(before) -> list:
    """The main windows open now that are not in ``before`` (earlier tests' may live on)."""
    return [w for w in QApplication.topLevelWidgets()
            if isinstance(w, MainWindow) and isValid(w) and w not in before]


def test_layerloom_file_opens_the_window_on_that_file(qtbot, tmp_path, monkeypatch):
    graph = tmp_path / "net.json"
    graph.write_text(json.dumps({"format": "layerloom-graph", "version": 1,
                                 "nodes": [{"id": "x", "type": "Input", "attrs": {"shape": [3]}},
                                           {"id": "fc", "type": "Dense", "pos": [300, 0]}],
                                 "edges": [{"from": ["x", "y"], "to": ["fc", "x"]}]}))
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path))
    seen = []

    def loop(*_):  # what the running app shows, then return instead of running the loop
        (window,) = opened(before)
        seen.append((window, window.isVisible(), set(window.document.graph.nodes),
                     window.windowTitle(), gc_guard.holding(), gc.isenabled()))
        return 0
    monkeypatch.setattr(QApplication, "exec", loop)
    before = opened(set())
    # an earlier test's window may have closed in the middle of a compile: its hold ends with it
    qtbot.waitUntil(lambda: not gc_guard.holding(), timeout=30_000)
    assert layerloom.gui.main.main([str(graph)]) == 0
    ((window, visible, nodes, title, held, collecting),) = seen
    assert visible and nodes == {"x", "fc"} and title.startswith("net.json")
    # while the app runs, garbage is collected on the UI thread only; at its end the window is
    # gone before the interpreter's teardown, and collection is back as it was
    assert held and not collecting
    assert not isValid(window) and not gc_guard.holding() and gc.isenabled()


def test_an_app_ended_without_the_windows_close_stops_its_run_first(qtbot, tmp_path,
                                                                     monkeypatch):
    """``app.exit`` (the installed app's smoke test) ends the loop with the window still open
    and a run perhaps still going: its thread is stopped and joined before the window goes."""
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path))
    seen = []

    def loop(*_):
        (window,) = opened(before)
        window.training.training_panel.epochs.setValue(1000)
        controller = window.training.controller
        with qtbot.waitSignal(controller.steps, timeout=600_000):
            qtbot.mouseClick(window.training.training_panel.train_button, Qt.LeftButton)
        seen.append((controller, controller.thread))
        return 0
    monkeypatch.setattr(QApplication, "exec", loop)
    before = opened(set())
    assert layerloom.gui.main.main([str(SAMPLE)]) == 0
    ((controller, thread),) = seen
    assert thread is not None  # it was running when the loop ended
    assert controller.state == "idle" and controller.thread is None and not isValid(thread)
