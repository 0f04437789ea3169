"""Analyze in the window: problems show on their nodes and in one list before any training, and
errors keep Train from starting."""
from pathlib import Path

from PySide6.QtCore import Qt

from layerloom.engine.analyze import ERROR, WARNING
from layerloom.engine.graph import Node

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def rows(panel) -> list[str]:
    return [panel.list.item(i).text() for i in range(panel.list.count())]


def test_a_wrong_head_size_shows_an_error_badge_and_train_refuses(qtbot, window):
    assert window.open_path(SAMPLES / "mlp_spirals.json", ask=False)
    doc, t, scene = window.document, window.training, window.view.graph_scene
    assert not t.analyzer.analysis.findings and t.problems.list.count() == 0
    doc.set_attr("fc3", "out_features", 64)  # wider than spirals' 3 classes
    fc3 = scene.items_by_id["fc3"]
    assert fc3.blocked and "data" in fc3.severe
    assert "64 class scores" in fc3.toolTip() and "⛔" in fc3.toolTip()
    assert any(r.startswith("fc3: ") and "3 classes" in r for r in rows(t.problems))
    assert "1 error" in window.problems_label.text()
    c = t.controller
    with qtbot.waitSignal(c.refused, timeout=5000):
        qtbot.mouseClick(t.training_panel.train_button, Qt.LeftButton)
    assert c.thread is None and c.state == "idle"
    assert "64 class scores" in t.training_panel.status_label.text()
    assert t.problems_dock.isVisible() and not t.problems_dock.visibleRegion().isEmpty()
    doc.undo()
    assert not fc3.blocked and t.problems.list.count() == 0


def test_clicking_a_problem_selects_its_node(qtbot, window):
    assert window.open_path(SAMPLES / "mlp_spirals.json", ask=False)
    doc, t = window.document, window.training
    extra = doc.add_node("Dense", (900, 300), {"out_features": 5})
    assert doc.connect(("tanh2", "y"), (extra, "x"))
    finding = next(f for f in t.analyzer.analysis.findings if f.node_id == extra)
    assert finding.severity == WARNING and "leads to no loss" in finding.message
    assert window.document.total_params == sum(
        n for k, n in doc.params.items() if k != extra)  # left out of the total
    assert "parameters are not trained" in window.view.graph_scene.items_by_id[extra].toolTip()
    window.view.graph_scene.clearSelection()
    item = t.problems.list.item(0)
    t.problems.list.itemClicked.emit(item)
    assert window.view.graph_scene.selected_node_ids() == [extra]


def test_a_warning_does_not_keep_train_from_starting(qtbot, window):
    assert window.open_path(SAMPLES / "mlp_spirals.json", ask=False)
    t, panel = window.training, window.training.training_panel
    panel.lr.setValue(5.0)  # Adam at 5: far above its usual range
    (warning,) = t.analyzer.analysis.findings
    assert warning.severity == WARNING and "far above" in warning.message
    assert t.problems.list.count() == 1
    panel.max_steps.setValue(2)
    with qtbot.waitSignal(t.controller.finished, timeout=60_000):
        qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    window.document.undo()  # max_steps
    window.document.undo()  # lr
    assert t.problems.list.count() == 0 and all(
        f.severity != ERROR for f in t.analyzer.analysis.findings)
