"""The palette lists the registry by category; drag or double-click puts a layer on the canvas."""
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from layerloom.engine.registry import LAYERS, by_category
from tests.gui.canvas_driver import drop_palette_entry


def test_palette_lists_every_registered_layer_by_category(window):
    entries = window.palette_panel.entries()
    assert entries == {c: [cls.type_id for cls in classes] for c, classes in by_category().items()}
    assert sorted(t for types in entries.values() for t in types) == sorted(LAYERS)
    for type_id, cls in LAYERS.items():
        assert window.palette_panel.item(type_id).toolTip(0) == cls.description()


def test_filter_box_narrows_the_palette(window):
    QTest.keyClicks(window.palette_panel.filter, "loss")
    shown = [t for types in window.palette_panel.entries().values() for t in types]
    assert shown and all("loss" in (t + LAYERS[t].category + LAYERS[t].description()).lower()
                         for t in shown)
    assert "Dense" not in shown
    window.palette_panel.filter.clear()
    assert len([t for ts in window.palette_panel.entries().values() for t in ts]) == len(LAYERS)


def test_dragging_a_palette_entry_onto_the_canvas_creates_the_node_where_dropped(window):
    view = window.view
    drop_at = QPoint(400, 300)
    assert drop_palette_entry(window, "Dense", drop_at)
    graph = window.document.graph
    assert [n.type for n in graph.nodes.values()] == ["Dense"]
    (node_id,) = graph.nodes
    item = view.graph_scene.items_by_id[node_id]
    assert item.sceneBoundingRect().contains(view.mapToScene(drop_at))
    assert window.view.graph_scene.selected_node_ids() == [node_id]
    assert window.inspector.node_id == node_id


def test_a_drop_without_a_layer_payload_is_ignored(window):
    from PySide6.QtCore import QMimeData, QPointF
    from PySide6.QtGui import QDropEvent
    from PySide6.QtWidgets import QApplication

    data = QMimeData()
    data.setText("Dense")
    drop = QDropEvent(QPointF(300, 300), Qt.CopyAction, data, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window.view.viewport(), drop)
    assert not window.document.graph.nodes


def test_double_click_or_enter_adds_at_the_view_centre_without_stacking(window):
    tree = window.palette_panel.tree
    leaf = window.palette_panel.item("ReLU")
    tree.scrollToItem(leaf)  # the palette is longer than the dock
    where = tree.visualItemRect(leaf).center()
    QTest.mouseClick(tree.viewport(), Qt.LeftButton, Qt.NoModifier, where)  # a real double
    QTest.mouseDClick(tree.viewport(), Qt.LeftButton, Qt.NoModifier, where)  # click: 2 presses
    tree.setFocus()
    tree.setCurrentItem(leaf)
    QTest.keyClick(tree, Qt.Key_Return)
    graph = window.document.graph
    assert [n.type for n in graph.nodes.values()] == ["ReLU", "ReLU"]
    first, second = (window.view.graph_scene.items_by_id[n] for n in graph.nodes)
    centre = window.view.centre_scene_pos()
    assert first.sceneBoundingRect().contains(centre)
    assert first.pos() != second.pos()
