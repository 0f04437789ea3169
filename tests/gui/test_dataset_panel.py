"""The dataset panel: every source kind loads, shows what it holds and fits the graph."""
import numpy as np
import pytest
from PySide6.QtCore import Qt

from layerloom.engine.data.idx import write_idx
from layerloom.engine.graph import Graph
from layerloom.engine.serialize import Project
from layerloom.gui.dataset_panel import DatasetPanel
from tests.gui.test_training_harness import sample_project


@pytest.fixture
def panel_for(qtbot):
    def make(project, apply_edits=None) -> DatasetPanel:
        panel = DatasetPanel(lambda: project, apply_edits)
        qtbot.addWidget(panel)
        panel.resize(520, 640)
        panel.show()
        return panel
    return make


def choose(panel: DatasetPanel, kind: str, path: str = "") -> None:
    panel.source.setCurrentIndex(panel.source.findData(kind))
    panel.path.setText(path)


def test_a_synthetic_set_loads_as_a_scatter_and_becomes_the_project_s_data(qtbot, panel_for):
    project = sample_project("mlp_spirals.json")
    project.graph.set_attr("fc3", "out_features", 2)  # moons has two classes
    panel = panel_for(project)
    choose(panel, "moons")
    assert panel.points.isVisible() and not panel.path_box.isVisible()
    panel.points.setValue(400)
    panel.noise.setValue(0.3)
    panel.val_fraction.setValue(20)
    with qtbot.waitSignal(panel.dataset_changed) as blocker:
        qtbot.mouseClick(panel.load_button, Qt.LeftButton)
    data = blocker.args[0]
    assert data.name == "moons" and len(data.train) + len(data.val) + len(data.test) == 400
    assert project.data["spec"] == "moons?n=400&noise=0.3" and project.data["val_fraction"] == 0.2
    assert panel.preview.currentWidget() is panel.scatter_box
    assert len(panel.scatter_view.getPlotItem().listDataItems()) == 2  # one colour per class
    text = panel.info.text()
    assert "400 samples" in text and "(20 %)" in text and "2 classes" in text
    assert panel.fit_ok and "takes this data" in panel.fit_label.text()


def test_synthetic_signals_show_their_waves_by_class_and_fit_the_1d_cnn(qtbot, panel_for):
    project = sample_project("signal_cnn.json")
    project.graph.set_attr("signal", "shape", (1, 64))
    panel = panel_for(project)
    choose(panel, "signals")
    assert panel.points.isVisible() and panel.points.value() == 2000
    panel.points.setValue(200)
    panel.noise.setValue(0.1)
    with qtbot.waitSignal(panel.dataset_changed) as blocker:
        qtbot.mouseClick(panel.load_button, Qt.LeftButton)
    data = blocker.args[0]
    assert data.sample_shape == (1, 128) and data.class_names == ["sine", "square", "sawtooth",
                                                                   "noise"]
    assert project.data["spec"] == "signals?n=200&noise=0.1"
    plot = panel.scatter_view.getPlotItem()
    assert panel.preview.currentWidget() is panel.scatter_box
    assert len(plot.listDataItems()) == 4 * 2  # two waves of each class
    legend = panel.scatter_legend.text()  # above the waves, in the class colours
    assert [legend.index(f"&nbsp;{n}") for n in data.class_names] == sorted(
        legend.index(f"&nbsp;{n}") for n in data.class_names)
    assert project.graph.nodes["signal"].attrs["shape"] == (1, 128) and panel.fit_ok


def test_the_bundled_images_show_a_grid_and_fit_the_input_node(qtbot, panel_for):
    project = sample_project("lenet5.json")
    project.graph.set_attr("image", "shape", (1, 32, 32))
    edits = []

    def apply(e):
        edits.extend(e)
        for node, name, _old, new in e:
            project.graph.set_attr(node, name, new)

    panel = panel_for(project, apply)
    choose(panel, "bundled")
    data = panel.load()
    assert data.sample_shape == (1, 28, 28) and data.num_classes == 10
    assert edits == [("image", "shape", (1, 32, 32), (1, 28, 28))]
    assert "Set image.shape to 1×28×28" in panel.fit_label.text() and panel.fit_ok
    assert panel.preview.currentIndex() == 0 and not panel.images.pixmap().isNull()
    assert "T-shirt/top" in panel.info.text() and "1×28×28" in panel.info.text()


def test_a_graph_that_cannot_take_the_data_is_told_why(qtbot, panel_for):
    panel = panel_for(sample_project("mlp_spirals.json"))
    choose(panel, "bundled")
    panel.load()  # images into a Dense that expects vectors
    assert not panel.fit_ok
    assert panel.fit_label.text().startswith("✗") and "Flatten" in panel.fit_label.text()


def test_an_mnist_format_folder_loads(qtbot, panel_for, tmp_path):
    rng = np.random.default_rng(0)
    for stem, n in (("train", 40), ("t10k", 10)):
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 12, 12), dtype=np.uint8))
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 4)
    project = Project(Graph(), {}, {})
    panel = panel_for(project)
    choose(panel, "idx", str(tmp_path))
    assert panel.path_box.isVisible() and not panel.points.isVisible()
    data = panel.load()
    assert data.sample_shape == (1, 12, 12) and data.num_classes == 4
    assert project.data["spec"] == f"idx:{tmp_path}"
    assert "exactly one Input" in panel.fit_label.text()  # an empty graph: nothing to fit


def test_npz_and_csv_files_load(qtbot, panel_for, tmp_path):
    np.savez(tmp_path / "points.npz", x=np.random.rand(50, 3).astype(np.float32),
             y=np.arange(50) % 2)
    (tmp_path / "table.csv").write_text("a,b,target\n" + "\n".join(
        f"{i},{i * 2},{i % 3}" for i in range(30)) + "\n")
    panel = panel_for(Project(Graph(), {}, {}))
    choose(panel, "npz", str(tmp_path / "points.npz"))
    assert panel.load().sample_shape == (3,)
    assert "no picture" in panel.no_preview.text()
    choose(panel, "csv", str(tmp_path / "table.csv"))
    data = panel.load()
    assert data.sample_shape == (2,) and data.num_classes == 3
    assert panel.preview.currentWidget() is panel.scatter_box


def test_a_bad_source_is_reported_and_changes_nothing(qtbot, panel_for, tmp_path):
    project = sample_project("mlp_spirals.json")
    panel = panel_for(project)
    choose(panel, "idx", "")
    assert panel.load() is None and "Choose a folder" in panel.info.text()
    choose(panel, "idx", str(tmp_path / "missing"))
    assert panel.load() is None and "no such folder" in panel.info.text()
    assert project.data == {"spec": "spirals"} and panel.dataset is None


def test_the_panel_shows_the_project_s_data_section(qtbot, panel_for):
    project = Project(Graph(), {}, {"spec": "circles?n=300&noise=0.15", "val_fraction": 0.25})
    panel = panel_for(project)
    assert panel.kind == "circles" and panel.points.value() == 300
    assert panel.noise.value() == pytest.approx(0.15) and panel.val_fraction.value() == 25
    assert panel.spec() == "circles?n=300&noise=0.15"
