"""Export the trained weights, load them into a fresh controller: identical predictions."""
import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog, QProgressDialog

from layerloom.engine.network import WeightsError
from layerloom.engine.training import bind
from layerloom.gui.training import export
from layerloom.gui.training.controller import TrainingController
from tests.gui.test_training_harness import (make_harness, sample_project,  # noqa: F401
                                             train_and_wait)


def _predictions(net, split):
    b = bind(net)
    net.forward({b.input_id: split.x, b.label_id: split.y})
    return net.executor.values[b.logits_ref].copy()


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_exported_weights_reload_into_the_graph_with_identical_predictions(
        qtbot, make_harness, tmp_path, suffix):
    h = make_harness(sample_project("mlp_spirals.json", max_steps=60))
    train_and_wait(qtbot, h)
    trained = h.controller.trained_network()
    path = tmp_path / f"spirals{suffix}"
    export.export_weights(trained.params, path, h)

    fresh = TrainingController(lambda: h.project)
    assert fresh.trained_network() is None
    loaded = export.import_weights(fresh, path)
    assert fresh.trained_network() is loaded
    test = h.controller.dataset.test
    assert np.array_equal(_predictions(loaded, test), _predictions(trained, test))
    assert set(loaded.params) == set(trained.params)


def test_a_large_model_is_written_behind_a_progress_dialog(qtbot, make_harness, tmp_path,
                                                           monkeypatch):
    h = make_harness(sample_project("mlp_spirals.json", max_steps=5))
    train_and_wait(qtbot, h)
    shown = []
    monkeypatch.setattr(export, "PROGRESS_BYTES", 0)
    monkeypatch.setattr(QProgressDialog, "show", lambda self: shown.append(self.labelText()))
    path = tmp_path / "weights.safetensors"
    export.export_weights(h.controller.trained_network().params, path, h)
    assert shown and "weights.safetensors" in shown[0]
    reloaded = export.load_weights(path)
    assert all(np.array_equal(reloaded[k], v)
               for k, v in h.controller.trained_network().params.items())


def test_the_export_dialog_adds_a_suffix_and_refuses_without_weights(qtbot, make_harness,
                                                                    tmp_path, monkeypatch,
                                                                    dialogs):
    h = make_harness(sample_project("mlp_spirals.json", max_steps=5))
    assert export.export_dialog(h.controller, h) is None
    assert dialogs.shown and "no trained weights" in dialogs.shown[-1][2]
    train_and_wait(qtbot, h)
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "model"), "NumPy archive (*.npz)"))
    assert export.export_dialog(h.controller, h) == tmp_path / "model.npz"
    assert (tmp_path / "model.npz").exists()


def test_weights_that_do_not_fit_the_graph_are_refused_by_name(make_harness, tmp_path):
    h = make_harness(sample_project("mlp_spirals.json"))
    path = tmp_path / "wrong.npz"
    export.save_weights({"fc1.weight": np.zeros((3, 3), np.float32)}, path)
    with pytest.raises(WeightsError, match="fc1"):
        export.import_weights(h.controller, path)
    assert h.controller.trained_network() is None
