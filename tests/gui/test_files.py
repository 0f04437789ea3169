"""Files: save/open round trip, unsaved-changes prompts, a corrupt file changes nothing."""
import json
import os

import pytest
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from layerloom.engine import paths
from layerloom.engine.serialize import graph_to_dict, load_project, project_to_dict
from layerloom.gui.layout import is_cramped
from layerloom.gui.menus import fill_samples


@pytest.fixture
def file_dialogs(monkeypatch):
    chosen = {}
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (chosen["save"], ""))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (chosen["open"], ""))
    return chosen


def test_save_then_open_gives_back_the_same_project(mlp, tmp_path, file_dialogs):
    file_dialogs["save"] = str(tmp_path / "net")  # the .json suffix is added
    mlp.document.project.training = {"lr": 0.01}
    mlp.actions_by_name["save"].trigger()
    saved = tmp_path / "net.json"
    assert saved.exists() and not mlp.document.dirty
    expected = project_to_dict(mlp.document.project)
    assert project_to_dict(load_project(saved)) == expected
    mlp.actions_by_name["new"].trigger()
    assert not mlp.document.graph.nodes
    file_dialogs["open"] = str(saved)
    mlp.actions_by_name["open"].trigger()
    assert project_to_dict(mlp.document.project) == expected
    assert mlp.document.path == saved and not mlp.document.dirty
    assert mlp.recent_files()[0] == str(saved.resolve())


def test_a_corrupt_file_shows_one_line_and_leaves_the_open_graph_intact(mlp, tmp_path, dialogs):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "layerloom-graph", "version": 1, "nodes": [{"id": 3}]}')
    before, steps = graph_to_dict(mlp.document.graph), mlp.document.stack.count()
    assert not mlp.open_path(bad)
    kind, _, text = dialogs.shown[-1]
    assert kind == "critical" and "nodes[0].id" in text and "\n" not in text
    assert graph_to_dict(mlp.document.graph) == before and mlp.document.stack.count() == steps
    assert set(mlp.view.graph_scene.items_by_id) == set(before_ids(before))
    mlp.document.undo()  # the history still belongs to the open graph
    assert graph_to_dict(mlp.document.graph) != before


def before_ids(data):
    return [n["id"] for n in data["nodes"]]


def test_not_json_at_all_is_refused_too(window, tmp_path, dialogs):
    bad = tmp_path / "noise.json"
    bad.write_bytes(os.urandom(64))
    assert not window.open_path(bad)
    assert dialogs.shown[-1][0] == "critical"


def test_a_failed_save_says_so_and_keeps_the_changes(mlp, tmp_path, dialogs):
    assert not mlp._save_to(tmp_path / "missing-folder" / "net.json")
    assert dialogs.shown[-1][0] == "critical" and mlp.document.dirty


def test_the_title_marks_unsaved_changes(window, tmp_path):
    assert window.windowTitle().startswith("Untitled[*]") and not window.isWindowModified()
    window.document.add_node("ReLU", (0, 0))
    assert window.isWindowModified()
    window._save_to(tmp_path / "a.json")
    assert window.windowTitle().startswith("a.json[*]") and not window.isWindowModified()
    window.document.undo()
    assert window.isWindowModified()


def test_closing_with_unsaved_changes_asks_and_cancel_keeps_the_window(mlp, dialogs):
    dialogs.answer = QMessageBox.Cancel
    assert not mlp.close()
    assert mlp.isVisible() and dialogs.shown[-1][0] == "question"
    dialogs.answer = QMessageBox.Discard
    assert mlp.close()


def test_answering_save_in_the_prompt_saves_first(mlp, tmp_path, dialogs, file_dialogs):
    dialogs.answer = QMessageBox.Save
    file_dialogs["save"] = str(tmp_path / "kept.json")
    assert mlp.new_graph()
    assert (tmp_path / "kept.json").exists() and not mlp.document.graph.nodes


def test_opening_with_unsaved_changes_asks_first(mlp, tmp_path, dialogs):
    other = tmp_path / "other.json"
    mlp._save_to(other)
    mlp.document.add_node("ReLU", (0, 0))
    dialogs.answer = QMessageBox.Cancel
    before = graph_to_dict(mlp.document.graph)
    assert not mlp.open_path(other)
    assert graph_to_dict(mlp.document.graph) == before


def test_the_samples_menu_lists_the_samples_folder(window):
    samples = fill_samples(window, window.samples_menu)
    assert samples == sorted(paths.SAMPLES.glob("*.json"))
    names = [a.text() for a in window.samples_menu.actions()]
    assert names == [p.stem for p in samples] or names == ["(no samples found)"]


def test_a_file_with_stacked_nodes_is_laid_out_on_open_and_stays_clean(window, tmp_path):
    data = {"format": "layerloom-graph", "version": 1,
            "nodes": [{"id": "x", "type": "Input", "attrs": {"shape": [4]}},
                      {"id": "fc", "type": "Dense", "attrs": {"out_features": 2}},
                      {"id": "act", "type": "ReLU"}],
            "edges": [{"from": ["x", "y"], "to": ["fc", "x"]},
                      {"from": ["fc", "y"], "to": ["act", "x"]}]}
    path = tmp_path / "stacked.json"
    path.write_text(json.dumps(data))
    window.resize(2000, 900)  # a canvas wide enough for one row beside the training docks
    QApplication.processEvents()
    assert window.open_path(path)
    graph = window.document.graph
    assert not is_cramped(graph, window.view.graph_scene.node_sizes())
    assert graph.nodes["x"].pos[0] < graph.nodes["fc"].pos[0] < graph.nodes["act"].pos[0]
    assert not window.document.dirty and not window.document.stack.canUndo()
