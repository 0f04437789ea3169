"""The Data panel's CSV and image-folder options: the widgets write the spec's options, a stored
spec shows in them again, and a table's columns are listed to choose the target and categories."""
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from layerloom.engine.data.table import TablePrep
from layerloom.engine.serialize import Project
from layerloom.gui.dataset_panel import DatasetPanel
from tests.gui.test_training_harness import sample_project


@pytest.fixture
def panel(qtbot):
    project = sample_project("mlp_spirals.json")
    panel = DatasetPanel(lambda: project)
    qtbot.addWidget(panel)
    panel.resize(420, 760)
    panel.show()
    panel.project = project
    return panel


def table(tmp_path):
    path = tmp_path / "cars.csv"
    rows = [f"{i},{['red', 'blue'][i % 2]},{1990 + i % 7},{i % 3},{100 + 2.5 * i:.1f}"
            for i in range(60)]
    path.write_text("id,colour,year,doors,price\n" + "\n".join(rows) + "\n")
    return path


def test_a_csv_file_lists_its_columns_and_the_choices_become_the_spec(qtbot, panel, tmp_path,
                                                                      monkeypatch):
    path = table(tmp_path)
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(path), "CSV files (*.csv *.txt)"))
    panel.source.setCurrentIndex(panel.source.findData("csv"))
    assert panel.table_options.isVisible() and not panel.folder_options.isVisible()
    with qtbot.waitSignal(panel.dataset_changed):
        qtbot.mouseClick(panel.browse, Qt.LeftButton)
    opts = panel.table_options
    assert opts.kinds() == {"id": "numeric", "colour": "categorical", "year": "numeric",
                            "doors": "numeric", "price": "target"}
    assert panel.dataset.task == "regression"
    opts.set_kind("doors", "target")  # a new target: price goes back to a number
    opts.set_kind("year", "categorical")
    opts.set_kind("id", "ignore")
    opts.fill.setCurrentIndex(opts.fill.findData("median"))
    assert opts.kinds()["price"] == "numeric"
    with qtbot.waitSignal(panel.dataset_changed):
        qtbot.mouseClick(panel.load_button, Qt.LeftButton)
    spec = panel.project.data["spec"]
    assert spec == f"csv:{path}?target=doors&categorical=year&ignore=id&fill=median"
    data = panel.dataset
    assert data.task == "classification" and data.class_names == ["0", "1", "2"]
    prep = TablePrep.from_dict(panel.project.data["preprocessing"])
    assert [c.name for c in prep.features] == ["colour", "year", "price"]
    assert "3 classes" in panel.info.text() and "one-hot: colour, year" in panel.info.text()
    panel.table_options.set_columns([])  # as a fresh panel shows a stored spec:
    panel.load_from_project()
    assert panel.table_options.kinds()["doors"] == "target"
    assert panel.table_options.kinds()["id"] == "ignore"
    assert panel.spec() == spec


def test_a_text_column_offers_no_number_kind(panel, tmp_path):
    panel.table_options.set_columns([("colour", "categorical"), ("y", "numeric")])
    box = panel.table_options.table.cellWidget(0, 1)
    assert [box.itemData(i) for i in range(box.count())] == ["target", "categorical", "ignore"]


def test_image_folder_options_round_trip_through_the_spec(qtbot, tmp_path):
    project = Project(sample_project("lenet5.json").graph, {},
                      {"spec": f"folder:{tmp_path}?size=24x40&channels=1&fit=stretch"})
    panel = DatasetPanel(lambda: project)
    qtbot.addWidget(panel)
    opts = panel.folder_options
    assert (opts.height.value(), opts.width.value()) == (24, 40)
    assert opts.channels.currentData() == 1 and opts.fit.currentData() == "stretch"
    assert panel.spec() == f"folder:{tmp_path}?size=24x40&channels=1&fit=stretch"


def test_the_task_can_be_chosen_and_a_named_sample_shows_as_its_source(qtbot, panel, tmp_path):
    path = table(tmp_path)
    panel.source.setCurrentIndex(panel.source.findData("csv"))
    panel.path.setText(str(path))
    panel.table_options.list_file(str(path), {})
    panel.table_options.set_kind("doors", "target")
    panel.table_options.task.setCurrentIndex(panel.table_options.task.findData("regression"))
    assert panel.spec() == f"csv:{path}?target=doors&task=regression"
    with qtbot.waitSignal(panel.dataset_changed):
        qtbot.mouseClick(panel.load_button, Qt.LeftButton)
    assert panel.dataset.task == "regression"
    panel.project.data["spec"] = "shapes"
    panel.load_from_project()
    assert panel.source.currentData() == "shapes" and panel.spec() == "shapes"
    assert not panel.path_box.isVisible()
