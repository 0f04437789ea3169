"""Wiring with the mouse: drag from an output port to an input port; refusals; detaching edges."""
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from layerloom.engine.graph import Edge
from layerloom.engine.serialize import graph_to_dict
from layerloom.gui.canvas.edge_item import WireItem
from layerloom.gui.quick_add import accepts
from tests.gui.canvas_driver import drag_port_to, drag_port_to_port, port
from tests.gui.conftest import MLP_NODES, build


def _two_nodes(window):
    build(window.document, [("image", "Input", {"shape": (4,)}, (0, 0)),
                            ("fc", "Dense", {"out_features": 3}, (300, 40))], [])
    window.view.zoom_to_fit()


def test_dragging_from_an_output_to_an_input_port_connects_them(window):
    _two_nodes(window)
    view, scene = window.view, window.view.graph_scene
    src, dst = port(view, "image", "y", True), port(view, "fc", "x", False)
    a, b = view.mapFromScene(src.scenePos()), view.mapFromScene(dst.scenePos())
    QTest.mousePress(view.viewport(), Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(view.viewport(), (a + b) / 2)
    wires = [i for i in scene.items() if isinstance(i, WireItem)]
    assert len(wires) == 1 and not wires[0].path().isEmpty()  # the rubber band follows
    QTest.mouseMove(view.viewport(), b)
    assert dst.highlight == "ok"
    QTest.mouseRelease(view.viewport(), Qt.LeftButton, Qt.NoModifier, b)
    assert window.document.graph.edges == [Edge(("image", "y"), ("fc", "x"))]
    assert not [i for i in scene.items() if isinstance(i, WireItem)]
    assert dst.highlight is None
    assert scene.edge_items[Edge(("image", "y"), ("fc", "x"))].text == "4"


def _refused(window, src, dst, words: str) -> None:
    doc = window.document
    before, steps = graph_to_dict(doc.graph), doc.stack.count()
    drag_port_to_port(window.view, src, dst)
    assert graph_to_dict(doc.graph) == before and doc.stack.count() == steps
    assert words in window.statusBar().currentMessage()


def test_a_taken_input_is_refused_with_a_status_message(mlp):
    view = mlp.view
    _refused(mlp, port(view, "image", "y", True), port(view, "act1", "x", False),
             "already connected")


def test_a_cycle_is_refused_with_a_status_message(mlp):
    doc, view = mlp.document, mlp.view
    doc.disconnect(doc.graph.edge_into(("fc1", "x")))
    _refused(mlp, port(view, "fc2", "y", True), port(view, "fc1", "x", False), "cycle")


def test_an_output_dropped_on_an_output_is_refused(mlp):
    view = mlp.view
    _refused(mlp, port(view, "fc1", "y", True), port(view, "act1", "y", True), "output")


def test_a_bad_target_lights_up_red_while_hovered(mlp):
    view = mlp.view
    src, dst = port(view, "image", "y", True), port(view, "act1", "x", False)
    a, b = view.mapFromScene(src.scenePos()), view.mapFromScene(dst.scenePos())
    QTest.mousePress(view.viewport(), Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(view.viewport(), b)
    assert dst.highlight == "bad"
    QTest.mouseRelease(view.viewport(), Qt.LeftButton, Qt.NoModifier, b)


def test_dragging_an_edges_end_onto_empty_canvas_detaches_it(mlp):
    doc, view = mlp.document, mlp.view
    edge = Edge(("fc1", "y"), ("act1", "x"))
    drag_port_to(view, port(view, "act1", "x", False), QPointF(600, 400))
    assert edge not in doc.graph.edges and len(doc.graph.edges) == 4
    assert edge not in view.graph_scene.edge_items
    doc.undo()
    assert doc.graph.edges[1] == edge and view.graph_scene.edge_items[edge].isVisible()


def test_dragging_an_edges_end_to_another_input_reconnects_it_in_one_step(mlp):
    doc, view = mlp.document, mlp.view
    build(doc, [("spare", "ReLU", {}, (500, 200))], [])
    steps = doc.stack.count()
    drag_port_to_port(view, port(view, "act1", "x", False), port(view, "spare", "x", False))
    assert Edge(("fc1", "y"), ("spare", "x")) in doc.graph.edges
    assert doc.graph.edge_into(("act1", "x")) is None
    assert doc.stack.count() == steps + 1
    doc.undo()
    assert doc.graph.edge_into(("act1", "x")) == Edge(("fc1", "y"), ("act1", "x"))


def test_an_output_feeds_many_inputs(mlp):
    doc, view = mlp.document, mlp.view
    build(doc, [("spare", "ReLU", {}, (250, 200))], [])
    drag_port_to_port(view, port(view, "image", "y", True), port(view, "spare", "x", False))
    assert len(doc.graph.edges_from("image")) == 2


def test_a_wire_dropped_on_a_node_body_takes_its_free_input(mlp):
    doc, view = mlp.document, mlp.view
    build(doc, [("spare", "ReLU", {}, (250, 220))], [])
    body = view.graph_scene.items_by_id["spare"].sceneBoundingRect().center()
    drag_port_to(view, port(view, "image", "y", True), body)
    assert Edge(("image", "y"), ("spare", "x")) in doc.graph.edges


def test_a_wire_released_on_empty_canvas_offers_matching_layers_and_connects_one(mlp):
    doc, view = mlp.document, mlp.view
    drop = QPointF(300, 420)
    drag_port_to(view, port(view, "image", "y", True), drop)
    popup = view.quick_add
    assert popup.isVisible() and popup.shape_hint == (None, 1, 28, 28)
    listed = popup.types()
    fits = [accepts(t, popup.shape_hint) for t in listed]
    assert any(fits) and fits == sorted(fits, reverse=True)  # every match before every misfit
    assert "Input" not in listed and "Label" not in listed  # nothing without an input
    QTest.keyClicks(popup.edit, "relu")
    QTest.keyClick(popup.edit, Qt.Key_Return)
    assert not popup.isVisible()
    (new,) = set(doc.graph.nodes) - {n for n, *_ in MLP_NODES}
    assert doc.graph.nodes[new].type == "ReLU"
    assert Edge(("image", "y"), (new, "x")) in doc.graph.edges
    item = view.graph_scene.items_by_id[new]
    assert (item.sceneBoundingRect().adjusted(-20, -20, 20, 20)).contains(drop)
    doc.undo()
    assert new not in doc.graph.nodes
