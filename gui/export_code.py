"""File > Export PyTorch Code: the graph and its training settings as a runnable ``.py`` file.

The engine writes the text (``engine.export.torch_code``); this only asks where, and reports.
A graph that cannot be exported (a problem on the canvas, a node id torch reserves) is refused
with the engine's one-line reason, and nothing is written.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from engine.export.torch_code import torch_source
from engine.serialize import atomic_write_bytes
from engine.spec import LayerloomError

TITLE = "Export PyTorch code"


def export_pytorch_code(window: QWidget) -> Path | None:
    """Ask for a ``.py`` file and write the code there; returns the path, or None."""
    doc = window.document
    start = doc.path.with_suffix(".py") if doc.path else Path.cwd() / "model.py"
    chosen, _ = QFileDialog.getSaveFileName(window, TITLE, str(start), "Python file (*.py)")
    if not chosen:
        return None
    path = Path(chosen) if chosen.endswith(".py") else Path(chosen).with_suffix(".py")
    try:
        source = torch_source(doc.graph, doc.project.training, title=path.stem)
        atomic_write_bytes(path, source.encode("utf-8"))
    except LayerloomError as err:
        QMessageBox.critical(window, TITLE, f"Cannot export: {err}")
        return None
    except OSError as err:
        QMessageBox.critical(window, TITLE, f"{path}: cannot write ({err.strerror or err})")
        return None
    window.statusBar().showMessage(
        f"Exported {path.name}: python {path.name} --data DATA.npz trains it "
        f"(--weights takes exported weights)", 10000)
    return path
