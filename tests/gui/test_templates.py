"""Samples are templates: Save on one asks for a new place in the documents folder and never
writes the sample; written files follow the umask; temporaries a killed write left are swept."""
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog

from layerloom.engine import paths
from layerloom.gui.file_places import documents_dir
from layerloom.gui.menus import fill_samples

REPO_SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture
def samples(tmp_path, monkeypatch):
    """A copy of the samples folder standing in for the installed one (never the real files)."""
    folder = tmp_path / "installed" / "samples"
    folder.mkdir(parents=True)
    for name in ("lenet5.json", "mlp_spirals.json"):
        shutil.copy(REPO_SAMPLES / name, folder / name)
    monkeypatch.setattr(paths, "SAMPLES", folder)
    return folder


class SaveDialog:
    """Stands in for the Save As dialog: records where it started, answers ``answer``."""

    def __init__(self, answer: Path | None):
        self.answer, self.starts = answer, []

    def __call__(self, parent, title, start, *args, **kwargs):
        self.starts.append(Path(start))
        return (str(self.answer) if self.answer else "", "")


def test_save_on_a_sample_asks_for_a_new_place_and_leaves_the_sample_alone(
        window, samples, tmp_path, monkeypatch):
    fill_samples(window, window.samples_menu)
    opened = next(a for a in window.samples_menu.actions() if a.text() == "mlp_spirals")
    opened.trigger()  # File > New from Sample > mlp_spirals
    assert window.document.path == samples / "mlp_spirals.json"
    assert "sample" in window.windowTitle()
    original = (samples / "mlp_spirals.json").read_bytes()
    window.document.set_attr("fc1", "out_features", 32)
    mine = tmp_path / "mine" / "spirals.json"
    mine.parent.mkdir()
    dialog = SaveDialog(mine)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    old_umask = os.umask(0o027)
    try:
        window.actions_by_name["save"].trigger()
    finally:
        os.umask(old_umask)
    assert mine.exists() and dialog.starts == [documents_dir() / "mlp_spirals.json"]
    assert (samples / "mlp_spirals.json").read_bytes() == original
    assert not list(samples.glob("*.weights.npz")) and window.document.path == mine
    assert stat.S_IMODE(mine.stat().st_mode) == 0o640  # 0666 less the umask, not 0600
    assert "sample" not in window.windowTitle() and not window.document.dirty
    window.document.set_attr("fc1", "out_features", 16)
    window.actions_by_name["save"].trigger()  # now the person's own file: no question
    assert len(dialog.starts) == 1 and '"out_features": 16' in mine.read_text()


def test_a_save_into_the_samples_folder_is_refused(window, samples, monkeypatch, dialogs):
    assert window.open_path(samples / "lenet5.json", ask=False)
    original = (samples / "lenet5.json").read_bytes()
    window.document.set_attr("fc3", "out_features", 10)  # no change: still clean
    monkeypatch.setattr(QFileDialog, "getSaveFileName", SaveDialog(samples / "lenet5.json"))
    assert not window.save()
    assert dialogs.shown[-1][1] == "Samples are templates"
    assert (samples / "lenet5.json").read_bytes() == original


def test_stale_temporaries_are_swept_at_start_and_fresh_ones_kept(qtbot, settings, tmp_path):
    from layerloom.gui.main_window import MainWindow

    folder = tmp_path / "work"
    folder.mkdir()
    graph = folder / "g.json"
    shutil.copy(REPO_SAMPLES / "mlp_spirals.json", graph)
    settings.setValue("recent_files", [str(graph)])
    stale, fresh = folder / ".g.json.a1b2c3d4.tmp", folder / ".g.json.e5f6g7h8.tmp"
    for f in (stale, fresh):
        f.write_bytes(b"half a file")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    window = MainWindow(settings)
    qtbot.addWidget(window)
    assert not stale.exists() and fresh.exists() and graph.exists()
