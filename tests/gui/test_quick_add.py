"""Quick add: Tab (or right-click on empty canvas), type, Enter: the layer lands under the mouse."""
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from layerloom.engine.registry import LAYERS
from layerloom.gui.quick_add import accepts, ranked


def quick_add(window, text: str, at: QPoint) -> str:
    view = window.view
    QTest.mouseMove(view.viewport(), at)
    view.setFocus()
    QTest.keyClick(view, Qt.Key_Tab)
    assert view.quick_add.isVisible()
    QTest.keyClicks(view.quick_add.edit, text)
    QTest.keyClick(view.quick_add.edit, Qt.Key_Return)
    assert not view.quick_add.isVisible()
    (node_id,) = window.document.graph.nodes
    return node_id


def test_tab_then_typing_and_enter_adds_the_layer_under_the_mouse(window):
    at = QPoint(500, 300)
    node_id = quick_add(window, "dense", at)
    assert window.document.graph.nodes[node_id].type == "Dense"
    item = window.view.graph_scene.items_by_id[node_id]
    assert item.sceneBoundingRect().contains(window.view.mapToScene(at))


@pytest.mark.skipif("Conv2D" not in LAYERS, reason="the Conv2D layer is not registered yet")
def test_conv_and_enter_adds_a_conv2d(window):
    node_id = quick_add(window, "conv", QPoint(400, 250))
    assert window.document.graph.nodes[node_id].type == "Conv2D"


def test_right_click_on_empty_canvas_opens_quick_add_there(window):
    viewport = window.view.viewport()
    at = QPoint(300, 200)
    event = QContextMenuEvent(QContextMenuEvent.Mouse, at, viewport.mapToGlobal(at))
    QApplication.sendEvent(viewport, event)
    popup = window.view.quick_add
    assert popup.isVisible() and popup.shape_hint is None
    assert sorted(popup.types()) == sorted(LAYERS)
    QTest.keyClick(popup.edit, Qt.Key_Escape)
    assert not popup.isVisible() and not window.document.graph.nodes


def test_arrow_keys_choose_another_entry(window):
    view = window.view
    view.adding.open_quick_add(view.centre_scene_pos())
    QTest.keyClicks(view.quick_add.edit, "loss")
    second = view.quick_add.types()[1]
    QTest.keyClick(view.quick_add.edit, Qt.Key_Down)
    QTest.keyClick(view.quick_add.edit, Qt.Key_Return)
    assert [n.type for n in window.document.graph.nodes.values()] == [second]


def test_names_that_start_with_the_text_come_first():
    types = [t for t, _ in ranked("l")]
    starts = [t.lower().startswith("l") for t in types]
    assert starts == sorted(starts, reverse=True) and starts[0]


def test_with_a_wire_shape_layers_that_accept_it_come_first_and_sources_are_left_out():
    rows = ranked("", (None, 1, 28, 28))
    flags = [ok for _, ok in rows]
    assert any(flags) and flags == sorted(flags, reverse=True)
    assert all(LAYERS[t].inputs for t, _ in rows)
    assert all(accepts(t, (None, 1, 28, 28)) == ok for t, ok in rows)
    assert not accepts("Dense", (None, 1, 28, 28)) and accepts("Dense", (None, 784))
