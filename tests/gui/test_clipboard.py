"""Copy, cut, paste and delete work on the canvas selection; pasted nodes keep internal edges."""
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from layerloom.engine.graph import Edge
from layerloom.engine.serialize import graph_to_dict


def _keys(window, key, modifiers=Qt.ControlModifier):
    window.view.setFocus()
    QTest.keyClick(window.view, key, modifiers)


def test_copy_paste_duplicates_the_selection_with_its_internal_edges(mlp):
    doc, scene = mlp.document, mlp.view.graph_scene
    scene.select_only(["fc1", "act1"])
    _keys(mlp, Qt.Key_C)
    steps = doc.stack.count()
    _keys(mlp, Qt.Key_V)
    new = set(doc.graph.nodes) - {"image", "fc1", "act1", "fc2", "label", "loss"}
    assert new == {"fc3", "act2"}
    assert doc.graph.nodes["fc3"].attrs == doc.graph.nodes["fc1"].attrs
    assert Edge(("fc3", "y"), ("act2", "x")) in doc.graph.edges
    assert not doc.graph.edges_into("fc3") and not doc.graph.edges_from("act2")
    assert sorted(scene.selected_node_ids()) == ["act2", "fc3"]
    assert doc.stack.count() == steps + 1
    a, b = doc.graph.nodes["fc1"].pos, doc.graph.nodes["fc3"].pos
    assert b != a


def test_cut_then_paste_restores_the_nodes_and_their_internal_edge(mlp):
    doc, scene = mlp.document, mlp.view.graph_scene
    scene.select_only(["fc1", "act1"])
    _keys(mlp, Qt.Key_X)
    assert "fc1" not in doc.graph.nodes and "act1" not in doc.graph.nodes
    _keys(mlp, Qt.Key_V)
    assert {"fc1", "act1"} <= set(doc.graph.nodes)
    assert Edge(("fc1", "y"), ("act1", "x")) in doc.graph.edges


def test_pasting_text_that_is_not_a_graph_changes_nothing(mlp):
    doc = mlp.document
    QApplication.clipboard().setText("print('hello')")
    before, steps = graph_to_dict(doc.graph), doc.stack.count()
    _keys(mlp, Qt.Key_V)
    assert graph_to_dict(doc.graph) == before and doc.stack.count() == steps
    assert "Cannot paste" in mlp.statusBar().currentMessage()


def test_delete_removes_selected_nodes_and_edges_in_one_step(mlp):
    doc, scene = mlp.document, mlp.view.graph_scene
    scene.select_only(["act1"])
    scene.edge_items[Edge(("label", "y"), ("loss", "target"))].setSelected(True)
    before = graph_to_dict(doc.graph)
    _keys(mlp, Qt.Key_Delete, Qt.NoModifier)
    assert "act1" not in doc.graph.nodes
    assert doc.graph.edge_into(("loss", "target")) is None
    doc.undo()
    assert graph_to_dict(doc.graph) == before


def test_select_all_selects_every_node(mlp):
    _keys(mlp, Qt.Key_A)
    assert sorted(mlp.view.graph_scene.selected_node_ids()) == sorted(mlp.document.graph.nodes)
