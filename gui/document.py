"""The open project with its undo history: the one edit API every gesture goes through.

Edits of one command are methods here; edits made of several commands (a node added on a
released wire, a reconnection, an inserted fix, a paste) are on ``document.compound``. Each
asks the rules' owners first (the engine's ``Graph``, its training settings); a refused edit
never reaches the undo stack and its one-line reason goes out on ``message`` for the status
bar. Shape inference runs after every change and goes out on ``report_changed``.

The edits act on ``graph``: the level the canvas shows (``levels``), which is the model itself or
a block opened in place; ``model`` is always the whole model. Edits that restructure around
blocks (group, ungroup, a library block) are on ``document.blocks``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import shiboken6
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from layerloom.engine.analyze import dangling_nodes
from layerloom.engine.data.location import rebase_data
from layerloom.engine.graph import Edge, Graph, GraphError
from layerloom.engine.serialize import Project, load_project, save_project
from layerloom.engine.shapes import ShapeReport, batch_size_of, infer_shapes, param_counts
from layerloom.engine.training_config import NEW_PROJECT, SettingsError, check_settings
from layerloom.gui import commands as cmd
from layerloom.gui.block_edits import BlockEdits
from layerloom.gui.compound_edits import CompoundEdits
from layerloom.gui.levels import Levels


class Document(QObject):
    """Project + QUndoStack + path + dirty flag (+ a lock the training controller sets)."""

    message = Signal(str)  # a refused edit or a notice, for the status bar
    report_changed = Signal(object)  # the shown level's ShapeReport after every change
    level_changed = Signal(object)  # the Graph now shown: a block opened or closed
    library_changed = Signal(object)  # the Path of a block just saved to the block library
    project_replaced = Signal(object)  # the new Graph after New / Open
    path_changed = Signal(object)  # Path | None
    dirty_changed = Signal(bool)
    locked_changed = Signal(bool)
    select_requested = Signal(list)  # node ids an edit wants selected (a new node, a paste)
    section_changed = Signal(str)  # "training" or "data" changed (an edit, its undo or redo)

    def __init__(self, project: Project | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.stack = QUndoStack(self)
        # the stack says "clean" once more while it is destroyed: only a live document tells
        self.stack.cleanChanged.connect(
            lambda clean: shiboken6.isValid(self) and self.dirty_changed.emit(not clean))
        self.path: Path | None = None
        self.data_home: Path | None = None  # the file whose folder relative data paths start from
        self.locked, self.lock_reason = False, ""
        self.project: Project | None = None
        self.report, self.params, self.dangling = ShapeReport(), {}, frozenset()  # shown level
        self.model_report, self.total_params = ShapeReport(), 0  # of the whole model
        self.compound = CompoundEdits(self)  # edits of several commands: one undo step each
        self.blocks = BlockEdits(self)  # group, ungroup, library blocks
        self.model = Graph()  # the whole model (what is saved, trained and exported)
        self.levels = Levels(self.model, self)
        self.levels.changed.connect(self._recompute)
        self._replace(project or Project(Graph()), None, None)
        self.section_changed.connect(lambda name: name == "training" and self.recompute())

    # ------------------------------------------------------------------ state
    @property
    def graph(self) -> Graph:
        """The level the canvas shows and edits go to: the model, or a block opened in place."""
        return self.levels.graph

    @property
    def dirty(self) -> bool:
        return not self.stack.isClean()

    def set_locked(self, locked: bool, reason: str = "") -> None:
        """While locked (training runs) structural edits, undo and redo are refused; moves pass."""
        self.locked, self.lock_reason = bool(locked), reason if locked else ""
        self.locked_changed.emit(self.locked)

    def refuse_if_locked(self) -> bool:
        """True (and the reason on ``message``) while structural edits are refused."""
        if self.locked:
            self.message.emit(f"The graph is locked while {self.lock_reason or 'busy'}")
        return self.locked

    def _recompute(self, level: Graph | None = None) -> None:
        """After a change of the model (inferred again), or of the ``level`` shown. Shapes,
        parameter counts and the memory check at the project's batch size, all from declared
        shapes: an edit to a huge width allocates nothing."""
        if level is None:
            self.model_report = infer_shapes(self.model, batch_size_of(self.project.training))
            counts = param_counts(self.model, self.model_report)
            dangling = frozenset(dangling_nodes(self.model))
            # the parameters that train: a node leading to no loss is left out (Analyze warns)
            self.total_params = sum(n for k, n in counts.items() if k not in dangling)
            if self.levels.follow_model():  # its path was cut: this ran again with the level
                return
        self.report = self.levels.report(self.model_report)
        self.params = param_counts(self.graph, self.report)
        self.dangling = frozenset(dangling_nodes(self.graph))
        if level is not None:
            self.level_changed.emit(level)
        self.report_changed.emit(self.report)

    recompute = _recompute  # everything again: the memory budget or the batch size changed

    # ------------------------------------------------------------------ files
    def new(self) -> bool:
        if self.refuse_if_locked():
            return False
        self._replace(Project(Graph(), dict(NEW_PROJECT)), None, None)  # settings that learn
        return True

    def new_from(self, project: Project) -> bool:
        """An untitled document holding ``project`` (an imported model), unsaved."""
        if self.refuse_if_locked():
            return False
        self._replace(project, None, None)
        self.stack.resetClean()
        return True

    def open(self, path: str | Path) -> bool:
        """Load a file; raises FormatError (and changes nothing) when it cannot be read."""
        if self.refuse_if_locked():
            return False
        project = load_project(path)
        self._replace(project, Path(path), Path(path))
        return True

    def open_unsaved(self, path: str | Path, original: Path | None) -> bool:
        """Load ``path`` (a recovery copy) as the unsaved state of ``original``: Save writes
        there, and no undo step leads back to "saved" (the file on disk is older). Its relative
        data paths start from the original's folder, as they were written."""
        if self.refuse_if_locked():
            return False
        self._replace(load_project(path), Path(path), original)
        self.path = original
        self.path_changed.emit(original)
        self.stack.resetClean()
        return True

    def save(self, path: str | Path | None = None) -> None:
        """Atomic write; raises OSError on failure, leaving the document dirty."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no file name to save to")
        if rebase_data(self.project.data, self.path, target):  # Save As into another folder
            self.section_changed.emit("data")
        save_project(self.project, target)
        if target != self.path:
            self.path = self.data_home = target
            self.path_changed.emit(target)
        self.stack.setClean()

    def _replace(self, project: Project, path: Path | None, home: Path | None) -> None:
        self.stack.clear()  # the old commands refer to the old graph
        self.stack.setClean()  # before the news: data chosen on open is then an unsaved edit
        if self.project is not None:
            self.model.changed.disconnect(self._recompute)
        self.project, self.model = project, project.graph
        self.model.changed.connect(self._recompute)
        self.levels.blockSignals(True)
        self.levels.reset(project.graph)
        self.levels.blockSignals(False)
        self._recompute()
        self.path, self.data_home = path, home
        self.project_replaced.emit(self.graph)
        self.report_changed.emit(self.report)
        self.path_changed.emit(path)
        self.dirty_changed.emit(self.dirty)

    # ------------------------------------------------------------------ undo
    def undo(self) -> None:
        if not self.refuse_if_locked():
            self.stack.undo()

    def redo(self) -> None:
        if not self.refuse_if_locked():
            self.stack.redo()

    def push(self, command: QUndoCommand) -> None:
        """Push a command the caller has checked against the graph's rules (an exception
        inside ``redo`` cannot stop a push)."""
        self.stack.push(command)

    def macro(self, text: str) -> "_Macro":
        """``with document.macro("Paste"):`` groups pushes into one undo step."""
        return _Macro(self.stack, text)

    # ------------------------------------------------------------------ project sections
    def edit_section(self, name: str, changes: dict) -> bool:
        """Set settings of the project's ``name`` section ("training" or "data"; a None value
        removes one, so its default applies) as one undo step; consecutive edits of the same
        settings merge. Training settings are checked by the engine's own rules first, a
        refusal going out on ``message``. Not structural, so allowed while locked."""
        section = getattr(self.project, name)
        changes = {k: v for k, v in changes.items() if section.get(k) != v}
        if not changes:
            return True
        if name == "training":
            trial = {k: v for k, v in {**section, **changes}.items() if v is not None}
            try:
                check_settings(trial)
            except SettingsError as err:
                self.message.emit(str(err))
                return False
        self.push(cmd.EditSectionCommand(self.project, name, changes, self.section_changed.emit))
        return True

    # ------------------------------------------------------------------ nodes
    def add_node(self, type_id: str, pos: tuple, attrs: dict | None = None) -> str | None:
        if self.refuse_if_locked():
            return None
        try:
            node = self.graph.new_node(type_id, pos, attrs)
        except GraphError as err:
            self.message.emit(str(err))
            return None
        self.push(cmd.AddNodeCommand(self.graph, node))
        self.select_requested.emit([node.id])
        return node.id

    def remove(self, node_ids: Iterable[str] = (), edges: Iterable[Edge] = ()) -> bool:
        """Delete nodes (with their edges) and loose edges as one undo step."""
        node_ids = [n for n in node_ids if n in self.graph.nodes]
        edges = [e for e in edges if e in self.graph.edges and e.src[0] not in node_ids
                 and e.dst[0] not in node_ids]
        if not node_ids and not edges:
            return False
        if self.refuse_if_locked():
            return False
        with self.macro("Delete" if len(node_ids) + len(edges) > 1 else
                         f"Delete {node_ids[0] if node_ids else 'edge'}"):
            for graph, e in [w for n in node_ids for w in self.graph.port_wires(n)]:
                self.push(cmd.DisconnectCommand(graph, e))  # a block port's wires outside
            for e in edges:
                self.push(cmd.DisconnectCommand(self.graph, e))
            for n in node_ids:
                self.push(cmd.RemoveNodeCommand(self.graph, n))
        return True

    def set_attr(self, node_id: str, name: str, value: Any) -> bool:
        if self.refuse_if_locked():
            return False
        try:
            validated = self.graph.check_attr(node_id, name, value)
        except GraphError as err:
            self.message.emit(str(err))
            return False
        if validated[name] == self.graph.nodes[node_id].attrs.get(name):
            return True
        self.push(cmd.SetAttrCommand(self.graph, node_id, name, validated[name]))
        return True

    def rename(self, old: str, new: str) -> bool:
        if old == new:
            return True
        if self.refuse_if_locked():
            return False
        wires = self.graph.port_wires(old)  # a block's port: its instances' wires move with it
        try:
            self.graph.check_rename(old, new, moving_wires=bool(wires))
        except GraphError as err:
            self.message.emit(str(err))
            return False
        with self.macro(f"Rename {old} to {new}"):
            for graph, e in wires:
                self.push(cmd.DisconnectCommand(graph, e))
            self.push(cmd.RenameCommand(self.graph, old, new))
            name = self.graph.name
            for graph, e in wires:
                port = lambda ref, g=graph: ((ref[0], new) if ref[1] == old  # noqa: E731
                                             and g.block_of(ref[0]) == name else ref)
                self.push(cmd.ConnectCommand(graph, port(e.src), port(e.dst)))
        return True

    def set_frozen(self, node_id: str, frozen: bool) -> bool:
        if self.graph.nodes[node_id].frozen == bool(frozen):
            return True
        if self.refuse_if_locked():
            return False
        self.push(cmd.SetFrozenCommand(self.graph, node_id, frozen))
        return True

    def move_nodes(self, positions: dict[str, tuple], merge_key: str = "", text: str = "") -> bool:
        """Moves are not structural: allowed while locked."""
        moves = {n: (float(p[0]), float(p[1])) for n, p in positions.items()
                 if n in self.graph.nodes and tuple(self.graph.nodes[n].pos) != tuple(p)}
        if moves:
            self.push(cmd.MoveNodesCommand(self.graph, moves, merge_key, text))
        return bool(moves)

    # ------------------------------------------------------------------ edges
    def connect(self, src: tuple, dst: tuple) -> bool:
        if self.refuse_if_locked():
            return False
        try:
            self.graph.check_connect(src, dst)
        except GraphError as err:
            self.message.emit(str(err))
            return False
        self.push(cmd.ConnectCommand(self.graph, src, dst))
        return True

    def disconnect(self, edge: Edge) -> bool:
        return self.remove(edges=[edge])


class _Macro:
    """``with document.macro("Paste"):`` groups pushes into one undo step."""

    def __init__(self, stack: QUndoStack, text: str):
        self.stack, self.text = stack, text

    def __enter__(self):
        self.stack.beginMacro(self.text)

    def __exit__(self, *exc) -> None:
        self.stack.endMacro()
