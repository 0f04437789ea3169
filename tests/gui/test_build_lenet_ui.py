"""LeNet-5 built from an empty canvas through the UI alone equals the bundled sample.

Every node comes from a palette drop (real drag/drop events), every setting from the inspector's
widgets (typed keys, clicks), every edge from a mouse drag between port items."""
import json

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from layerloom.engine import paths
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import graph_from_dict
from layerloom.gui.attr_editors import (BoolEditor, ChoiceEditor, FixedTupleEditor, FloatEditor, IntEditor,
                              TupleEditor)
from tests.gui.canvas_driver import drag_port_to_port, drop_palette_entry, port

SAMPLE = paths.SAMPLES / "lenet5.json"


def _missing() -> str:
    if not SAMPLE.exists():
        return f"{SAMPLE} is not there yet"
    types = {n.get("type") for n in json.loads(SAMPLE.read_text())["nodes"]}
    absent = sorted(t for t in types if t not in LAYERS)
    return f"layer types not registered yet: {', '.join(absent)}" if absent else ""


def type_into(widget, text: str) -> None:
    widget.setFocus()
    widget.selectAll()
    QTest.keyClicks(widget, text)
    QTest.keyClick(widget, Qt.Key_Return)


def set_editor(editor, value) -> None:
    """Operate an inspector editor the way a person would."""
    if isinstance(editor, (IntEditor, FloatEditor)):
        type_into(editor, repr(value))
    elif isinstance(editor, BoolEditor):
        if editor.isChecked() != value:
            QTest.mouseClick(editor, Qt.LeftButton, Qt.NoModifier, QPoint(8, editor.height() // 2))
    elif isinstance(editor, ChoiceEditor):
        editor.setFocus()
        editor.setCurrentIndex(editor.findText(str(value)))
    elif isinstance(editor, FixedTupleEditor):
        for box, v in zip(editor.boxes, value):
            type_into(box, str(v))
    elif isinstance(editor, TupleEditor):
        type_into(editor, ", ".join(str(v) for v in value))
    else:
        type_into(editor, json.dumps(list(value) if isinstance(value, tuple) else value))


def build_through_ui(window, data: dict) -> None:
    """Drop, configure and name each node of ``data``, then wire its edges with the mouse."""
    wanted = graph_from_dict(data)
    viewport = window.view.viewport().rect()
    cols = max(1, (viewport.width() - 40) // 220)
    for i, node in enumerate(wanted.nodes.values()):
        spot = QPoint(90 + (i % cols) * 220, 60 + (i // cols) * 120)
        assert drop_palette_entry(window, node.type, spot)
        inspector = window.inspector
        defaults = dict(LAYERS[node.type].validate_attrs({}))
        for name, value in node.attrs.items():
            if value != defaults[name]:
                set_editor(inspector.editors[name], value)
        if node.frozen:
            box = inspector.frozen_box
            QTest.mouseClick(box, Qt.LeftButton, Qt.NoModifier, QPoint(8, box.height() // 2))
        type_into(inspector.id_edit, node.id)
        assert inspector.node_id == node.id, window.statusBar().currentMessage()
    for edge in wanted.edges:
        view = window.view
        drag_port_to_port(view, port(view, *edge.src, True), port(view, *edge.dst, False))


def structure(graph) -> tuple:
    nodes = {n.id: (n.type, dict(n.attrs), n.frozen) for n in graph.nodes.values()}
    return nodes, sorted((e.src, e.dst) for e in graph.edges)


@pytest.mark.skipif(bool(_missing()), reason=_missing() or "ready")
def test_lenet5_built_through_the_ui_equals_the_sample(window):
    data = json.loads(SAMPLE.read_text())
    build_through_ui(window, data)
    assert structure(window.document.graph) == structure(graph_from_dict(data))
    assert window.document.report.ok, window.document.report.errors
    assert window.params_label.text().startswith("61,706 parameters · ")  # LeNet-5's count
