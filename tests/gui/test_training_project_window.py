"""File > Export Training Project and the Runs tab's Import run…, through the real window: the
trained weights go into the project, the project trains with PyTorch, its run comes back."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

from layerloom.engine.export.weights import load_weights
from layerloom.engine.runs import RunStore
from tests.gui.test_window_training import open_sample, press_train

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_export_a_trained_project_train_it_elsewhere_and_import_the_run(qtbot, window, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("LAYERLOOM_RUNS_DB", str(tmp_path / "runs.sqlite"))
    open_sample(window, "mlp_spirals.json", epochs=2)
    press_train(qtbot, window)
    folder = tmp_path / "spirals-training"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(folder), ""))
    window.actions_by_name["export_project"].trigger()
    assert "trained weights" in window.statusBar().currentMessage()
    trained = window.training.controller.trained_network().params
    exported = load_weights(folder / "weights.npz")
    assert all(np.array_equal(exported[k], v) for k, v in trained.items())
    proc = subprocess.run([sys.executable, "train.py", "--epochs", "1"], cwd=folder,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    window.actions_by_name["import_run"].trigger()  # File > Import Run… (the Runs tab has it too)
    runs = RunStore(tmp_path / "runs.sqlite").runs()
    imported = [r for r in runs if r.source == "import"]
    assert len(imported) == 1 and imported[0].status == "finished"
    assert imported[0].id in window.runs.panel.ticked_ids()
    assert Path(imported[0].weights_path) == (folder / "out" / "weights.npz").resolve()
