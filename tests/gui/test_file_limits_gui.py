"""The window and malformed graph files, huge widths, the memory budget and a runaway loss: a
dialog with one line and the open graph untouched; nothing allocated for a graph over budget."""
import json
import tracemalloc
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog

from layerloom.engine import budget as mem
from layerloom.engine.serialize import graph_to_dict

from .test_inspector import select, type_into

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
GOOD = json.loads((SAMPLES / "mlp_spirals.json").read_text())


def text_of(case: str) -> str:
    good = json.dumps(GOOD)
    return {
        "deep nesting": "[" * 100_000 + "]" * 100_000,
        "a 5,000-digit integer": good.replace('"out_features": 64', '"out_features": ' + "9" * 5000, 1),
        "a duplicated key": good.replace('"out_features": 64', '"out_features": 64, "out_features": 3', 1),
        "a shape above int64": good.replace('"shape": [2]', f'"shape": [{2**64}]', 1),
        "an attribute of the wrong type": good.replace('"out_features": 64', '"out_features": "64"', 1),
        "an edge to nowhere": good.replace('"to": ["fc1", "x"]', '"to": ["nobody", "x"]', 1),
        "a cycle": good.replace('"from": ["points", "y"], "to": ["fc1", "x"]',
                                '"from": ["tanh1", "y"], "to": ["fc1", "x"]', 1),
        "not UTF-8": "\udcff",
    }[case]


CASES = ["deep nesting", "a 5,000-digit integer", "a duplicated key", "a shape above int64",
         "an attribute of the wrong type", "an edge to nowhere", "a cycle", "not UTF-8"]


@pytest.mark.parametrize("case", CASES)
def test_every_load_error_is_a_dialog_of_one_line_and_the_graph_stays(mlp, tmp_path, dialogs,
                                                                     case):
    bad = tmp_path / "bad.json"
    bad.write_bytes(text_of(case).encode("utf-8", "surrogateescape"))
    assert text_of(case) != json.dumps(GOOD)  # the case really changed the file
    before, steps = graph_to_dict(mlp.document.graph), mlp.document.stack.count()
    assert not mlp.open_path(bad, ask=False)
    kind, title, text = dialogs.shown[-1]
    assert (kind, title) == ("critical", "Cannot open graph")
    assert "bad.json: " in text and "\n" not in text and len(text) < 400, text
    assert graph_to_dict(mlp.document.graph) == before and mlp.document.stack.count() == steps
    assert set(mlp.view.graph_scene.items_by_id) == {n["id"] for n in before["nodes"]}


def test_devices_and_folders_are_refused_in_a_dialog(window, tmp_path, dialogs):
    for path in ("/dev/zero", tmp_path):
        assert not window.open_path(path, ask=False)
        assert "not a regular file" in dialogs.shown[-1][2]


def test_an_inspector_edit_to_a_huge_width_allocates_nothing(mlp, monkeypatch):
    monkeypatch.setenv(mem.ENV, "4G")  # as on an 8 GB machine
    doc = mlp.document
    assert doc.set_attr("image", "shape", (2000,))
    select(mlp, "fc1")
    tracemalloc.start()
    try:
        type_into(mlp.inspector.editors["out_features"], "1000000")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert doc.graph.nodes["fc1"].attrs["out_features"] == 1_000_000
    assert peak < 50 * 2**20  # the 8 GB weight was never made: sizes come from shapes
    message = ("Dense 'fc1': weight 1,000,000×2,000 = 8.0 GB; training needs about 41.2 GB, "
               "over the memory budget of 4.3 GB")
    assert doc.report.errors["fc1"] == message
    assert mlp.view.graph_scene.items_by_id["fc1"].error == message
    assert mlp.statusBar().currentMessage().startswith(message)
    assert doc.params["fc1"] == 2000 * 1_000_000 + 1_000_000
    assert mlp.params_label.text().startswith(f"{sum(doc.params.values()):,} parameters · 41.2 GB")


def test_the_memory_budget_is_a_setting_of_the_window(mlp, monkeypatch, dialogs, settings):
    monkeypatch.delenv(mem.ENV, raising=False)
    doc = mlp.document
    doc.set_attr("image", "shape", (2000,))
    doc.set_attr("fc1", "out_features", 100_000)  # 0.8 GB of weights: 4 GB to train
    answers = iter([("2G", True), ("lots", True), ("", True)])
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: next(answers))
    mlp.actions_by_name["memory_budget"].trigger()
    assert "over the memory budget of 2.1 GB" in doc.report.errors["fc1"]
    assert settings.value("memory_budget") == "2G"
    mlp.actions_by_name["memory_budget"].trigger()  # a value that cannot be read: one line
    assert dialogs.shown[-1][0] == "critical" and "expected bytes" in dialogs.shown[-1][2]
    assert settings.value("memory_budget") == "2G" and "fc1" in doc.report.errors
    mlp.actions_by_name["memory_budget"].trigger()  # empty: back to the default
    assert mem.memory_budget() == int(mem.physical_memory() * mem.DEFAULT_FRACTION)
    assert ("fc1" in doc.report.errors) == (mem.memory_budget() < doc.report.training_bytes)


def test_a_runaway_loss_is_a_warning_in_the_panel_and_the_status_bar(qtbot, window):
    assert window.open_path(SAMPLES / "mlp_spirals.json", ask=False)
    panel, c = window.training.training_panel, window.training.controller
    panel.lr.setValue(1e6)
    panel.max_steps.setValue(30)
    said = []
    window.statusBar().messageChanged.connect(said.append)
    with qtbot.waitSignal(c.finished, timeout=120_000):
        with qtbot.waitSignal(c.warning, timeout=120_000) as warned:
            qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    assert "over a million times its first value" in warned.args[0].message
    assert panel.status_label.text().startswith("Warning at step ")
    assert "learning rate (1e+06) is probably too high" in panel.status_label.text()
    assert any(m.startswith("Warning at step ") and "over a million" in m for m in said)
