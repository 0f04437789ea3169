"""Training and data settings are edited like the graph: one undoable command each, through the
Document, checked by the engine's rules; the panels only show the project's sections."""
import pytest

from layerloom.engine.training_config import SETTINGS
from layerloom.gui.document import Document
from layerloom.gui.training.controller import TrainingController
from layerloom.gui.training.panel import TrainingPanel
from tests.gui.test_training_harness import sample_project


@pytest.fixture
def doc_and_panel(qtbot):
    doc = Document(sample_project("mlp_spirals.json"))
    controller = TrainingController(lambda: doc.project, doc.set_locked)
    panel = TrainingPanel(controller, doc)
    qtbot.addWidget(panel)
    return doc, panel


def test_an_edit_is_applied_by_its_command_and_undone_by_it(doc_and_panel):
    doc, panel = doc_and_panel
    shown = []
    doc.section_changed.connect(shown.append)
    assert doc.edit_section("training", {"lr": 0.5, "schedule": "cosine"})
    assert doc.project.training["lr"] == 0.5 and doc.project.training["schedule"] == "cosine"
    assert shown == ["training"] and doc.dirty  # the push itself applied it and said so
    assert panel.lr.value() == 0.5 and panel.schedule.currentData() == "cosine"
    doc.undo()
    assert doc.project.training["lr"] == 0.01 and "schedule" not in doc.project.training
    assert panel.lr.value() == 0.01 and panel.schedule.currentData() == "constant"
    doc.redo()
    assert panel.lr.value() == 0.5 and shown == ["training"] * 3


def test_a_bad_setting_is_refused_in_the_engines_words_and_pushes_nothing(doc_and_panel):
    doc, _panel = doc_and_panel
    said = []
    doc.message.connect(said.append)
    assert not doc.edit_section("training", {"seed": -1})
    assert not doc.edit_section("training", {"optimizer": "rmsprop"})
    assert said[0] == "training.seed: must be at least 0, got -1"
    assert said[1].startswith("training.optimizer: must be one of sgd")
    assert doc.stack.count() == 0 and doc.project.training["seed"] == 0


def test_the_panel_never_writes_the_section_itself(doc_and_panel, monkeypatch):
    doc, panel = doc_and_panel
    asked = []
    monkeypatch.setattr(doc, "edit_section", lambda name, changes: asked.append(changes) or False)
    before = dict(doc.project.training)
    panel.lr.setValue(0.5)
    panel.batch_size.setValue(7)
    assert asked == [{"lr": 0.5}, {"batch_size": 7}]
    assert doc.project.training == before  # refused: the file's values are shown again
    assert panel.lr.value() == before["lr"] and panel.batch_size.value() == before["batch_size"]


def test_steps_of_one_setting_merge_and_other_settings_are_their_own_steps(doc_and_panel):
    doc, panel = doc_and_panel
    for value in (40, 41, 42):
        panel.epochs.setValue(value)
    panel.seed.setValue(3)
    assert doc.stack.count() == 2
    doc.undo()
    assert doc.project.training["seed"] == 0 and doc.project.training["epochs"] == 42
    doc.undo()
    assert doc.project.training["epochs"] == 30 and panel.epochs.value() == 30
    panel.epochs.setValue(31)
    panel.epochs.setValue(30)  # back where it was: no step at all
    assert doc.stack.count() == 0


def test_the_panels_limits_are_the_engines(doc_and_panel):
    _doc, panel = doc_and_panel
    for name in ("batch_size", "epochs", "seed"):
        widget, rule = getattr(panel, name), SETTINGS[name]
        assert (widget.minimum(), widget.maximum()) == (rule.low, rule.high)
    assert panel.max_steps.maximum() == SETTINGS["max_steps"].high


def test_a_data_load_is_one_undoable_edit_of_the_data_section(qtbot, window):
    from tests.gui.test_window_training import open_sample

    open_sample(window, "mlp_spirals.json")
    doc, data = window.document, window.training.dataset_panel
    data.source.setCurrentIndex(data.source.findData("moons"))
    with qtbot.waitSignal(data.dataset_changed):
        data.load()
    assert doc.project.data["spec"].startswith("moons")
    while doc.project.data["spec"] != "spirals" and doc.stack.canUndo():
        doc.undo()
    assert doc.project.data["spec"] == "spirals"
    assert data.source.currentData() == "spirals"  # the panel shows the section again
