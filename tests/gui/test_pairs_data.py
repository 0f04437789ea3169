"""The Data panel offers paired sequences: a built-in task with its options, or a .tsv file."""
from PySide6.QtCore import Qt

from layerloom.engine.graph import Graph
from layerloom.engine.serialize import Project
from layerloom.gui.dataset_panel import DatasetPanel


def make_panel(qtbot, project: Project) -> DatasetPanel:
    panel = DatasetPanel(lambda: project, None)
    qtbot.addWidget(panel)
    panel.resize(520, 640)
    panel.show()
    return panel


def shown(panel: DatasetPanel, name: str) -> bool:
    return panel.options[name].isVisible()


def test_a_pairs_task_loads_with_its_options_and_shows_its_pairs(qtbot):
    project = Project(Graph(), {}, {})
    panel = make_panel(qtbot, project)
    panel.source.setCurrentIndex(panel.source.findData("pairs"))
    assert panel.task.isVisible() and not panel.path_box.isVisible()
    tasks = [panel.task.itemText(i) for i in range(panel.task.count())]
    assert tasks == ["reverse", "sort", "copy", "addition", "date"]
    assert shown(panel, "digits") and shown(panel, "n") and not shown(panel, "tokens")
    panel.task.setCurrentText("addition")
    panel.options["digits"].setValue(2)
    panel.options["n"].setValue(200)
    with qtbot.waitSignal(panel.dataset_changed) as blocker:
        qtbot.mouseClick(panel.load_button, Qt.LeftButton)
    data = blocker.args[0]
    assert data.name == "pairs:addition" and data.sample_shape == (3 * 6,)
    assert project.data["spec"] == "pairs:addition?n=200&digits=2"
    preview = panel.no_preview.text()
    assert preview.startswith("Training pairs") and preview.count("→") == 9  # title + 8 pairs
    first = preview.splitlines()[1]
    source, target = (part.strip() for part in first.split("→"))
    a, b = source.rstrip("=").split("+")
    assert int(target) == int(a) + int(b)


def test_a_tsv_file_of_pairs_loads_by_words(qtbot, tmp_path):
    path = tmp_path / "words.tsv"
    path.write_text("".join(f"red {i % 4}\trouge {i % 4}\n" for i in range(30)), encoding="utf-8")
    project = Project(Graph(), {}, {})
    panel = make_panel(qtbot, project)
    panel.source.setCurrentIndex(panel.source.findData("pairs:"))
    assert panel.path_box.isVisible() and not panel.task.isVisible()
    assert shown(panel, "tokens") and not shown(panel, "digits")
    panel.path.setText(str(path))
    panel.options["tokens"].setText("word")
    data = panel.load()
    assert data is not None and data.sample_shape == (3 * 3,)
    assert "red 1  →  rouge 1" in panel.no_preview.text()
    panel.options["tokens"].setText("letters")
    assert panel.load() is None and "tokens must be char or word" in panel.info.text()


def test_the_panel_shows_a_pairs_section_as_task_or_file(qtbot, tmp_path):
    project = Project(Graph(), {}, {"spec": "pairs:date?n=300"})
    panel = make_panel(qtbot, project)
    assert panel.kind == "pairs" and panel.task.currentText() == "date"
    assert panel.options["n"].value() == 300 and panel.spec() == "pairs:date?n=300"
    project.data = {"spec": f"pairs:{tmp_path / 'mine.tsv'}?tokens=word"}
    panel.load_from_project()
    assert panel.kind == "pairs:" and panel.path.text() == str(tmp_path / "mine.tsv")
    assert panel.options["tokens"].text() == "word"
