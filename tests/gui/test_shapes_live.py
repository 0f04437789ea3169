"""Shapes are live: edges carry their tensor shapes, failing nodes turn red until fixed."""
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from layerloom.engine.graph import Edge
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import graph_to_dict
from layerloom.engine.shapes import infer_shapes, param_counts


def test_edges_show_the_shape_flowing_through_them(mlp):
    doc = mlp.document
    doc.set_attr("image", "shape", (784,))
    items = mlp.view.graph_scene.edge_items
    assert items[Edge(("image", "y"), ("fc1", "x"))].text == "784"
    assert items[Edge(("fc1", "y"), ("act1", "x"))].text == "32"
    doc.set_attr("fc1", "out_features", 64)
    assert items[Edge(("fc1", "y"), ("act1", "x"))].text == "64"
    assert mlp.view.graph_scene.items_by_id["fc1"].title == "Dense 64"


def test_a_shape_error_turns_the_node_red_and_the_fix_clears_it_at_once(mlp):
    scene, doc = mlp.view.graph_scene, mlp.document
    fc1 = scene.items_by_id["fc1"]
    message = infer_shapes(doc.graph).errors["fc1"]
    assert fc1.error == message and fc1.toolTip() == message
    assert message in mlp.statusBar().currentMessage()
    assert ">1 error<" in mlp.problems_label.text()
    assert not scene.items_by_id["image"].error
    doc.set_attr("image", "shape", (784,))  # the person gives the input a vector shape instead
    assert fc1.error is None and fc1.toolTip().startswith("Dense · ")
    assert mlp.statusBar().currentMessage() == "" and "error" not in mlp.problems_label.text()
    doc.undo()
    assert fc1.error == message


def test_the_status_bar_counts_every_parameter(mlp):
    doc = mlp.document
    doc.set_attr("image", "shape", (784,))
    total = sum(param_counts(doc.graph).values())
    assert total == 784 * 32 + 32 + 32 * 10 + 10
    assert mlp.params_label.text().startswith(f"{total:,} parameters · ")


@pytest.mark.skipif("Flatten" not in LAYERS, reason="the Flatten layer is not registered yet")
def test_one_click_on_the_proposed_fix_inserts_it_undoably(mlp):
    scene, doc, view = mlp.view.graph_scene, mlp.document, mlp.view
    before = graph_to_dict(doc.graph)
    button = scene.items_by_id["fc1"].fix_button
    assert button.isVisible() and button.text == "Insert Flatten"
    view.ensure_visible(button.sceneBoundingRect())
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier,
                     view.mapFromScene(button.sceneBoundingRect().center()))
    (flat,) = [n for n in doc.graph.nodes.values() if n.type == "Flatten"]
    assert doc.graph.edge_into(("fc1", "x")).src == (flat.id, "y")
    assert doc.graph.edge_into((flat.id, "x")).src == ("image", "y")
    assert doc.report.ok and scene.items_by_id["fc1"].error is None
    assert doc.stack.undoText() == "Insert Flatten"
    doc.undo()
    assert graph_to_dict(doc.graph) == before
