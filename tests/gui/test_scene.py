"""The scene only draws the graph: it follows the graph's signals, through undo, and never edits."""
from PySide6.QtCore import QPointF
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QGraphicsView

from layerloom.engine.graph import Edge, Graph, Node
from layerloom.engine.serialize import graph_to_dict
from layerloom.engine.shapes import infer_shapes
from layerloom.gui.canvas.scene import GraphScene
from layerloom.gui.commands import AddNodeCommand, ConnectCommand, RemoveNodeCommand, RenameCommand
from tests.gui.canvas_driver import press_move_release


def test_scene_follows_graph_through_undo(qtbot):
    graph, stack, scene = Graph(), QUndoStack(), GraphScene()
    scene.set_graph(graph)
    stack.push(AddNodeCommand(graph, Node("d1", "Dense", {"out_features": 8})))
    stack.push(RemoveNodeCommand(graph, "d1"))
    assert not scene.items_by_id
    stack.undo()
    assert set(scene.items_by_id) == {"d1"}


def test_scene_draws_edges_and_follows_a_rename(qtbot):
    graph, stack, scene = Graph(), QUndoStack(), GraphScene()
    scene.set_graph(graph)
    stack.push(AddNodeCommand(graph, Node("x", "Input", {"shape": [4]})))
    stack.push(AddNodeCommand(graph, Node("d1", "Dense", {"out_features": 8}, (200, 0))))
    stack.push(ConnectCommand(graph, ("x", "y"), ("d1", "x")))
    stack.push(RenameCommand(graph, "d1", "head"))
    assert set(scene.items_by_id) == {"x", "head"}
    assert list(scene.edge_items) == [Edge(("x", "y"), ("head", "x"))]
    assert scene.items_by_id["head"].node_id == "head"
    stack.undo()
    assert set(scene.items_by_id) == {"x", "d1"}
    assert list(scene.edge_items) == [Edge(("x", "y"), ("d1", "x"))]


def test_a_wire_gesture_only_asks_and_leaves_the_graph_alone(qtbot):
    graph = Graph()
    graph.add_node(Node("x", "Input", {"shape": [4]}))
    graph.add_node(Node("d1", "Dense", {}, (300, 0)))
    scene = GraphScene()
    scene.set_graph(graph)
    view = QGraphicsView(scene)
    qtbot.addWidget(view)
    view.resize(800, 500)
    view.show()
    view.centerOn(QPointF(200, 30))
    before = graph_to_dict(graph)
    with qtbot.waitSignal(scene.connect_requested) as asked:
        press_move_release(view, scene.port_item(("x", "y"), True).scenePos(),
                           scene.port_item(("d1", "x"), False).scenePos())
    assert asked.args == [("x", "y"), ("d1", "x")]
    assert graph_to_dict(graph) == before


def test_the_shape_report_labels_edges_and_marks_failing_nodes(qtbot):
    graph = Graph()
    graph.add_node(Node("x", "Input", {"shape": [1, 28, 28]}))
    graph.add_node(Node("d1", "Dense", {}, (300, 0)))
    graph.connect(("x", "y"), ("d1", "x"))
    scene = GraphScene()
    scene.set_graph(graph)
    scene.apply_report(infer_shapes(graph))
    edge_item = scene.edge_items[graph.edges[0]]
    assert edge_item.text == "1×28×28"
    node = scene.items_by_id["d1"]
    assert node.error and "Flatten" in node.toolTip() and node.fix == "Flatten"
    assert node.fix_button.isVisible() and not scene.items_by_id["x"].error
