"""Help > Quick Guide and Help > About: what a newcomer needs without leaving the window.

The guide's shortcut table is read from the window's own actions, so it can never list a key
that does not work. Both open as ordinary, non-modal windows: the canvas stays usable beside
them while someone follows the steps.
"""
from __future__ import annotations

import html
import platform
from importlib import metadata

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

STEPS = (
    ("Build", "Drag a layer from <b>Layers</b> onto the canvas, or press <b>Tab</b> on the canvas "
              "and type its name. Drag from an output port (right) to an input port (left) to "
              "wire it. Each wire shows the shape of the tensor it carries; a node that cannot "
              "take its input turns red and says why, often with a one-click fix."),
    ("Edit", "Select a node to edit its settings in the <b>Inspector</b>, rename it, or freeze it "
             "(kept fixed while the rest trains). Every edit can be undone."),
    ("Data", "Pick a data set in the <b>Data</b> tab beside the palette and press <b>Load</b>: "
             "the Input and Label nodes take its shapes."),
    ("Train", "Press <b>Train</b> (or <b>Step</b> for a single mini-batch). The <b>Plots</b> show "
              "the loss, the accuracy and every parameter's gradient as they move; a node whose "
              "gradient vanishes or explodes gets a badge."),
    ("Look", "The <b>Inference</b> tab shows a test sample's prediction and any node's "
             "activations; for image classes, draw one to try your own."),
    ("Keep", "Save writes the graph and its trained weights beside it. File > Export writes the "
             "weights, an ONNX model, or PyTorch code that trains at scale; File > Import ONNX "
             "Model reads a model made elsewhere."),
)


def guide_html(window) -> str:
    """The guide: the steps, then every action that has a shortcut, as the window defines it."""
    steps = "".join(f"<p><b>{i}. {title}.</b> {text}</p>"
                    for i, (title, text) in enumerate(STEPS, 1))
    rows = []
    for action in window.actions_by_name.values():
        keys = [k.toString(QKeySequence.NativeText) for k in action.shortcuts()]
        if keys:
            name = html.escape(action.text().replace("&", "").rstrip("…"))
            rows.append(f"<tr><td>{name}</td><td>&nbsp;&nbsp;{html.escape(', '.join(keys))}</td>"
                        f"</tr>")
    rows.append("<tr><td>Add a layer by name</td><td>&nbsp;&nbsp;Tab (on the canvas)</td></tr>")
    return f"<h3>Layerloom in six steps</h3>{steps}<h3>Keys</h3><table>{''.join(rows)}</table>"


def about_html() -> str:
    versions = []
    for package in ("numpy", "numba", "PySide6-Essentials", "pyqtgraph"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    try:
        own = metadata.version("layerloom")
    except metadata.PackageNotFoundError:
        own = "(not installed)"
    return (f"<h3>Layerloom {html.escape(own)}</h3>"
            f"<p>A desktop deep-learning workbench: draw a network, train it, watch it learn.</p>"
            f"<p>The engine is numpy + numba, embedded: no PyTorch at run time.</p>"
            f"<p>Python {platform.python_version()}; {html.escape(', '.join(versions))}.</p>"
            f"<p>MIT licence.</p>")


def show_text(window: QWidget, title: str, body: str, size: tuple = (48, 44)) -> QDialog:
    """A non-modal window with ``body`` (HTML) and a Close button, ``size`` in em; returns it
    (tests read it)."""
    dialog = QDialog(window)
    dialog.setWindowTitle(title)
    dialog.setAttribute(Qt.WA_DeleteOnClose)
    text = QTextBrowser()
    text.setHtml(body)
    text.setOpenExternalLinks(True)
    buttons = QDialogButtonBox(QDialogButtonBox.Close)
    buttons.rejected.connect(dialog.close)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    em = dialog.fontMetrics().horizontalAdvance("M")
    dialog.resize(size[0] * em, size[1] * em)
    dialog.show()
    return dialog
