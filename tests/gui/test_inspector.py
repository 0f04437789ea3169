"""The inspector's form is generated from the attribute descriptors; edits are live and undoable."""
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QLineEdit, QSpinBox

from layerloom.engine.registry import LAYERS
from layerloom.gui.attr_editors import FixedTupleEditor, INT_LIMIT, TupleEditor

WIDGETS = {"int": QSpinBox, "float": QDoubleSpinBox, "bool": QCheckBox, "choice": QComboBox}


def select(window, node_id):
    window.view.graph_scene.select_only([node_id])
    assert window.inspector.node_id == node_id


def type_into(widget, text):
    widget.setFocus()
    widget.selectAll() if hasattr(widget, "selectAll") else None
    QTest.keyClicks(widget, text)
    QTest.keyClick(widget, Qt.Key_Return)


@pytest.fixture
def inspector(qtbot):
    """The inspector on a document of its own: a form per layer type needs no window (a whole
    window for each of the registry's ~110 types was 0.5 s of setup each); the selection's way
    to the inspector is the window's, tested below through ``select``."""
    from layerloom.gui.document import Document
    from layerloom.gui.inspector import Inspector

    widget = Inspector(Document())
    qtbot.addWidget(widget)
    widget.resize(420, 700)
    widget.show()
    return widget


@pytest.mark.parametrize("type_id", sorted(LAYERS))
def test_the_form_has_one_native_editor_per_attribute_with_its_limits(inspector, type_id):
    node_id = inspector.document.add_node(type_id, (0, 0))
    inspector.show_nodes([node_id])
    assert inspector.node_id == node_id
    editors = inspector.editors
    cls = LAYERS[type_id]
    assert list(editors) == list(cls.attrs)
    for name, attr in cls.attrs.items():
        editor = editors[name]
        if attr.kind == "ints":
            assert isinstance(editor, FixedTupleEditor if attr.length else TupleEditor)
            continue
        assert isinstance(editor, WIDGETS.get(attr.kind, QLineEdit)), name
        if attr.kind in ("int", "float"):
            lo = -INT_LIMIT if attr.kind == "int" else -1e12
            assert editor.minimum() == (attr.min if attr.min is not None else lo)
            if attr.max is not None:
                assert editor.maximum() == attr.max
        if attr.kind == "choice":
            assert [editor.itemText(i) for i in range(editor.count())] == [str(c) for c in
                                                                          attr.choices]
        assert editor.toolTip() == attr.doc


def test_editing_a_spin_box_applies_live_and_undo_updates_the_form(mlp):
    select(mlp, "fc1")
    spin = mlp.inspector.editors["out_features"]
    type_into(spin, "48")
    assert mlp.document.graph.nodes["fc1"].attrs["out_features"] == 48
    assert mlp.view.graph_scene.items_by_id["fc1"].title == "Dense 48"
    mlp.document.undo()
    assert spin.value() == 32


def test_the_tuple_and_choice_editors_apply(mlp):
    select(mlp, "image")
    type_into(mlp.inspector.editors["shape"], "784")
    assert mlp.document.graph.nodes["image"].attrs["shape"] == (784,)
    combo = mlp.inspector.editors["dtype"]
    combo.setCurrentText("int64")
    assert mlp.document.graph.nodes["image"].attrs["dtype"] == "int64"


def test_the_id_is_renamed_and_must_stay_unique(mlp):
    select(mlp, "fc1")
    edit = mlp.inspector.id_edit
    type_into(edit, "hidden")
    assert "hidden" in mlp.document.graph.nodes and mlp.inspector.node_id == "hidden"
    assert mlp.view.graph_scene.items_by_id["hidden"].node_id == "hidden"
    type_into(edit, "fc2")
    assert "hidden" in mlp.document.graph.nodes and edit.text() == "hidden"
    assert "already exists" in mlp.statusBar().currentMessage()


def test_the_frozen_toggle_is_drawn_and_undoable(mlp):
    select(mlp, "fc1")
    box = mlp.inspector.frozen_box
    QTest.mouseClick(box, Qt.LeftButton, Qt.NoModifier, QPoint(8, box.height() // 2))
    item = mlp.view.graph_scene.items_by_id["fc1"]
    assert mlp.document.graph.nodes["fc1"].frozen and item.frozen
    mlp.document.undo()
    assert not item.frozen and not box.isChecked()
    mlp.document.redo()
    assert box.isChecked()
    mlp.view.graph_scene.clearSelection()
    assert item._border_pen().style() == Qt.DashLine  # frozen nodes are drawn dashed, hatched


def test_several_selected_nodes_show_a_hint_and_none_show_the_empty_page(mlp):
    mlp.view.graph_scene.select_only(["fc1", "fc2"])
    assert mlp.inspector.node_id is None
    assert any("2 nodes selected" in w.text() for w in mlp.inspector.findChildren(QLabel))
    mlp.view.graph_scene.clearSelection()
    assert mlp.inspector.node_id is None


def test_the_inspector_shows_the_output_shape_parameters_and_the_error(mlp):
    select(mlp, "fc1")
    assert mlp.inspector.error_label.text() == mlp.document.report.errors["fc1"]
    mlp.document.set_attr("image", "shape", (784,))
    assert not mlp.inspector.error_label.isVisibleTo(mlp.inspector)
    assert "32" in mlp.inspector.shape_label.text()
    assert f"{784 * 32 + 32:,}" in mlp.inspector.shape_label.text()


def test_the_float_editor_takes_scientific_notation_and_keeps_its_limits(qtbot):
    from layerloom.engine.spec import Float
    from layerloom.gui.attr_editors import FloatEditor

    editor = FloatEditor(Float(1e-5, "epsilon", min=0.0, max=1.0))
    qtbot.addWidget(editor)
    editor.show()
    edits = []
    editor.edited.connect(edits.append)
    editor.set_value(1e-5)
    assert editor.text() == "1e-05" and not edits
    type_into(editor, "2.5e-7")
    type_into(editor, "-3")  # below the minimum: not accepted
    assert edits == [2.5e-7] and editor.value() == 2.5e-7
