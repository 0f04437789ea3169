"""File > Export PyTorch Code, Export Training Project, Export ONNX Model and Import ONNX Model:
models in and out of the window.

The engine writes the bytes (``engine.export.torch_code``, ``engine.export.onnx``); this only
asks where, and reports. A graph that cannot be exported (a problem on the canvas, a node id
torch reserves, no onnx package) is refused with the engine's one-line reason, and nothing is
written. The ONNX model carries the trained weights when there are some, else fresh ones, and
the status bar says which. An imported model opens as an untitled, unsaved graph with its
weights as the trained ones; an ONNX file Layerloom cannot read changes nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from layerloom.engine.serialize import atomic_write_bytes
from layerloom.engine.spec import LayerloomError


def export_pytorch_code(window: QWidget) -> Path | None:
    """Ask for a ``.py`` file and write the graph as PyTorch code there, with the trained
    weights beside it (``<name>.weights.npz``) when there are some, to continue from."""
    from layerloom.engine.export.torch_code import torch_source
    from layerloom.engine.export.weights import save_weights, weights_path

    doc = window.document

    def write(path: Path) -> str:
        atomic_write_bytes(path, torch_source(doc.model, doc.project.training,
                                              title=path.stem).encode("utf-8"))
        net = window.training.controller.trained_network()
        if net is None:
            return (f"Exported {path.name}: python {path.name} --data DATA.npz trains it "
                    f"(--weights takes exported weights)")
        save_weights(net.params, weights_path(path))
        return (f"Exported {path.name} and the trained weights, {weights_path(path).name}: "
                f"python {path.name} --data DATA.npz --weights {weights_path(path).name} "
                f"continues from them")
    return _export(window, "Export PyTorch code", ".py", "Python file (*.py)", write)


def export_onnx(window: QWidget) -> Path | None:
    """Ask for an ``.onnx`` file and write the inference graph with its weights there."""
    from layerloom.engine.export.onnx import onnx_bytes
    from layerloom.engine.network import Network
    from layerloom.engine.predict import export_metadata

    def write(path: Path) -> str:
        net = window.training.controller.trained_network()
        fresh = net is None
        if fresh:
            net = Network(window.document.model, seed=0)
        meta = export_metadata(window.document.project.data)  # how inputs are prepared
        atomic_write_bytes(path, onnx_bytes(net, title=path.stem, metadata=meta))
        which = ("freshly initialised weights (train first for trained ones)" if fresh
                 else "the trained weights")
        return f"Exported {path.name} with {which}"
    return _export(window, "Export ONNX model", ".onnx", "ONNX model (*.onnx)", write)


def export_training_project(window: QWidget) -> Path | None:
    """Ask for a new folder and write the PyTorch training project there (``train.py`` for
    torchrun, the model, the data, the weights to start from: the trained ones when there are)."""
    from layerloom.engine.export.torch_project import check_trains_on_data, write_project
    from layerloom.engine.network import Network

    title, doc = "Export training project", window.document
    try:
        check_trains_on_data(doc.project)  # before a folder is asked for
    except LayerloomError as err:
        QMessageBox.critical(window, title, f"Cannot export: {err}")
        return None
    stem = doc.path.stem if doc.path else "model"
    start = (doc.path.parent if doc.path else Path.cwd()) / f"{stem}-training"
    chosen, _ = QFileDialog.getSaveFileName(window, title, str(start), "Folder (*)")
    if not chosen:
        return None
    folder = Path(chosen)
    controller = window.training.controller
    try:
        dataset = controller.dataset or controller.load_dataset()
        net = controller.trained_network()
        trained = net is not None
        params = net.params if trained else Network(doc.model, seed=int(
            doc.project.training.get("seed", 0))).params
        write_project(doc.project, folder, params, dataset, title=stem)
    except LayerloomError as err:
        QMessageBox.critical(window, title, f"Cannot export: {err}")
        return None
    which = "the trained weights" if trained else "freshly initialised weights"
    window.statusBar().showMessage(f"Exported the training project {folder.name}/ with {which}: "
                                   f"see its README for torchrun", 12000)
    return folder


def _export(window: QWidget, title: str, suffix: str, file_filter: str,
            write: Callable[[Path], str]) -> Path | None:
    doc = window.document
    start = doc.path.with_suffix(suffix) if doc.path else Path.cwd() / f"model{suffix}"
    chosen, _ = QFileDialog.getSaveFileName(window, title, str(start), file_filter)
    if not chosen:
        return None
    path = Path(chosen) if chosen.endswith(suffix) else Path(chosen).with_suffix(suffix)
    try:
        message = write(path)
    except LayerloomError as err:
        QMessageBox.critical(window, title, f"Cannot export: {err}")
        return None
    except OSError as err:
        QMessageBox.critical(window, title, f"{path}: cannot write ({err.strerror or err})")
        return None
    window.statusBar().showMessage(message, 10000)
    return path


def import_onnx(window: QWidget) -> bool:
    """Ask for an ``.onnx`` file and open its graph, with its weights, as a new document."""
    from layerloom.engine.export.onnx_import import read_onnx_file
    from layerloom.engine.network import WeightsError
    from layerloom.engine.serialize import Project

    title = "Import ONNX model"
    if window.training.controller.busy:
        window.statusBar().showMessage("Stop training before importing a model", 8000)
        return False
    if not window.maybe_save():
        return False
    start = str(window.document.path.parent if window.document.path else Path.cwd())
    chosen, _ = QFileDialog.getOpenFileName(window, title, start, "ONNX model (*.onnx)")
    if not chosen:
        return False
    path = Path(chosen)
    try:
        result = read_onnx_file(path)
    except LayerloomError as err:  # names the file; a device or FIFO is refused, not read
        QMessageBox.critical(window, title, f"Cannot import {err}")
        return False
    graph = result.graph
    window.document.new_from(Project(graph))
    try:
        window.training.adopt_weights(result.params)
    except (WeightsError, LayerloomError) as err:  # the graph stays: it is still worth seeing
        QMessageBox.critical(window, title, f"{path.name}: its weights do not fit: {err}")
    window.auto_layout()
    notes = "".join(f"; {note}" for note in result.notes)
    window.statusBar().showMessage(f"Imported {path.name}: {len(graph.nodes)} nodes with their "
                                   f"weights; add a Label and a loss to train it further{notes}",
                                   10000)
    return True
