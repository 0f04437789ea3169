"""The open project with its undo history: the one edit API every gesture goes through.

Each method checks the edit against the graph's own rules first; a refused edit never reaches
the undo stack and its one-line reason goes out on ``message`` for the status bar. Shape
inference runs after every change and goes out on ``report_changed``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import shiboken6
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from layerloom.engine.graph import Edge, Graph, GraphError, Node, check_node_id
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import (Project, graph_from_dict, graph_to_dict, load_project, parse_text,
                                        save_project)
from layerloom.engine.shapes import ShapeReport, batch_size_of, infer_shapes, param_counts
from layerloom.engine.spec import AttrError, LayerloomError
from layerloom.gui import commands as cmd
from layerloom.gui.layout import layered_positions


class Document(QObject):
    """Project + QUndoStack + path + dirty flag (+ a lock the training controller sets)."""

    message = Signal(str)  # a refused edit or a notice, for the status bar
    report_changed = Signal(object)  # ShapeReport after every structural change
    project_replaced = Signal(object)  # the new Graph after New / Open
    path_changed = Signal(object)  # Path | None
    dirty_changed = Signal(bool)
    locked_changed = Signal(bool)
    select_requested = Signal(list)  # node ids an edit wants selected (a new node, a paste)
    section_changed = Signal(str)  # "training" or "data" changed (an edit, its undo or redo)

    def __init__(self, project: Project | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.stack = QUndoStack(self)
        self.stack.cleanChanged.connect(self._clean_changed)
        self.path: Path | None = None
        self.locked, self.lock_reason = False, ""
        self.project: Project | None = None
        self.report, self.params = ShapeReport(), {}
        self._bind(project or Project(Graph()))
        self.section_changed.connect(lambda name: name == "training" and self.recompute())

    # ------------------------------------------------------------------ state
    @property
    def graph(self) -> Graph:
        return self.project.graph

    @property
    def dirty(self) -> bool:
        return not self.stack.isClean()

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    def _clean_changed(self, clean: bool) -> None:
        if shiboken6.isValid(self):  # the stack says "clean" once more while it is destroyed
            self.dirty_changed.emit(not clean)

    def set_locked(self, locked: bool, reason: str = "") -> None:
        """While locked (training runs) structural edits, undo and redo are refused; moves pass."""
        self.locked, self.lock_reason = bool(locked), reason if locked else ""
        self.locked_changed.emit(self.locked)

    def _refuse_if_locked(self) -> bool:
        if self.locked:
            self.message.emit(f"The graph is locked while {self.lock_reason or 'busy'}")
        return self.locked

    def _bind(self, project: Project) -> None:
        if self.project is not None:
            self.graph.changed.disconnect(self.recompute)
        self.project = project
        self.graph.changed.connect(self.recompute)
        self.recompute()

    def recompute(self) -> None:
        """Shapes, parameter counts and the memory check at the project's batch size, all from
        declared shapes: an edit to a huge width allocates nothing."""
        self.report = infer_shapes(self.graph, batch_size_of(self.project.training))
        self.params = param_counts(self.graph, self.report)
        self.report_changed.emit(self.report)

    # ------------------------------------------------------------------ files
    def new(self) -> bool:
        if self._refuse_if_locked():
            return False
        self._replace(Project(Graph()), None)
        return True

    def new_from(self, project: Project) -> bool:
        """An untitled document holding ``project`` (an imported model), unsaved."""
        if self._refuse_if_locked():
            return False
        self._replace(project, None)
        self.stack.resetClean()
        return True

    def open(self, path: str | Path) -> bool:
        """Load a file; raises FormatError (and changes nothing) when it cannot be read."""
        if self._refuse_if_locked():
            return False
        project = load_project(path)
        self._replace(project, Path(path))
        return True

    def open_unsaved(self, path: str | Path, original: Path | None) -> bool:
        """Load ``path`` (a recovery copy) as the unsaved state of ``original``: Save writes
        there, and no undo step leads back to "saved" (the file on disk is older)."""
        if not self.open(path):
            return False
        self.path = original
        self.path_changed.emit(original)
        self.stack.resetClean()
        return True

    def save(self, path: str | Path | None = None) -> None:
        """Atomic write; raises OSError on failure, leaving the document dirty."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no file name to save to")
        save_project(self.project, target)
        if target != self.path:
            self.path = target
            self.path_changed.emit(target)
        self.stack.setClean()

    def _replace(self, project: Project, path: Path | None) -> None:
        self.stack.clear()  # the old commands refer to the old graph
        self._bind(project)
        self.path = path
        self.project_replaced.emit(self.graph)
        self.report_changed.emit(self.report)
        self.path_changed.emit(path)
        self.stack.setClean()
        self.dirty_changed.emit(False)

    # ------------------------------------------------------------------ undo
    def undo(self) -> None:
        if not self._refuse_if_locked():
            self.stack.undo()

    def redo(self) -> None:
        if not self._refuse_if_locked():
            self.stack.redo()

    def _push(self, command) -> None:
        self.stack.push(command)

    def _macro(self, text: str):
        return _Macro(self.stack, text)

    # ------------------------------------------------------------------ project sections
    def set_section(self, name: str, old: dict, new: dict) -> None:
        """Record that a panel changed the project's ``name`` section from ``old`` to ``new``
        (undoable, marks the file dirty). Not structural, so allowed while locked."""
        if old == new:
            return
        section = self.project.training if name == "training" else self.project.data
        self._push(cmd.SetSectionCommand(section, name, old, new, self.section_changed.emit))

    # ------------------------------------------------------------------ nodes
    def new_node(self, type_id: str, pos: tuple, attrs: dict | None = None,
                 node_id: str | None = None) -> Node:
        """A checked node (not yet added): unique id from the type name, validated attrs."""
        cls = LAYERS[type_id]
        node_id = node_id or self.graph.unique_id(type_id)
        check_node_id(node_id)
        if node_id in self.graph.nodes:
            raise GraphError(f"a node named {node_id!r} already exists")
        try:
            values = dict(cls.validate_attrs(attrs or {}))
        except AttrError as err:
            raise GraphError(f"{type_id} {node_id!r}: {err}") from None
        return Node(node_id, type_id, values, (float(pos[0]), float(pos[1])))

    def add_node(self, type_id: str, pos: tuple, attrs: dict | None = None) -> str | None:
        if self._refuse_if_locked():
            return None
        try:
            node = self.new_node(type_id, pos, attrs)
        except (GraphError, KeyError) as err:
            self.message.emit(str(err))
            return None
        self._push(cmd.AddNodeCommand(self.graph, node))
        self.select_requested.emit([node.id])
        return node.id

    def add_connected_node(self, type_id: str, pos: tuple, src: tuple) -> str | None:
        """Add a node and feed ``src`` into its first input (a wire released on empty canvas)."""
        cls = LAYERS.get(type_id)
        if self._refuse_if_locked() or cls is None:
            return None
        if not cls.inputs:
            self.message.emit(f"{type_id} has no input to connect {src[0]} to")
            return None
        try:
            node = self.new_node(type_id, pos)
        except GraphError as err:
            self.message.emit(str(err))
            return None
        with self._macro(f"Add {type_id}"):
            self._push(cmd.AddNodeCommand(self.graph, node))
            self._push(cmd.ConnectCommand(self.graph, src, (node.id, cls.inputs[0])))
        self.select_requested.emit([node.id])
        return node.id

    def remove(self, node_ids: Iterable[str] = (), edges: Iterable[Edge] = ()) -> bool:
        """Delete nodes (with their edges) and loose edges as one undo step."""
        node_ids = [n for n in node_ids if n in self.graph.nodes]
        edges = [e for e in edges if e in self.graph.edges and e.src[0] not in node_ids
                 and e.dst[0] not in node_ids]
        if not node_ids and not edges:
            return False
        if self._refuse_if_locked():
            return False
        with self._macro("Delete" if len(node_ids) + len(edges) > 1 else
                         f"Delete {node_ids[0] if node_ids else 'edge'}"):
            for e in edges:
                self._push(cmd.DisconnectCommand(self.graph, e))
            for n in node_ids:
                self._push(cmd.RemoveNodeCommand(self.graph, n))
        return True

    def set_attr(self, node_id: str, name: str, value: Any) -> bool:
        if self._refuse_if_locked():
            return False
        node = self.graph.nodes[node_id]
        cls = LAYERS[node.type]
        try:
            validated = cls.validate_attrs({**node.attrs, name: value})
        except AttrError as err:
            self.message.emit(f"{node.type} {node_id!r}: {err}")
            return False
        if validated[name] == node.attrs.get(name):
            return True
        self._push(cmd.SetAttrCommand(self.graph, node_id, name, validated[name]))
        return True

    def rename(self, old: str, new: str) -> bool:
        if old == new:
            return True
        if self._refuse_if_locked():
            return False
        try:
            check_node_id(new)
            if new in self.graph.nodes:
                raise GraphError(f"a node named {new!r} already exists")
        except GraphError as err:
            self.message.emit(str(err))
            return False
        self._push(cmd.RenameCommand(self.graph, old, new))
        return True

    def set_frozen(self, node_id: str, frozen: bool) -> bool:
        if self.graph.nodes[node_id].frozen == bool(frozen):
            return True
        if self._refuse_if_locked():
            return False
        self._push(cmd.SetFrozenCommand(self.graph, node_id, frozen))
        return True

    def move_nodes(self, positions: dict[str, tuple], merge_key: str = "", text: str = "") -> bool:
        """Moves are not structural: allowed while locked."""
        moves = {n: (float(p[0]), float(p[1])) for n, p in positions.items()
                 if n in self.graph.nodes and tuple(self.graph.nodes[n].pos) != tuple(p)}
        if moves:
            self._push(cmd.MoveNodesCommand(self.graph, moves, merge_key, text))
        return bool(moves)

    def auto_layout(self, sizes: dict[str, tuple] | None = None,
                    viewport: tuple = (1200.0, 800.0)) -> bool:
        return self.move_nodes(layered_positions(self.graph, sizes, viewport), text="Auto-layout")

    def lay_out_on_open(self, sizes: dict[str, tuple], viewport: tuple) -> None:
        """Place the nodes of a just-opened, cramped file: presentation, not an edit (no undo
        step, the document stays clean)."""
        for node_id, pos in layered_positions(self.graph, sizes, viewport).items():
            self.graph.move(node_id, pos)

    # ------------------------------------------------------------------ edges
    def connect(self, src: tuple, dst: tuple) -> bool:
        if self._refuse_if_locked():
            return False
        try:
            self.graph.check_connect(src, dst)
        except GraphError as err:
            self.message.emit(str(err))
            return False
        self._push(cmd.ConnectCommand(self.graph, src, dst))
        return True

    def disconnect(self, edge: Edge) -> bool:
        return self.remove(edges=[edge])

    def reconnect(self, edge: Edge, src: tuple, dst: tuple) -> bool:
        """Move an edge's end to another input (one undo step); refused edits leave it alone."""
        if self._refuse_if_locked():
            return False
        trial = self.graph.copy()
        trial.disconnect(edge)
        try:
            trial.check_connect(src, dst)
        except GraphError as err:
            self.message.emit(str(err))
            return False
        with self._macro(f"Reconnect {src[0]} → {dst[0]}"):
            self._push(cmd.DisconnectCommand(self.graph, edge))
            self._push(cmd.ConnectCommand(self.graph, src, dst))
        return True

    def insert_fix(self, node_id: str) -> str | None:
        """Apply the mechanical fix shape inference proposed (e.g. insert a Flatten before a Dense
        fed an image): the new node goes on the node's first connected input, one undo step."""
        fix = self.report.fixes.get(node_id)
        edge = next((e for e in self.graph.edges_into(node_id)), None)
        if fix not in LAYERS or edge is None or self._refuse_if_locked():
            return None
        cls = LAYERS[fix]
        (sx, sy), (dx, dy) = self.graph.nodes[edge.src[0]].pos, self.graph.nodes[node_id].pos
        node = self.new_node(fix, ((sx + dx) / 2, max(sy, dy) + 110))
        with self._macro(f"Insert {fix}"):
            self._push(cmd.AddNodeCommand(self.graph, node))
            self._push(cmd.DisconnectCommand(self.graph, edge))
            self._push(cmd.ConnectCommand(self.graph, edge.src, (node.id, cls.inputs[0])))
            self._push(cmd.ConnectCommand(self.graph, (node.id, cls.outputs[0]), edge.dst))
        return node.id

    # ------------------------------------------------------------------ clipboard
    def copy(self, node_ids: Iterable[str]) -> dict:
        """The selected nodes and the edges between them, in the file format."""
        ids = [n for n in self.graph.nodes if n in set(node_ids)]
        sub = Graph()
        for n in ids:
            sub.add_node(self.graph.nodes[n])
        for e in self.graph.edges:
            if e.src[0] in sub.nodes and e.dst[0] in sub.nodes:
                sub.connect(e.src, e.dst)
        return graph_to_dict(sub)

    def paste(self, data: Any, offset: tuple = (40.0, 40.0)) -> list[str]:
        """Add a copied subgraph with fresh ids where needed; internal edges are kept."""
        if self._refuse_if_locked():
            return []
        try:
            if isinstance(data, bytes):
                data = data.decode("utf-8", "replace")
            sub = graph_from_dict(parse_text(data) if isinstance(data, str) else data)
        except LayerloomError as err:
            self.message.emit(f"Cannot paste: {err}")
            return []
        if not sub.nodes:
            return []
        names, taken = {}, set(self.graph.nodes)
        for n in sub.nodes:
            new = n if n not in taken else _fresh_id(n, taken)
            names[n] = new
            taken.add(new)
        with self._macro(f"Paste {len(names)} node{'s' if len(names) > 1 else ''}"):
            for n, node in sub.nodes.items():
                pos = (node.pos[0] + offset[0], node.pos[1] + offset[1])
                copy = Node(names[n], node.type, dict(node.attrs), pos, node.frozen)
                self._push(cmd.AddNodeCommand(self.graph, copy))
            for e in sub.edges:
                self._push(cmd.ConnectCommand(self.graph, (names[e.src[0]], e.src[1]),
                                              (names[e.dst[0]], e.dst[1])))
        self.select_requested.emit(list(names.values()))
        return list(names.values())


def _fresh_id(node_id: str, taken: set) -> str:
    """``conv1`` -> ``conv2`` (the first free number on the same stem)."""
    stem = re.sub(r"\d+$", "", node_id) or "node"
    i = 1
    while f"{stem}{i}" in taken:
        i += 1
    return f"{stem}{i}"


class _Macro:
    """``with document._macro("Paste"):`` groups pushes into one undo step."""

    def __init__(self, stack: QUndoStack, text: str):
        self.stack, self.text = stack, text

    def __enter__(self):
        self.stack.beginMacro(self.text)

    def __exit__(self, *exc) -> None:
        self.stack.endMacro()
