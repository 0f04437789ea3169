"""New nodes land where they can be wired: Tab twice at one spot puts the second node beside
the first with room for a wire, and Insert Flatten never drops the node on another one."""
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

GAP = 60  # a wire and its shape label need this much room between two nodes


def tab_add(window, text: str, at: QPoint) -> str:
    view, before = window.view, set(window.document.graph.nodes)
    QTest.mouseMove(view.viewport(), at)
    view.setFocus()
    QTest.keyClick(view, Qt.Key_Tab)
    QTest.keyClicks(view.quick_add.edit, text)
    QTest.keyClick(view.quick_add.edit, Qt.Key_Return)
    (new,) = set(window.document.graph.nodes) - before
    return new


def rect(window, node_id: str):
    return window.view.graph_scene.items_by_id[node_id].sceneBoundingRect()


def test_tab_twice_at_one_spot_leaves_room_to_wire_the_two(window):
    at = QPoint(420, 260)
    first = tab_add(window, "dense", at)
    second = tab_add(window, "relu", at)
    a, b = rect(window, first), rect(window, second)
    assert not a.intersects(b)
    assert b.left() - a.right() >= GAP - 8  # bounding rects carry a few pixels of halo
    scene, doc = window.view.graph_scene, window.document
    out_port = scene.items_by_id[first].outputs["y"]
    in_port = scene.items_by_id[second].inputs["x"]
    assert in_port.scenePos().x() - out_port.scenePos().x() >= GAP
    assert doc.connect((first, "y"), (second, "x"))


def test_insert_flatten_lands_clear_of_every_node(mlp):
    doc, scene, view = mlp.document, mlp.view.graph_scene, mlp.view
    blocker = doc.add_node("ReLU", (125, 110))  # where the fix used to put its node
    button = scene.items_by_id["fc1"].fix_button
    view.ensure_visible(button.sceneBoundingRect())
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier,
                     view.mapFromScene(button.sceneBoundingRect().center()))
    (flat,) = [n for n in doc.graph.nodes.values() if n.type == "Flatten"]
    mine = rect(mlp, flat.id)
    assert all(not mine.intersects(rect(mlp, other)) for other in doc.graph.nodes
               if other != flat.id)
    assert blocker in doc.graph.nodes and doc.graph.edge_into(("fc1", "x")).src == (flat.id, "y")


def test_a_graph_broken_on_its_own_is_not_blamed_on_the_data(window):
    from pathlib import Path

    assert window.open_path(Path(__file__).resolve().parents[2] / "samples" / "mlp_spirals.json",
                            ask=False)
    doc, data = window.document, window.training.dataset_panel
    assert data.fit_ok
    doc.remove(edges=[doc.graph.edge_into(("fc2", "x"))])
    text = data.fit_label.text()
    assert not data.fit_ok and "problem of its own" in text and "has samples of" not in text
