"""Moving around the canvas and the selection with mouse and keys: pan (middle button, or Space
held with the left button), nudge the selection (arrow keys, Shift for bigger steps), Tab for
quick add under the mouse, Enter to open the one selected block in place and Esc to back out.

An event filter on the view (keys) and its viewport (mouse), so ``GraphView`` keeps only what
it draws and where things land; events it does not use go on to the view unchanged.
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt
from PySide6.QtWidgets import QGraphicsView

NUDGES = {Qt.Key_Left: (-1, 0), Qt.Key_Right: (1, 0), Qt.Key_Up: (0, -1), Qt.Key_Down: (0, 1)}


class ViewNavigation(QObject):
    def __init__(self, view: QGraphicsView):
        super().__init__(view)
        self.view = view  # a GraphView: its scene, document and quick add
        self.last_mouse: QPoint | None = None  # viewport position of the last mouse move
        self._pan_from: QPoint | None = None
        self._space = False
        self.viewport = view.viewport()
        view.installEventFilter(self)
        self.viewport.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if not shiboken6.isValid(self.view):  # the view is being destroyed
            return False
        kind = event.type()
        if watched is self.view and kind == QEvent.KeyPress:
            return self._key_pressed(event)
        if watched is self.view and kind == QEvent.KeyRelease:
            if event.key() == Qt.Key_Space and not event.isAutoRepeat():
                self._space = False
                self.view.viewport().setCursor(Qt.ArrowCursor)
            return False
        if watched is self.viewport and kind in (QEvent.MouseButtonPress,
                                                         QEvent.MouseMove,
                                                         QEvent.MouseButtonRelease):
            return self._pan(event)
        return False

    def mouse_scene_pos(self) -> QPointF:
        """Where the mouse is on the canvas; the view's centre when it is elsewhere."""
        view = self.view
        pos = self.last_mouse
        if pos is None or not view.viewport().rect().contains(pos):
            pos = view.viewport().mapFromGlobal(view.cursor().pos())
        if not view.viewport().rect().contains(pos):
            return view.centre_scene_pos()
        return view.mapToScene(pos)

    def _key_pressed(self, event) -> bool:
        view, levels = self.view, self.view.document.levels
        selected = view.graph_scene.selected_node_ids()
        if event.key() == Qt.Key_Tab:
            view.adding.open_quick_add(self.mouse_scene_pos())
        elif event.key() in (Qt.Key_Return, Qt.Key_Enter) and len(selected) == 1 and \
                levels.enter(selected[0]):
            pass
        elif event.key() == Qt.Key_Escape and levels.go_up():
            pass
        elif event.key() in NUDGES and view.graph_scene.selected_node_ids():
            self._nudge(event)
        elif event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = True
            view.viewport().setCursor(Qt.OpenHandCursor)
        else:
            return False
        event.accept()
        return True

    def _nudge(self, event) -> None:
        """Arrow keys move the selection; a run of nudges is one undo step (merged moves)."""
        dx, dy = NUDGES[event.key()]
        step = 50 if event.modifiers() & Qt.ShiftModifier else 10
        ids = sorted(self.view.graph_scene.selected_node_ids())
        nodes = self.view.document.graph.nodes
        moves = {n: (nodes[n].pos[0] + dx * step, nodes[n].pos[1] + dy * step) for n in ids}
        self.view.document.move_nodes(moves, merge_key="nudge:" + ",".join(ids))

    def _pan(self, event) -> bool:
        view, kind = self.view, event.type()
        if kind == QEvent.MouseButtonPress:
            if not (event.button() == Qt.MiddleButton
                    or (event.button() == Qt.LeftButton and self._space)):
                return False
            self._pan_from = event.position().toPoint()
            view.keep_fitted = False
            view.viewport().setCursor(Qt.ClosedHandCursor)
        elif kind == QEvent.MouseMove:
            self.last_mouse = event.position().toPoint()
            if self._pan_from is None:
                return False
            delta = self.last_mouse - self._pan_from
            self._pan_from = self.last_mouse
            view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() - delta.x())
            view.verticalScrollBar().setValue(view.verticalScrollBar().value() - delta.y())
        else:
            if self._pan_from is None:
                return False
            self._pan_from = None
            view.viewport().setCursor(Qt.OpenHandCursor if self._space else Qt.ArrowCursor)
        event.accept()
        return True
