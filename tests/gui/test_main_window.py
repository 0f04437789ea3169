"""The window: docks in place, a panel slot for later tools, the lock, zoom and auto-layout."""
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QKeySequence, QPalette, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel

from layerloom.engine.serialize import graph_to_dict
from layerloom.gui.clipboard import copy_subgraph, paste_subgraph
from layerloom.gui.layout import depths
from tests.gui.canvas_driver import drop_palette_entry, press_move_release


def test_palette_left_canvas_centre_inspector_right(window):
    assert window.centralWidget() is window.view
    assert window.dockWidgetArea(window.palette_dock) == Qt.LeftDockWidgetArea
    assert window.dockWidgetArea(window.inspector_dock) == Qt.RightDockWidgetArea
    assert window.params_label.text() == "0 parameters · 0 B to train"


def test_add_panel_docks_a_widget_and_lists_it_under_view(window):
    dock = window.add_panel(QLabel("loss plot"), Qt.BottomDockWidgetArea, "Training")
    assert window.dockWidgetArea(dock) == Qt.BottomDockWidgetArea
    assert dock.windowTitle() == "Training"
    assert dock.toggleViewAction() in window.panels_menu.actions()
    second = window.add_panel(QLabel("gradients"), Qt.BottomDockWidgetArea, "Gradients")
    QApplication.processEvents()
    assert second in window.tabifiedDockWidgets(dock)


def test_a_locked_document_refuses_structural_edits_but_allows_moves(mlp):
    doc = mlp.document
    doc.set_locked(True, "training runs")
    before, steps = graph_to_dict(doc.graph), doc.stack.count()
    drop_palette_entry(mlp, "ReLU", QPoint(200, 200))
    assert "relu1" not in doc.graph.nodes
    assert doc.remove(["fc1"]) is False and doc.set_attr("fc1", "out_features", 3) is False
    assert not doc.connect(("image", "y"), ("fc2", "x"))
    assert paste_subgraph(doc, copy_subgraph(doc.graph, ["fc1"])) == []
    doc.undo()
    assert graph_to_dict(doc.graph) == before and doc.stack.count() == steps
    assert "training runs" in mlp.statusBar().currentMessage()
    assert mlp.lock_label.isVisibleTo(mlp) and "training runs" in mlp.lock_label.text()
    mlp.view.graph_scene.select_only(["fc1"])
    assert not mlp.inspector.editors["out_features"].isEnabled()
    assert doc.move_nodes({"fc1": (260, 10)})
    doc.set_locked(False)
    assert doc.set_attr("fc1", "out_features", 3)


def test_dragging_a_node_moves_it_in_one_undo_step(mlp):
    doc, view = mlp.document, mlp.view
    item = view.graph_scene.items_by_id["act1"]
    start = item.scenePos() + QPointF(item.width / 2, 8)
    press_move_release(view, start, start + QPointF(0, 120))
    x, y = doc.graph.nodes["act1"].pos
    assert x == 500 and y > 60 and y == int(y)
    assert doc.stack.undoText().startswith("Move")
    doc.undo()
    assert doc.graph.nodes["act1"].pos == (500.0, 0.0) and item.pos() == QPointF(500, 0)


def test_rubber_band_selects_the_nodes_it_covers(mlp):
    view = mlp.view
    rect = view.graph_scene.items_by_id["fc1"].sceneBoundingRect().united(
        view.graph_scene.items_by_id["act1"].sceneBoundingRect())
    press_move_release(view, rect.topLeft() - QPointF(20, 20), rect.bottomRight() + QPointF(20, 20))
    assert sorted(view.graph_scene.selected_node_ids()) == ["act1", "fc1"]


def test_zoom_with_the_wheel_and_fit_with_ctrl_0(mlp):
    view = mlp.view
    view.set_zoom(1.0)
    centre = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(centre, QPointF(view.viewport().mapToGlobal(centre.toPoint())), QPoint(),
                        QPoint(0, 240), Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), wheel)
    assert view.zoom > 1.2
    view.setFocus()
    QTest.keyClick(view, Qt.Key_0, Qt.ControlModifier)
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    for item in view.graph_scene.items_by_id.values():
        assert visible.contains(item.sceneBoundingRect())


def test_middle_button_drag_pans(mlp):
    view = mlp.view
    before = view.mapToScene(view.viewport().rect().center())
    a = view.viewport().rect().center()
    QTest.mousePress(view.viewport(), Qt.MiddleButton, Qt.NoModifier, a)
    QTest.mouseMove(view.viewport(), a + QPoint(120, 0))
    QTest.mouseRelease(view.viewport(), Qt.MiddleButton, Qt.NoModifier, a + QPoint(120, 0))
    after = view.mapToScene(view.viewport().rect().center())
    assert after.x() < before.x() - 50


def test_auto_layout_orders_nodes_left_to_right_by_depth(mlp):
    mlp.resize(2600, 900)  # room for one row (narrower windows fold long chains into bands)
    QApplication.processEvents()
    doc = mlp.document
    for n, x in zip(doc.graph.nodes, (900, 700, 500, 300, 100, 0)):
        doc.move_nodes({n: (x, 400 - x / 3)})
    mlp.actions_by_name["layout"].trigger()
    d, pos = depths(doc.graph), {n: doc.graph.nodes[n].pos for n in doc.graph.nodes}
    chain = ["image", "fc1", "act1", "fc2", "loss"]
    assert [pos[n][0] for n in chain] == sorted(pos[n][0] for n in chain)
    assert d["label"] == d["fc2"] and pos["label"][0] == pos["fc2"][0]
    assert doc.stack.undoText() == "Auto-layout"


def test_the_dark_theme_repaints_the_canvas_dark(window):
    window.set_theme("dark")
    try:
        assert window.view.graph_scene.theme.dark
        assert QApplication.palette().color(QPalette.Window).lightness() < 128
        assert window.settings.value("theme") == "dark"
    finally:
        window.set_theme("light")
    assert not window.view.graph_scene.theme.dark


def test_space_and_left_drag_pans_instead_of_selecting(mlp):
    view = mlp.view
    view.graph_scene.clearSelection()
    view.setFocus()
    before = view.mapToScene(view.viewport().rect().center())
    a = view.viewport().rect().center()
    QTest.keyPress(view, Qt.Key_Space)
    QTest.mousePress(view.viewport(), Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(view.viewport(), a + QPoint(0, 100))
    QTest.mouseRelease(view.viewport(), Qt.LeftButton, Qt.NoModifier, a + QPoint(0, 100))
    QTest.keyRelease(view, Qt.Key_Space)
    after = view.mapToScene(view.viewport().rect().center())
    assert after.y() < before.y() - 50 and not view.graph_scene.selected_node_ids()


def test_recent_files_fill_the_recent_menu(window, tmp_path):
    paths = [tmp_path / f"g{i}.json" for i in range(3)]
    for p in paths:
        window._save_to(p)
    window.recent_menu.aboutToShow.emit()
    names = [a.text() for a in window.recent_menu.actions()]
    assert names == ["g2.json", "g1.json", "g0.json"]


def test_arrow_keys_nudge_the_selection_as_one_undo_step(mlp):
    doc, view = mlp.document, mlp.view
    view.graph_scene.select_only(["fc1", "act1"])
    view.setFocus()
    steps = doc.stack.count()
    for key in (Qt.Key_Right, Qt.Key_Right, Qt.Key_Down):
        QTest.keyClick(view, key)
    assert doc.graph.nodes["fc1"].pos == (270.0, 10.0) and doc.graph.nodes["act1"].pos == (520, 10)
    assert doc.stack.count() == steps + 1
    doc.undo()
    assert doc.graph.nodes["fc1"].pos == (250.0, 0.0)


def _open_window(qtbot, settings):
    from layerloom.gui.main_window import MainWindow

    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_the_dock_layout_comes_back_after_a_restart_and_view_resets_it(qtbot, settings):
    first = _open_window(qtbot, settings)
    first.addDockWidget(Qt.LeftDockWidgetArea, first.inspector_dock)  # as a drag would
    first.palette_dock.close()  # the dock's own close button
    assert first.close()
    # the window's size and place too (the offscreen platform clamps them to its small screen)
    assert settings.value("window/geometry") is not None
    again = _open_window(qtbot, settings)
    assert again.dockWidgetArea(again.inspector_dock) == Qt.LeftDockWidgetArea
    assert not again.palette_dock.isVisible()
    again.actions_by_name["reset_layout"].trigger()
    QApplication.processEvents()
    assert again.dockWidgetArea(again.inspector_dock) == Qt.RightDockWidgetArea
    assert again.palette_dock.isVisible() and again.inspector_dock.isVisible()
    assert again.training.plots_dock.isVisible()


def test_a_saved_layout_that_does_not_fit_is_ignored(qtbot, settings):
    settings.setValue("window/state", b"not a layout")
    settings.setValue("window/geometry", b"\x00\x01")
    w = _open_window(qtbot, settings)
    assert w.dockWidgetArea(w.inspector_dock) == Qt.RightDockWidgetArea
    assert w.palette_dock.isVisible() and w.width() > 0


def test_a_theme_switch_recolours_text_whose_style_sheet_reads_the_palette(window):
    """The trained-weights note is styled "palette(placeholder-text)", which Qt reads when the
    sheet is set: after View > Theme > Dark it must be drawn from the dark palette (a stale
    sheet kept the light panel and text behind)."""
    window.actions_by_name["theme_dark"].trigger()
    try:
        label = window.training.training_panel.weights_label
        image = label.grab().toImage()
        shades = sorted(image.pixelColor(x, y).lightness()
                        for x in range(0, image.width(), 2) for y in range(image.height()))
        assert shades[len(shades) // 2] < 80  # the dark panel (the stale sheet kept it light)
        assert shades[-1] > 100  # and readable text on it
    finally:
        window.actions_by_name["theme_system"].trigger()


def test_help_opens_a_guide_whose_keys_are_the_window_s_own_and_an_about(window):
    from PySide6.QtWidgets import QDialog, QTextBrowser

    window.actions_by_name["guide"].trigger()
    window.actions_by_name["about"].trigger()
    dialogs = {d.windowTitle(): d for d in window.findChildren(QDialog) if d.isVisible()}
    assert set(dialogs) >= {"Layerloom quick guide", "About Layerloom"}
    guide = dialogs["Layerloom quick guide"].findChild(QTextBrowser).toPlainText()
    for name in ("undo", "fit", "layout", "save"):
        action = window.actions_by_name.get(name)
        if action is not None and action.shortcuts():
            assert action.shortcuts()[0].toString(QKeySequence.NativeText) in guide
    assert "Auto-layout" in guide and "Tab (on the canvas)" in guide
    about = dialogs["About Layerloom"].findChild(QTextBrowser).toPlainText()
    assert "Layerloom" in about and "numpy" in about
    assert not dialogs["About Layerloom"].isModal()  # the canvas stays usable beside it
