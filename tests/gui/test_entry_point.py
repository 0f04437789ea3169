"""`layerloom [FILE]` opens the window on FILE; subcommands never import Qt."""
import json
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

import layerloom.gui.main
from layerloom.gui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]


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


def test_layerloom_file_opens_the_window_on_that_file(qtbot, tmp_path, monkeypatch):
    graph = tmp_path / "net.json"
    graph.write_text(json.dumps({"format": "layerloom-graph", "version": 1,
                                 "nodes": [{"id": "x", "type": "Input", "attrs": {"shape": [3]}},
                                           {"id": "fc", "type": "Dense", "pos": [300, 0]}],
                                 "edges": [{"from": ["x", "y"], "to": ["fc", "x"]}]}))
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path))
    monkeypatch.setattr(QApplication, "exec", lambda *a: 0)  # return instead of running the loop
    assert layerloom.gui.main.main([str(graph)]) == 0
    (window,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)
                 and w.document.path == graph]
    qtbot.addWidget(window)
    assert window.isVisible() and set(window.document.graph.nodes) == {"x", "fc"}
    assert window.windowTitle().startswith("net.json")
