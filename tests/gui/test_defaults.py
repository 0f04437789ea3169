"""Defaults that succeed: File > New starts with settings that learn the synthetic sets, the
drawing pad asks for what the data holds, and the LeNet-5 sample's own settings reach 80 %."""
import pytest
from PySide6.QtCore import Qt

from layerloom.gui.plots.images import pad_prompt
from tests.gui.conftest import build
from tests.gui.test_window_training import open_sample, press_train

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_file_new_settings_train_a_small_mlp_on_circles(qtbot, window):
    window.actions_by_name["new"].trigger()
    doc, t = window.document, window.training
    panel, data = t.training_panel, t.dataset_panel
    assert panel.lr.value() == pytest.approx(0.01) and panel.epochs.value() == 20
    build(doc, [("x", "Input", {"shape": (2,)}, (0, 0)),
                ("fc1", "Dense", {"out_features": 16}, (200, 0)),
                ("act", "Tanh", {}, (400, 0)), ("fc2", "Dense", {"out_features": 2}, (600, 0)),
                ("y", "Label", {}, (600, 150)), ("loss", "CrossEntropyLoss", {}, (800, 50))],
          [(("x", "y"), ("fc1", "x")), (("fc1", "y"), ("act", "x")), (("act", "y"), ("fc2", "x")),
           (("fc2", "y"), ("loss", "input")), (("y", "y"), ("loss", "target"))])
    data.source.setCurrentIndex(data.source.findData("circles"))
    qtbot.mouseClick(data.load_button, Qt.LeftButton)
    assert data.fit_ok and not t.analyzer.analysis.errors
    done = press_train(qtbot, window, timeout=300_000)
    assert not done.stopped and done.test_accuracy >= 0.9


def test_the_drawing_pad_asks_for_the_data_s_own_classes(qtbot, window):
    open_sample(window, "lenet5.json", max_steps=2)
    press_train(qtbot, window, timeout=300_000)
    view = window.training.inference
    assert view.pad.prompt == "Draw one of: T-shirt/top, Trouser, Pullover, Dress, …"
    assert "digit" not in view.pad.prompt and view.use_pad.toolTip() == view.pad.prompt
    assert pad_prompt([str(i) for i in range(10)]) == "Draw a digit (0–9)"


@pytest.mark.slow
def test_the_lenet5_sample_reaches_80_percent_with_its_own_settings():
    from layerloom.engine.data import load_data
    from layerloom.engine.network import Network
    from layerloom.engine.paths import SAMPLES
    from layerloom.engine.serialize import load_project
    from layerloom.engine.training import DoneReport, TrainConfig, train

    project = load_project(SAMPLES / "lenet5.json")
    config = TrainConfig.from_dict(project.training)
    done = list(train(Network(project.graph, seed=config.seed), load_data("bundled"), config))[-1]
    assert isinstance(done, DoneReport) and done.test_accuracy >= 0.80
