"""Opening a graph whose data lies outside its folder: the window asks (Load / Choose another /
Cancel) before it reads anything; refusing reads nothing and leaves the graph as the file has it;
data inside the folder loads relative to the graph file, wherever the window was started."""
import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from layerloom.engine.data import section
from layerloom.engine.data.location import OutsideDataError
from layerloom.engine.serialize import load_project, project_to_dict
from layerloom.gui import data_question

ROOT = Path(__file__).resolve().parents[2]
ROWS = "".join(f"{i % 7 * 0.1},{i % 5 * 0.2},{i % 3}\n" for i in range(60))


def graph_with_data(folder: Path, spec: str) -> Path:
    data = json.loads((ROOT / "samples" / "mlp_spirals.json").read_text())
    data["data"] = {"spec": spec, "val_fraction": 0.1}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "g.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def asked(monkeypatch):
    """The question, patched: records each path asked about and gives ``asked.answer``."""
    class Asked(list):
        answer = data_question.CANCEL

    record = Asked()

    def ask(parent, err):
        record.append(err.path)
        return record.answer
    monkeypatch.setattr(data_question, "ask_outside_data", ask)
    return record


@pytest.fixture
def reads(monkeypatch):
    """Every spec the window hands to the data readers."""
    seen = []
    real = section.load_data
    monkeypatch.setattr(section, "load_data",
                        lambda spec, **kw: (seen.append(spec), real(spec, **kw))[1])
    return seen


@pytest.fixture
def outside(tmp_path) -> Path:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "points.csv").write_text(ROWS)
    return tmp_path / "shared" / "points.csv"


def test_cancel_reads_nothing_and_leaves_the_opened_graph_untouched(window, tmp_path, asked,
                                                                    reads, outside):
    graph = graph_with_data(tmp_path / "proj", f"csv:{outside}")
    before = project_to_dict(load_project(graph))
    assert window.open_path(graph)
    assert asked == [outside.resolve()] and reads == []
    assert window.training.controller.dataset is None
    assert "outside the graph file's folder" in window.training.dataset_panel.info.text()
    assert not window.document.dirty and window.document.path == graph
    assert project_to_dict(window.document.project)["data"] == before["data"]
    now = project_to_dict(window.document.project)
    assert [(n["id"], n["type"], n["attrs"]) for n in now["nodes"]] == [
        (n["id"], n["type"], n["attrs"]) for n in before["nodes"]]  # nothing fitted to any data
    window.training.import_weights(tmp_path / "none.npz", quiet_errors=True)
    assert len(asked) == 1 and reads == []  # not asked again behind the person's back


def test_load_reads_the_data_once_agreed(window, tmp_path, asked, reads, outside):
    asked.answer = data_question.LOAD
    assert window.open_path(graph_with_data(tmp_path / "proj", f"csv:{outside}"))
    assert asked == [outside.resolve()] and reads == [f"csv:{outside.resolve()}"]
    assert len(window.training.controller.dataset.train) > 0
    assert not window.document.dirty
    window.training.controller.set_dataset(None)
    window.training.controller.load_dataset()  # agreed for this graph: not asked again
    assert len(asked) == 1


def test_choose_another_loads_the_chosen_file_as_the_graphs_data(window, tmp_path, asked,
                                                                 monkeypatch, outside):
    asked.answer = data_question.CHOOSE
    proj = tmp_path / "proj"
    graph = graph_with_data(proj, f"csv:{outside}")
    (proj / "mine.csv").write_text(ROWS)
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(proj / "mine.csv"), ""))
    assert window.open_path(graph)
    assert window.document.project.data["spec"] == "csv:mine.csv"  # stored relative to the graph
    assert window.document.dirty and window.training.controller.dataset is not None
    assert "mine" in window.training.dataset_panel.info.text()


def test_data_inside_the_folder_loads_relative_to_the_graph_file(window, tmp_path, asked,
                                                                 reads, monkeypatch):
    proj = tmp_path / "proj"
    graph = graph_with_data(proj, "csv:data/points.csv")
    (proj / "data").mkdir()
    (proj / "data" / "points.csv").write_text(ROWS)
    monkeypatch.chdir(tmp_path)
    assert window.open_path(graph)
    assert asked == [] and reads == [f"csv:{(proj / 'data' / 'points.csv').resolve()}"]
    assert window.training.controller.dataset is not None


def test_pressing_train_after_cancel_asks_again(window, tmp_path, asked, outside):
    assert window.open_path(graph_with_data(tmp_path / "proj", f"csv:{outside}"))
    with pytest.raises(OutsideDataError):
        window.training.controller.load_dataset()  # what Train does first; Cancel again
    assert len(asked) == 2


def test_save_as_into_another_folder_keeps_naming_the_same_data(window, tmp_path, asked, monkeypatch):
    proj = tmp_path / "proj"
    graph = graph_with_data(proj, "csv:points.csv")
    (proj / "points.csv").write_text(ROWS)
    assert window.open_path(graph)
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(proj / "sub" / "copy.json"), ""))
    (proj / "sub").mkdir()
    assert window.save_as()
    saved = json.loads((proj / "sub" / "copy.json").read_text())
    assert saved["data"]["spec"] == f"csv:{(proj / 'points.csv').resolve()}"
    assert window.training.dataset_panel.path.text() == str((proj / "points.csv").resolve())


def test_the_question_names_the_path_and_offers_three_answers(qtbot, tmp_path):
    err = OutsideDataError("g.json wants to read data from /etc/passwd", Path("/etc/passwd"))
    box, buttons = data_question.outside_data_box(None, err)
    qtbot.addWidget(box)
    assert box.text() == "This graph wants to read data from /etc/passwd"
    assert [b.text() for b in buttons.values()][:2] == ["Load", "Choose another…"]
    assert box.defaultButton() is buttons[data_question.CANCEL]
    assert box.escapeButton() is buttons[data_question.CANCEL]
    assert buttons[data_question.CANCEL] is box.button(QMessageBox.Cancel)


def test_a_sweep_reads_the_data_the_window_reads(window, tmp_path, asked, monkeypatch, dialogs,
                                                outside):
    monkeypatch.setenv("LAYERLOOM_RUNS_DB", str(tmp_path / "runs.sqlite"))
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "data" / "points.csv").write_text(ROWS)
    assert window.open_path(graph_with_data(proj, "csv:data/points.csv"))
    window.runs.panel.buttons["Sweep…"].click()  # its copy of the graph may sit elsewhere
    args = window.runs.dialogs[-1].arguments()
    assert args[args.index("--data") + 1] == f"csv:{(proj / 'data' / 'points.csv').resolve()}"
    window.runs.dialogs[-1].close()
    assert window.open_path(graph_with_data(tmp_path / "other", f"csv:{outside}"))  # Cancel
    count = len(window.runs.dialogs)
    window.runs.panel.buttons["Sweep…"].click()
    assert len(window.runs.dialogs) == count  # not agreed to: no sweep reads it either
    assert dialogs.shown[-1][1] == "Sweep" and "wants to read data from" in dialogs.shown[-1][2]
