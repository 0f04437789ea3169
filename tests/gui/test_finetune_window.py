"""Fine-tuning from the window: Import Weights on samples/bert_finetune.json takes a masked-LM's
encoder (it offers the parameters the two graphs share), and training with the encoder frozen
changes only the new head."""
import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from layerloom.engine.network import Network
from layerloom.engine.paths import SAMPLES
from layerloom.engine.project import load_project
from tests.gui.test_window_training import open_sample, press_train

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_a_pretrained_encoder_is_imported_into_the_classifier_and_stays_frozen(
        qtbot, window, tmp_path, dialogs):
    pretrained = Network(load_project(SAMPLES / "bert_mlm.json").graph, seed=5)
    path = tmp_path / "mlm.npz"
    pretrained.save_weights(path)
    open_sample(window, "bert_finetune.json", max_steps=2, batch_size=8)
    dialogs.answer = QMessageBox.Yes
    assert window.training.import_weights(path)
    ((kind, _, asked),) = dialogs.shown
    assert kind == "question" and "28 parameters under this graph's names" in asked
    assert "Loaded 28 parameters from mlm.npz" in window.statusBar().currentMessage()
    imported = {k: v.copy() for k, v in window.training.controller.trained_network().params.items()}
    press_train(qtbot, window, timeout=180_000)
    trained = window.training.controller.trained_network().params
    for key, value in pretrained.params.items():
        if key in trained:
            assert trained[key].tobytes() == value.astype(trained[key].dtype).tobytes(), key
    assert not np.array_equal(trained["classify.weight"], imported["classify.weight"])


def test_declining_the_offer_loads_nothing(qtbot, window, tmp_path, dialogs):
    path = tmp_path / "mlm.npz"
    Network(load_project(SAMPLES / "bert_mlm.json").graph, seed=5).save_weights(path)
    open_sample(window, "bert_finetune.json")
    dialogs.answer = QMessageBox.No
    assert not window.training.import_weights(path)
    assert window.training.controller.trained_network() is None
    assert [kind for kind, _, _ in dialogs.shown] == ["question", "critical"]
    assert "classify.weight" in dialogs.shown[1][2]  # the strict load's reason: the head is new
