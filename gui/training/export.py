"""Export and import of trained weights (``.npz`` / ``.safetensors``, keys "<node_id>.<param>").

Writing a large model takes a while, so above ``PROGRESS_BYTES`` the write runs on a Python
thread while a QProgressDialog keeps the window painting; small models are written at once.
"""
from __future__ import annotations

import threading
from os import PathLike
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QWidget

from layerloom.engine.export.weights import check_weights_path, load_weights, save_weights
from layerloom.engine.network import WeightsError
from layerloom.gui import gc_guard

PROGRESS_BYTES = 32 << 20  # models larger than this get a progress dialog
WEIGHTS_FILTER = "Safetensors (*.safetensors);;NumPy archive (*.npz)"


def _nbytes(params: dict) -> int:
    return sum(np.asarray(v).nbytes for v in params.values())


def export_weights(params: dict, path: str | PathLike, parent: QWidget | None = None) -> None:
    """Write ``params`` to ``path`` (suffix picks the format); raises WeightsError."""
    check_weights_path(path)
    if _nbytes(params) < PROGRESS_BYTES:
        save_weights(params, path)
        return
    dialog = QProgressDialog(f"Writing {Path(path).name} ({_nbytes(params) / 2**20:,.0f} MB)…",
                             "", 0, 0, parent)
    dialog.setWindowTitle("Export weights")
    dialog.setCancelButton(None)  # a half-written file is never left: the write is atomic
    dialog.setWindowModality(Qt.WindowModal)
    dialog.setMinimumDuration(0)
    dialog.show()
    errors: list = []

    def write() -> None:
        try:
            save_weights(params, path)
        except Exception as err:  # noqa: BLE001 (re-raised on the UI thread below)
            errors.append(err)

    thread = threading.Thread(target=write, name="export-weights", daemon=True)
    with gc_guard.hold():
        thread.start()
        loop = QEventLoop()
        poll = QTimer()
        poll.timeout.connect(lambda: None if thread.is_alive() else loop.quit())
        poll.start(20)
        loop.exec()
        poll.stop()
        thread.join()
    dialog.close()
    if errors:
        raise errors[0]


def export_dialog(controller, parent: QWidget | None = None,
                  start: str = "weights.safetensors") -> Path | None:
    """File > Export Weights: ask for a file name and write the trained weights there."""
    net = controller.trained_network()
    if net is None:
        QMessageBox.warning(parent, "Export weights", "There are no trained weights to export: "
                            "train the network first.")
        return None
    path, chosen = QFileDialog.getSaveFileName(parent, "Export weights", start, WEIGHTS_FILTER)
    if not path:
        return None
    path = Path(path)
    if path.suffix.lower() not in (".npz", ".safetensors"):
        path = path.with_suffix(".npz" if "npz" in chosen else ".safetensors")
    try:
        export_weights(net.params, path, parent)
    except WeightsError as err:
        QMessageBox.critical(parent, "Export weights", str(err))
        return None
    return path


def import_weights(controller, path: str | PathLike):
    """Load a weights file into the current graph (the controller keeps it as trained weights);
    raises WeightsError naming the first key or shape that does not fit."""
    return controller.load_weights(load_weights(path))


def offer_shared(parent: QWidget, controller, graph, path: Path, err: Exception) -> list | None:
    """Weights that do not fit the graph whole but share parameters with it (a pretrained
    masked-LM encoder for a classifier with a new head): ask, then load the shared ones over fresh
    weights. Returns the keys taken, [] when the person declined or the shapes differ (said in a
    dialog), None when nothing is shared (the caller reports ``err`` as usual)."""
    from layerloom.engine.network import Network
    from layerloom.engine.spec import LayerloomError

    try:
        params = load_weights(path)
    except LayerloomError:
        return None
    config = controller.config()
    net = Network(graph.copy(), seed=config.seed, batch_size=config.batch_size)
    shared = [k for k in net.params if k in params]
    if not shared:
        return None
    answer = QMessageBox.question(
        parent, "Import weights",
        f"{path.name} does not fit this graph whole ({err}).\n\nIt has {len(shared)} parameters "
        f"under this graph's names (a pretrained part, e.g. an encoder): load those and start the "
        f"rest fresh?")
    if answer != QMessageBox.Yes:
        return None
    try:
        taken = net.load_matching(params)
    except LayerloomError as shape_err:
        QMessageBox.critical(parent, "Import weights", str(shape_err))
        return []
    controller.load_weights(net.params)
    return taken
