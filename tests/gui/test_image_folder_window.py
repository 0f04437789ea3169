"""A person's own photos in the real window: the Data panel loads a folder through its file
dialog and shows class counts and augmented previews; the net trains on it with augmentation;
the Inference tab predicts an image file of theirs exactly as ``layerloom predict`` does."""
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from layerloom.engine.cli import main
from layerloom.engine.data.augment import Augmentation
from layerloom.engine.data.images import ImageArray
from tests.engine.image_folders import COLOURS, class_folder, picture
from tests.gui.test_window_training import open_sample, press_train

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


class Dialog:
    """QFileDialog's static getters, answering with a prepared path and recording the question."""

    def __init__(self, answer: str):
        self.answer, self.asked = answer, []

    def directory(self, parent, title, start="", *args, **kwargs):
        self.asked.append(title)
        return self.answer

    def open_file(self, parent, title, start="", filters="", *args, **kwargs):
        self.asked.append((title, filters))
        return self.answer, filters


def load_photos(qtbot, window, monkeypatch, folder: Path):
    panel = window.training.dataset_panel
    window.training.dataset_dock.raise_()
    dialog = Dialog(str(folder))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", dialog.directory)
    panel.source.setCurrentIndex(panel.source.findData("folder"))
    assert panel.folder_options.isVisible() and not panel.table_options.isVisible()
    panel.folder_options.height.setValue(16)
    panel.folder_options.width.setValue(16)
    with qtbot.waitSignal(panel.dataset_changed, timeout=60_000) as blocker:
        qtbot.mouseClick(panel.browse, Qt.LeftButton)
    assert dialog.asked == ["Folder of class folders"]
    return panel, blocker.args[0]


def test_a_photo_folder_loads_through_the_dialog_with_counts_and_augmented_previews(
        qtbot, window, monkeypatch, tmp_path):
    folder = class_folder(tmp_path / "my photos", per_class=12)
    (folder / "green" / "notes.txt").write_text("not a photo")
    open_sample(window, "shapes_cnn.json", max_steps=6, batch_size=8)
    panel, data = load_photos(qtbot, window, monkeypatch, folder)
    section = window.document.project.data
    assert section["spec"] == f"folder:{folder}?size=16x16&channels=3&fit=crop"
    assert section["classes"] == ["blue", "green", "red"] == data.class_names
    assert section["preprocessing"]["size"] == [16, 16] and isinstance(data.train.x, ImageArray)
    info = panel.info.text()
    counts = np.bincount(data.train.y)
    assert f"blue {counts[0]}, green {counts[1]}, red {counts[2]}" in info
    assert "1 non-image file ignored" in info
    assert window.document.graph.nodes["image"].attrs["shape"] in ((3, 16, 16), [3, 16, 16])
    assert window.document.graph.nodes["fc2"].attrs["out_features"] == 5  # the sample's, untouched

    # augmentation: the tab opens for images, its widgets write the data section (undoably)
    assert panel.views.isTabEnabled(1)
    panel.views.setCurrentWidget(panel.augment)
    aug = panel.augment
    assert aug.editors["flip"].isChecked() and aug.editors["crop_padding"].value() == 2  # sample's
    aug.editors["crop_padding"].setValue(3)
    aug.editors["rotation"].setValue(0)
    assert section["augment"] == {"crop_padding": 3, "flip": True, "brightness": 0.2}
    aug.refresh_preview()
    assert aug.images.shape == (4, 6, 3, 16, 16) and not aug.grid.pixmap().isNull()
    originals = aug.images[:, 0]
    assert all(any(np.array_equal(o, data.train.x.unit(i)) for i in range(len(data.train)))
               for o in originals)  # the first column: training images as they are
    assert not np.array_equal(aug.images[:, 1:], np.repeat(aug.images[:, :1], 5, axis=1))
    aug.editors["flip"].setChecked(False)
    assert "flip" not in window.document.project.data["augment"]
    window.document.undo()  # the panel's edits in a row are one step: back to the sample's
    assert window.document.project.data["augment"] == {"crop_padding": 2, "flip": True,
                                                       "rotation": 15.0, "brightness": 0.2}
    assert aug.editors["flip"].isChecked() and aug.editors["crop_padding"].value() == 2
    aug.editors["cutout"].setValue(4)

    # a few steps of training read the photos through the loader, augmented
    window.document.set_attr("fc2", "out_features", 3)  # the sample has five classes, these three
    done = press_train(qtbot, window, timeout=180_000)
    assert done.steps == 6 and np.isfinite(done.test_loss)
    used = window.training.controller.dataset
    assert used.augment == Augmentation(crop_padding=2, flip=True, rotation=15, brightness=0.2,
                                        cutout=4)


def test_the_inference_tab_predicts_a_file_as_layerloom_predict_does(qtbot, window, monkeypatch,
                                                                     tmp_path, capsys):
    folder = class_folder(tmp_path / "photos", per_class=10)
    open_sample(window, "shapes_cnn.json", max_steps=20, batch_size=8)
    load_photos(qtbot, window, monkeypatch, folder)
    window.document.set_attr("fc2", "out_features", 3)
    press_train(qtbot, window, timeout=180_000)
    view = window.training.inference
    photo = tmp_path / "holiday.jpg"
    picture(COLOURS["green"], size=(40, 30), seed=42).save(photo)
    dialog = Dialog(str(photo))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog.open_file)
    assert view.file_input.open_button.isEnabled()
    qtbot.mouseClick(view.file_input.open_button, Qt.LeftButton)
    assert dialog.asked[0][0] == "Image to predict" and "*.jpg" in dialog.asked[0][1]
    assert view.file_input.choice.isChecked() and view.probabilities is not None
    assert view.prediction.text().startswith("holiday.jpg: <b>Prediction:")
    assert view.sample_image.image is not None

    graph = tmp_path / "mine.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(graph), "Layerloom graph (*.json)"))
    assert window.save_as() and graph.with_suffix(".weights.npz").exists()
    capsys.readouterr()
    assert main(["predict", str(graph), "--weights", str(graph.with_suffix(".weights.npz")),
                 str(photo)]) == 0
    printed = capsys.readouterr().out.strip()
    names = window.training.controller.dataset.class_names
    order = np.argsort(-view.probabilities, kind="stable")[:3]
    shown = ", ".join(f"{names[i]} {100 * view.probabilities[i]:.2f}%" for i in order)
    assert printed == f"holiday.jpg: {shown}"

    (tmp_path / "bad.png").write_bytes(b"not an image")
    view.file_input.load(tmp_path / "bad.png")
    assert "bad.png" in view.sample_image.text() and view.prediction.text() == ""
