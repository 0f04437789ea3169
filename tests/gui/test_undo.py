"""Every edit is one undo step, and undo/redo restore exactly the previous graph (as saved JSON)."""
import json

import pytest

from layerloom.engine.graph import Edge, GraphError
from layerloom.engine.serialize import graph_to_dict
from layerloom.gui.clipboard import copy_subgraph, paste_subgraph
from layerloom.gui.layout import layered_positions


def snapshot(doc) -> str:
    return json.dumps(graph_to_dict(doc.graph))


EDITS = [
    ("add", lambda d: d.add_node("ReLU", (100, 300))),
    ("connect", lambda d: d.connect(("image", "y"), ("relu1", "x"))),
    ("set attr", lambda d: d.set_attr("fc1", "out_features", 48)),
    ("set bool", lambda d: d.set_attr("fc1", "bias", False)),
    ("rename", lambda d: d.rename("fc1", "hidden")),
    ("freeze", lambda d: d.set_frozen("hidden", True)),
    ("insert fix", lambda d: d.compound.insert_fix("hidden")),
    ("move", lambda d: d.move_nodes({"act1": (480, 60), "fc2": (800, 20)})),
    ("reconnect", lambda d: d.compound.reconnect(Edge(("image", "y"), ("relu1", "x")),
                                                 ("hidden", "y"), ("relu1", "x"))),
    ("disconnect", lambda d: d.disconnect(Edge(("label", "y"), ("loss", "target")))),
    ("delete middle node", lambda d: d.remove(["act1"])),
    ("delete with edges", lambda d: d.remove(["hidden", "image"])),
    ("paste", lambda d: paste_subgraph(d, copy_subgraph(d.graph, ["fc2", "loss"]))),
    ("layout", lambda d: d.move_nodes(layered_positions(d.graph), text="Auto-layout")),
]


def test_undo_and_redo_restore_every_state_exactly(mlp):
    doc = mlp.document
    doc.stack.clear()
    states = [snapshot(doc)]
    for name, edit in EDITS:
        steps = doc.stack.count()
        edit(doc)
        assert doc.stack.count() == steps + 1, name  # one edit, one undo step
        states.append(snapshot(doc))
        assert states[-1] != states[-2], name
    for expected in reversed(states[:-1]):
        doc.undo()
        assert snapshot(doc) == expected
    for expected in states[1:]:
        doc.redo()
        assert snapshot(doc) == expected


def test_the_scene_matches_the_graph_after_undo_and_redo(mlp):
    doc, scene = mlp.document, mlp.view.graph_scene
    for _, edit in EDITS:
        edit(doc)
    while doc.stack.canUndo():
        doc.undo()
        assert set(scene.items_by_id) == set(doc.graph.nodes)
        assert set(scene.edge_items) == set(doc.graph.edges)
        for node_id, item in scene.items_by_id.items():
            assert (item.pos().x(), item.pos().y()) == doc.graph.nodes[node_id].pos


def test_repeated_edits_of_one_attribute_merge_into_one_step(mlp):
    doc = mlp.document
    steps = doc.stack.count()
    for units in (40, 41, 42):
        doc.set_attr("fc1", "out_features", units)
    assert doc.stack.count() == steps + 1
    doc.undo()
    assert doc.graph.nodes["fc1"].attrs["out_features"] == 32
    doc.redo()
    doc.set_attr("fc2", "out_features", 5)  # another attribute: a new step
    assert doc.stack.count() == steps + 2


def test_editing_an_attribute_back_to_its_old_value_leaves_no_step(mlp):
    doc = mlp.document
    steps = doc.stack.count()
    doc.set_attr("fc1", "out_features", 40)
    doc.set_attr("fc1", "out_features", 32)
    assert doc.stack.count() == steps


def test_moves_with_one_merge_key_merge(mlp):
    doc = mlp.document
    steps = doc.stack.count()
    for x in (10, 20, 30):
        doc.move_nodes({"fc1": (250 + x, 0)}, merge_key="nudge")
    assert doc.stack.count() == steps + 1
    doc.undo()
    assert doc.graph.nodes["fc1"].pos == (250.0, 0.0)


def test_refused_edits_never_reach_the_undo_stack(mlp):
    doc = mlp.document
    steps, before = doc.stack.count(), snapshot(doc)
    assert not doc.connect(("image", "y"), ("act1", "x"))
    assert not doc.rename("fc1", "fc2")
    assert not doc.rename("fc1", "2bad")
    assert not doc.set_attr("fc1", "out_features", 0)
    assert doc.add_node("NoSuchLayer", (0, 0)) is None
    assert doc.stack.count() == steps and snapshot(doc) == before


def test_ctrl_z_and_ctrl_shift_z_drive_the_stack(mlp, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    doc = mlp.document
    before = snapshot(doc)
    doc.set_attr("fc1", "out_features", 7)
    after = snapshot(doc)
    mlp.view.setFocus()
    QTest.keyClick(mlp.view, Qt.Key_Z, Qt.ControlModifier)
    assert snapshot(doc) == before
    QTest.keyClick(mlp.view, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert snapshot(doc) == after


def test_a_refused_edit_says_the_graphs_own_words_and_pushes_nothing(mlp):
    """The rules live in the engine's Graph; the document asks it and never restates them."""
    doc, said = mlp.document, []
    doc.message.connect(said.append)
    steps = doc.stack.count()
    refused = [(lambda: doc.rename("fc1", "class"), lambda: doc.graph.check_rename("fc1", "class")),
               (lambda: doc.rename("fc1", "fc2"), lambda: doc.graph.check_rename("fc1", "fc2")),
               (lambda: doc.set_attr("fc1", "bias", "yes"),
                lambda: doc.graph.check_attr("fc1", "bias", "yes")),
               (lambda: doc.add_node("Teleporter", (0, 0)),
                lambda: doc.graph.new_node("Teleporter")),
               (lambda: doc.add_node("Dense", (0, 0), {"out_features": 0}),
                lambda: doc.graph.new_node("Dense", attrs={"out_features": 0}))]
    for edit, rule in refused:
        with pytest.raises(GraphError) as err:
            rule()
        assert not edit()
        assert said[-1] == str(err.value)
    assert doc.stack.count() == steps
