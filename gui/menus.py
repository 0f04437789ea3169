"""The main window's menus and shortcuts; every action calls one MainWindow or Document method.

``build_menus`` returns what it made (actions by name, the menus filled later); the window keeps
what it needs itself, so nothing here writes attributes onto the window.
"""
from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from layerloom.engine import paths
from layerloom.gui import memory_budget
from layerloom.gui.export_code import (export_onnx, export_pytorch_code, export_training_project,
                                       import_onnx)
from layerloom.gui.help import about_html, guide_html, show_text


@dataclass(frozen=True)
class WindowMenus:
    actions: dict  # name -> QAction (tests and the Help's key table trigger and read them)
    recent: QMenu  # File > Open Recent, filled as it opens
    samples: QMenu  # File > Samples, filled as it opens
    panels: QMenu  # View > Panels: a toggle per dock


def _action(window: QMainWindow, menu: QMenu, text: str, slot, shortcut=None) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        keys = shortcut if isinstance(shortcut, list) else [shortcut]
        action.setShortcuts([QKeySequence(k) for k in keys])
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def build_menus(window: QMainWindow) -> WindowMenus:
    """Create File, Edit, View and Help on the window's menu bar."""
    bar, acts = window.menuBar(), {}
    file = bar.addMenu("&File")
    acts["new"] = _action(window, file, "&New", window.new_graph, QKeySequence.New)
    samples = file.addMenu("New from &Sample")  # templates: Save on one asks where
    samples.aboutToShow.connect(lambda: fill_samples(window, samples))
    acts["open"] = _action(window, file, "&Open…", window.open_dialog, QKeySequence.Open)
    recent = file.addMenu("Open &Recent")
    recent.aboutToShow.connect(lambda: _fill_recent(window, recent))
    file.addSeparator()
    acts["save"] = _action(window, file, "&Save", window.save, QKeySequence.Save)
    acts["save_as"] = _action(window, file, "Save &As…", window.save_as, QKeySequence.SaveAs)
    file.addSeparator()
    acts["export_weights"] = _action(window, file, "&Export Weights…",
                                     lambda: window.training.export_weights(), "Ctrl+E")
    acts["import_weights"] = _action(window, file, "&Import Weights…",
                                     lambda: window.training.import_dialog())
    acts["export_code"] = _action(window, file, "Export &PyTorch Code…",
                                  lambda: export_pytorch_code(window))
    acts["export_project"] = _action(window, file, "Export &Training Project…",
                                     lambda: export_training_project(window))
    acts["export_onnx"] = _action(window, file, "Export ONN&X Model…", lambda: export_onnx(window))
    acts["import_onnx"] = _action(window, file, "Import ONNX &Model…", lambda: import_onnx(window))
    acts["import_run"] = _action(window, file, "Import &Run…",  # a project trained elsewhere
                                 lambda: window.runs.import_dialog())
    save_weights = QAction("Save Trained &Weights with Graph", window)
    save_weights.setCheckable(True)
    save_weights.setChecked(window.settings.value("save_weights", "true") in (True, "true"))
    save_weights.setToolTip("Save also writes <name>.weights.npz beside the graph; Open loads it")
    save_weights.toggled.connect(lambda on: window.settings.setValue("save_weights", on))
    file.addAction(save_weights)
    acts["save_weights"] = save_weights
    file.addSeparator()
    acts["quit"] = _action(window, file, "&Quit", window.close, QKeySequence.Quit)

    edit = bar.addMenu("&Edit")
    doc = window.document
    acts["undo"] = _action(window, edit, "&Undo", doc.undo, QKeySequence.Undo)
    acts["redo"] = _action(window, edit, "&Redo", doc.redo, [QKeySequence.Redo, "Ctrl+Shift+Z"])
    doc.stack.canUndoChanged.connect(acts["undo"].setEnabled)
    doc.stack.canRedoChanged.connect(acts["redo"].setEnabled)
    doc.stack.undoTextChanged.connect(lambda t: acts["undo"].setText(f"&Undo {t}".strip()))
    doc.stack.redoTextChanged.connect(lambda t: acts["redo"].setText(f"&Redo {t}".strip()))
    acts["undo"].setEnabled(False)
    acts["redo"].setEnabled(False)
    edit.addSeparator()
    acts["cut"] = _action(window, edit, "Cu&t", window.clipboard.cut, QKeySequence.Cut)
    acts["copy"] = _action(window, edit, "&Copy", window.clipboard.copy, QKeySequence.Copy)
    acts["paste"] = _action(window, edit, "&Paste", window.clipboard.paste, QKeySequence.Paste)
    acts["delete"] = _action(window, edit, "&Delete", window.delete_selection,
                             [QKeySequence.Delete, "Backspace"])
    acts["select_all"] = _action(window, edit, "Select &All", window.view.graph_scene.select_all,
                                 QKeySequence.SelectAll)
    edit.addSeparator()
    acts["layout"] = _action(window, edit, "Auto-&layout", window.auto_layout, "Ctrl+L")
    adding = window.view.adding
    acts["quick_add"] = _action(window, edit, "&Add Layer…",
                                lambda: adding.open_quick_add(window.view.centre_scene_pos()))
    edit.addSeparator()
    acts["memory_budget"] = _action(window, edit, "&Memory Budget…", lambda: memory_budget.ask(window))
    memory_budget.apply_saved(window)
    _block_actions(window, edit, acts)

    view = bar.addMenu("&View")
    acts["fit"] = _action(window, view, "Zoom to &Fit", window.view.zoom_to_fit, "Ctrl+0")
    acts["zoom_in"] = _action(window, view, "Zoom &In", window.view.zoom_in,
                              [QKeySequence.ZoomIn, "Ctrl+="])
    acts["zoom_out"] = _action(window, view, "Zoom &Out", window.view.zoom_out,
                               QKeySequence.ZoomOut)
    acts["zoom_reset"] = _action(window, view, "&Actual Size", lambda: window.view.set_zoom(1.0),
                                 "Ctrl+1")
    view.addSeparator()
    flow = _action(window, view, "Show &Gradient Flow", lambda: window.statusBar().showMessage(
        window.flow_overlay.set_enabled(acts["gradient_flow"].isChecked()), 10000), "F7")
    flow.setCheckable(True)
    flow.setToolTip("Colour the edges that carry gradient to a trainable parameter; fade the "
                    "nodes whose parameters get none")
    acts["gradient_flow"] = flow
    theme_menu = view.addMenu("&Theme")
    group = QActionGroup(window)
    for mode in ("system", "light", "dark"):
        act = _action(window, theme_menu, mode.capitalize(), lambda m=mode: window.set_theme(m))
        act.setCheckable(True)
        act.setChecked(mode == window.theme_mode)
        group.addAction(act)
        acts[f"theme_{mode}"] = act
    view.addSeparator()
    panels = view.addMenu("&Panels")
    acts["reset_layout"] = _action(window, view, "&Reset Layout", window.reset_layout)

    help_menu = bar.addMenu("&Help")
    acts["guide"] = _action(window, help_menu, "&Quick Guide",
                            lambda: show_text(window, "Layerloom quick guide", guide_html(window)),
                            QKeySequence.HelpContents)
    acts["about"] = _action(window, help_menu, "&About Layerloom",
                            lambda: show_text(window, "About Layerloom", about_html(), (34, 20)))
    return WindowMenus(acts, recent, samples, panels)


def _block_actions(window: QMainWindow, edit: QMenu, acts: dict) -> None:
    """Edit's block entries: group (Ctrl+G), ungroup (Ctrl+Shift+G), open and close in place
    (also Enter and Esc on the canvas), make unique, save to the library."""
    doc, scene = window.document, window.view.graph_scene
    edit.addSeparator()
    acts["group"] = _action(window, edit, "&Group into Block",
                            lambda: doc.blocks.group(scene.selected_node_ids()), "Ctrl+G")

    def on_block(verb: str, slot):
        def run():
            ids = [n for n in scene.selected_node_ids() if doc.graph.definition(n) is not None]
            if len(ids) != 1:
                doc.message.emit(f"Select one block to {verb}")
                return None
            return slot(ids[0])
        return run

    acts["ungroup"] = _action(window, edit, "&Ungroup Block", on_block("ungroup", doc.blocks.ungroup),
                              "Ctrl+Shift+G")
    acts["open_block"] = _action(window, edit, "&Open Block (Enter)",
                                 on_block("open", doc.levels.enter))
    acts["close_block"] = _action(window, edit, "&Close Block (Esc)", doc.levels.go_up)
    acts["make_unique"] = _action(window, edit, "&Make Block Unique",
                                  on_block("make unique", doc.blocks.make_unique))
    acts["save_block"] = _action(window, edit, "&Save Block to Library",
                                 on_block("save", doc.blocks.save_to_library))


def _fill_recent(window: QMainWindow, menu: QMenu) -> None:
    menu.clear()
    files = window.recent_files()
    for path in files:
        menu.addAction(Path(path).name, lambda p=path: window.open_path(p)).setToolTip(path)
    if not files:
        menu.addAction("(none)").setEnabled(False)


def fill_samples(window: QMainWindow, menu: QMenu) -> list[Path]:
    """Rebuilt on every opening, so samples added while the app runs show up."""
    menu.clear()
    samples = sorted(paths.SAMPLES.glob("*.json")) if paths.SAMPLES.is_dir() else []
    for path in samples:
        menu.addAction(path.stem, lambda p=path: window.open_path(p)).setToolTip(str(path))
    if not samples:
        menu.addAction("(no samples found)").setEnabled(False)
    return samples
