"""The Runs dock through the real window: window runs are recorded, runs overlay, compare, restore,
delete with undo, filter; the learning-rate finder and a sweep from the window."""
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidgetSelectionRange

from layerloom.engine.cli import main as cli
from layerloom.engine.export.weights import load_weights
from layerloom.engine.runs import RunStore
from tests.gui.test_window_training import open_sample, press_train

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SPIRALS = SAMPLES / "mlp_spirals.json"

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture
def db(monkeypatch, tmp_path):
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("LAYERLOOM_RUNS_DB", str(path))
    return path


def cli_runs(db, *lrs):
    for lr in lrs:
        assert cli(["train", str(SPIRALS), "--data", "spirals?n=200", "--epochs", "2",
                    "--lr", str(lr), "--runs-db", str(db)]) == 0


def row_texts(panel, column):
    t = panel.table
    return [t.item(r, column).text() for r in range(t.rowCount()) if not t.isRowHidden(r)]


def select_rows(panel, run_ids):
    t = panel.table
    t.clearSelection()
    for r in range(t.rowCount()):
        if t.item(r, 1).data(Qt.UserRole) in run_ids:
            t.setRangeSelected(QTableWidgetSelectionRange(r, 0, r, t.columnCount() - 1), True)


def test_a_window_run_is_recorded_and_drawn_with_its_weights_kept(db, qtbot, window):
    assert window.runs.dock in window.tabifiedDockWidgets(window.training.plots_dock)
    open_sample(window, "mlp_spirals.json", epochs=2)
    press_train(qtbot, window)
    panel = window.runs.panel
    (run,) = RunStore(db).runs()
    assert (run.source, run.status, run.name) == ("window", "finished", "mlp_spirals")
    assert run.graph_path == str(SAMPLES / "mlp_spirals.json") and run.steps > 0
    kept = load_weights(run.weights_path)
    net = window.training.controller.trained_network()
    assert all(np.array_equal(kept[k], v) for k, v in net.params.items())
    assert row_texts(panel, 9) == ["finished"] and panel.ticked_ids() == [run.id]
    curve, _marks = panel.curves.curves[run.id]
    assert len(curve.getData()[0]) == run.steps


def test_three_ticked_runs_draw_three_curves_and_the_filter_narrows_the_table(db, qtbot, window):
    cli_runs(db, 0.01, 0.003, 0.03)
    panel = window.runs.panel
    panel.refresh(force=True)
    assert len(row_texts(panel, 1)) == 3
    for run_id in (1, 2, 3):
        panel.set_ticked(run_id)
    assert sorted(panel.curves.curves) == [1, 2, 3]
    assert len(panel.curves.legend.items) == 3
    panel.filter.setText("0.003")
    assert row_texts(panel, 1) == ["2"]
    panel.filter.clear()
    assert len(row_texts(panel, 1)) == 3


def test_compare_names_the_difference_and_marks_the_changed_nodes_on_the_canvas(
        db, qtbot, window, tmp_path):
    cli_runs(db, 0.01)
    wider = tmp_path / "wider.json"
    wider.write_text(SPIRALS.read_text().replace('"out_features": 64}, "pos": [180',
                                                 '"out_features": 32}, "pos": [180'))
    assert cli(["train", str(wider), "--data", "spirals?n=200", "--epochs", "1",
                "--runs-db", str(db)]) == 0
    window.runs.panel.refresh(force=True)
    select_rows(window.runs.panel, [1, 2])
    assert window.runs.panel.buttons["Compare"].isEnabled()
    window.runs.panel.buttons["Compare"].click()
    dialog = window.runs.dialogs[-1]
    text = dialog.text.toPlainText()
    assert "graph: node fc1: attrs.out_features 64 -> 32" in text
    assert "training.epochs: 2 → 1" in text
    dialog.open_button.click()
    scene = window.view.graph_scene
    assert window.document.graph.nodes["fc1"].attrs["out_features"] == 32
    warned = {n for n, item in scene.items_by_id.items() if "diff" in item.warnings}
    assert warned == {"fc1"}


def test_restore_opens_the_run_graph_with_the_weights_it_ended_with(db, qtbot, window):
    cli_runs(db, 0.01)
    panel = window.runs.panel
    panel.refresh(force=True)
    select_rows(panel, [1])
    panel.buttons["Restore"].click()
    assert window.document.path is None and window.document.dirty
    assert set(window.document.graph.nodes) == {"points", "fc1", "tanh1", "fc2", "tanh2", "fc3",
                                                "loss", "label"}
    kept = load_weights(RunStore(db).run(1).weights_path)
    net = window.training.controller.trained_network()
    assert all(np.array_equal(kept[k], v) for k, v in net.params.items())


def test_rename_tag_and_delete_with_undo(db, qtbot, window):
    cli_runs(db, 0.01, 0.003)
    panel = window.runs.panel
    panel.refresh(force=True)
    assert row_texts(panel, 1) == ["2", "1"]
    panel.table.item(1, 2).setText("baseline")  # as typing in run 1's cells
    panel.table.item(1, 10).setText("keep")
    assert RunStore(db).run(1).name == "baseline" and RunStore(db).run(1).tags == "keep"
    select_rows(panel, [2])
    panel.buttons["Delete"].click()
    assert row_texts(panel, 1) == ["1"] and panel.buttons["Undo delete"].isEnabled()
    panel.buttons["Undo delete"].click()
    assert row_texts(panel, 1) == ["2", "1"]  # newest first


def test_the_lr_finder_suggests_a_rate_that_one_click_applies_and_undo_reverts(db, qtbot, window):
    open_sample(window, "mlp_spirals.json")
    window.runs.panel.buttons["Find LR…"].click()
    dialog = window.runs.dialogs[-1]
    dialog.steps_box.setValue(60)
    dialog.end_box.setValue(3.0)
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.thread is None, timeout=120_000)
    assert dialog.result is not None and dialog.result.suggestion is not None
    assert dialog.use_button.isEnabled()
    panel = window.training.training_panel
    before = panel.lr.value()
    dialog.use_button.click()
    assert panel.lr.value() == pytest.approx(float(f"{dialog.result.suggestion:.3g}"), rel=1e-3)
    assert window.document.project.training["lr"] == pytest.approx(panel.lr.value())
    window.document.stack.undo()
    assert panel.lr.value() == pytest.approx(before)
    dialog.close()


def test_a_sweep_from_the_window_records_each_combination(db, qtbot, window, tmp_path):
    open_sample(window, "mlp_spirals.json", epochs=1)
    window.runs.panel.buttons["Sweep…"].click()
    dialog = window.runs.dialogs[-1]
    dialog.fields["lr"].setText("0.01, 0.03")
    dialog.fields["batch_size"].setText("32")
    with qtbot.waitSignal(dialog.process.finished, timeout=300_000) as done:
        dialog.start_button.click()
    assert done.args[0] == 0, dialog.status.text()
    runs = RunStore(db).runs()
    assert sorted(r.settings["lr"] for r in runs) == [0.01, 0.03]
    assert len({r.sweep_id for r in runs}) == 1 and dialog.sweep_id == runs[0].sweep_id
    panel = window.runs.panel
    panel.refresh(force=True)
    assert panel.curves.sweep_box.currentText() == dialog.sweep_id
    assert panel.curves.setting_box.currentText() == "lr"
    assert len(panel.curves.sweep_points) == 2
