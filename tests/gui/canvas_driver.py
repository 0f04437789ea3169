"""Drive the canvas as a person does: real drop events and real mouse events on port items."""
from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from layerloom.gui.canvas.port_item import PortItem


def _drag_event(cls, pos: QPoint, data):
    args = (Qt.CopyAction, data, Qt.LeftButton, Qt.NoModifier)
    try:  # QPoint in PySide6 6.11, QPointF in 6.12 (PLATFORM-NOTES)
        return cls(pos, *args)
    except TypeError:
        return cls(QPointF(pos), *args)


def drop_palette_entry(window, type_id: str, viewport_pos: QPoint) -> bool:
    """Drag a palette leaf onto the canvas: the palette's own mime data, real drag/drop events."""
    leaf = window.palette_panel.item(type_id)
    data = window.palette_panel.tree.mimeData([leaf])
    viewport = window.view.viewport()
    enter = _drag_event(QDragEnterEvent, viewport_pos, data)
    QApplication.sendEvent(viewport, enter)
    move = _drag_event(QDragMoveEvent, viewport_pos, data)
    QApplication.sendEvent(viewport, move)
    drop = QDropEvent(QPointF(viewport_pos), Qt.CopyAction, data, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(viewport, drop)
    return enter.isAccepted() and drop.isAccepted()


def press_move_release(view, start: QPointF, end: QPointF, steps: int = 4) -> None:
    """A left-button drag between two scene points, as mouse events on the viewport."""
    viewport = view.viewport()
    a, b = view.mapFromScene(start), view.mapFromScene(end)
    QTest.mouseMove(viewport, a)
    QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, a)
    for i in range(1, steps + 1):
        QTest.mouseMove(viewport, a + (b - a) * (i / steps))
    QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, b)


def port(view, node_id: str, name: str, output: bool) -> PortItem:
    return view.graph_scene.port_item((node_id, name), output)


def drag_port_to_port(view, src: PortItem, dst: PortItem) -> None:
    """Scroll/zoom so both ports are on screen, then drag from one to the other."""
    rect = src.sceneBoundingRect().united(dst.sceneBoundingRect())
    view.ensure_visible(rect)
    press_move_release(view, src.scenePos(), dst.scenePos())


def drag_port_to(view, src: PortItem, scene_pos: QPointF) -> None:
    box = src.sceneBoundingRect()
    rect = box.united(box.translated(scene_pos - src.scenePos()))
    view.ensure_visible(rect)
    press_move_release(view, src.scenePos(), scene_pos)


def viewport_point(view, scene_pos: QPointF) -> QPoint:
    return view.mapFromScene(scene_pos)
