"""One small QUndoCommand per graph edit; each touches only the Graph and never the scene.

Removals store what they remove (and where it stood, so an undo restores the file exactly).
Groups are made with ``QUndoStack.beginMacro`` by the Document, never with ``parent=`` trees,
which crash PySide6 on redo or deletion (PLATFORM-NOTES). Commands are only pushed after the
Document has checked the edit, because an exception raised inside ``redo`` cannot stop a push.
"""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtGui import QUndoCommand

from layerloom.engine.graph import Edge, Graph, Node
from layerloom.engine.serialize import fill_level

# QUndoCommand.id() values: commands with the same id may merge
ATTR_ID, MOVE_ID, SECTION_ID = 1, 2, 3


class AddNodeCommand(QUndoCommand):
    """Adds a node; undo removes it (it has no edges yet at that point of the history)."""

    def __init__(self, graph: Graph, node: Node):
        super().__init__(f"Add {node.type}")
        self.graph, self.node = graph, node

    def redo(self) -> None:
        self.graph.add_node(self.node)

    def undo(self) -> None:
        self.graph.remove_node(self.node.id)


class RemoveNodeCommand(QUndoCommand):
    """Removes a node with its edges; keeps both, with their list positions, for undo."""

    def __init__(self, graph: Graph, node_id: str):
        super().__init__(f"Delete {node_id}")
        self.graph, self.node_id = graph, node_id
        self.node: Node | None = None
        self.index = 0
        self.edges: list[tuple[int, Edge]] = []

    def redo(self) -> None:
        self.index = list(self.graph.nodes).index(self.node_id)
        self.edges = [(i, e) for i, e in enumerate(self.graph.edges)
                      if self.node_id in (e.src[0], e.dst[0])]
        self.node, _ = self.graph.remove_node(self.node_id)

    def undo(self) -> None:
        self.graph.add_node(self.node, index=self.index)
        for i, e in self.edges:  # ascending positions: each insert lands where it stood
            self.graph.connect(e.src, e.dst, index=i)


class ConnectCommand(QUndoCommand):
    def __init__(self, graph: Graph, src: tuple, dst: tuple):
        super().__init__(f"Connect {src[0]} → {dst[0]}")
        self.graph, self.edge = graph, Edge(tuple(src), tuple(dst))

    def redo(self) -> None:
        self.graph.connect(self.edge.src, self.edge.dst)

    def undo(self) -> None:
        self.graph.disconnect(self.edge)


class DisconnectCommand(QUndoCommand):
    """Removes one edge; undo puts it back at its old place in the edge list."""

    def __init__(self, graph: Graph, edge: Edge):
        super().__init__(f"Disconnect {edge.src[0]} → {edge.dst[0]}")
        self.graph, self.edge, self.index = graph, edge, 0

    def redo(self) -> None:
        self.index = self.graph.edges.index(self.edge)
        self.graph.disconnect(self.edge)

    def undo(self) -> None:
        self.graph.connect(self.edge.src, self.edge.dst, index=self.index)


class SetAttrCommand(QUndoCommand):
    """Consecutive edits of one attribute of one node merge into one undo step."""

    def __init__(self, graph: Graph, node_id: str, name: str, value: Any):
        super().__init__(f"Set {node_id}.{name}")
        self.graph, self.node_id, self.name = graph, node_id, name
        self.old, self.new = graph.nodes[node_id].attrs.get(name), value

    def redo(self) -> None:
        self.graph.set_attr(self.node_id, self.name, self.new)

    def undo(self) -> None:
        self.graph.set_attr(self.node_id, self.name, self.old)

    def id(self) -> int:
        return ATTR_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt override)
        if (other.node_id, other.name) != (self.node_id, self.name):
            return False
        self.new = other.new
        self.setObsolete(self.new == self.old)  # edited back to where it was: no step at all
        return True


class MoveNodesCommand(QUndoCommand):
    """Moves nodes; moves with the same non-empty ``merge_key`` (one nudge series) merge."""

    def __init__(self, graph: Graph, moves: dict[str, tuple], merge_key: str = "",
                 text: str = ""):
        super().__init__(text or (f"Move {next(iter(moves))}" if len(moves) == 1
                                  else f"Move {len(moves)} nodes"))
        self.graph, self.merge_key = graph, merge_key
        self.old = {n: graph.nodes[n].pos for n in moves}
        self.new = {n: tuple(p) for n, p in moves.items()}

    def redo(self) -> None:
        for n, p in self.new.items():
            self.graph.move(n, p)

    def undo(self) -> None:
        for n, p in self.old.items():
            self.graph.move(n, p)

    def id(self) -> int:
        return MOVE_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt override)
        same = bool(self.merge_key) and other.merge_key == self.merge_key
        if not same or set(other.new) != set(self.new):
            return False
        self.new = dict(other.new)
        return True


class RenameCommand(QUndoCommand):
    def __init__(self, graph: Graph, old: str, new: str):
        super().__init__(f"Rename {old} to {new}")
        self.graph, self.old, self.new = graph, old, new

    def redo(self) -> None:
        self.graph.rename(self.old, self.new)

    def undo(self) -> None:
        self.graph.rename(self.new, self.old)


class SetFrozenCommand(QUndoCommand):
    def __init__(self, graph: Graph, node_id: str, frozen: bool):
        super().__init__(f"{'Freeze' if frozen else 'Unfreeze'} {node_id}")
        self.graph, self.node_id = graph, node_id
        self.old, self.new = graph.nodes[node_id].frozen, bool(frozen)

    def redo(self) -> None:
        self.graph.set_frozen(self.node_id, self.new)

    def undo(self) -> None:
        self.graph.set_frozen(self.node_id, self.old)


class EditSectionCommand(QUndoCommand):
    """Sets settings of a project section ("training", "data"); a None value removes one (its
    default applies). Keeps the old values for undo; ``changed(name)`` tells the panel showing
    the section, on the first redo as on every later one. Consecutive edits of the same settings
    merge (a spin box's many steps are one undo step)."""

    def __init__(self, project: Any, name: str, changes: dict, changed: Callable[[str], None]):
        super().__init__(f"Change {name} settings")
        self.section, self.name, self.changed = getattr(project, name), name, changed
        self.old = {k: self.section.get(k) for k in changes}
        self.new = dict(changes)

    def _set(self, values: dict) -> None:
        for key, value in values.items():
            if value is None:
                self.section.pop(key, None)
            else:
                self.section[key] = value
        self.changed(self.name)

    def redo(self) -> None:
        self._set(self.new)

    def undo(self) -> None:
        self._set(self.old)

    def id(self) -> int:
        return SECTION_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt override)
        if other.section is not self.section or set(other.new) != set(self.new):
            return False
        self.new = dict(other.new)
        self.setObsolete(self.new == self.old)  # edited back to where it was: no step at all
        return True


class AddBlockCommand(QUndoCommand):
    """Adds a block definition to the model. The definition is built once, on the first redo,
    and the same Graph goes back on every later redo: commands pushed after this one (edits
    inside the block) hold that Graph."""

    def __init__(self, model: Graph, name: str, level: dict):
        super().__init__(f"Add block {name}")
        self.model, self.name, self.level = model, name, level
        self.definition: Graph | None = None

    def redo(self) -> None:
        if self.definition is None:
            self.definition = self.model.new_block(self.name)
            fill_level(self.definition, self.level)  # before it joins: one change, not many
        self.model.add_block(self.definition)

    def undo(self) -> None:
        self.model.remove_block(self.name)


class RemoveBlockCommand(QUndoCommand):
    """Removes an unused block definition; undo puts the same Graph back at its old place."""

    def __init__(self, model: Graph, name: str):
        super().__init__(f"Remove block {name}")
        self.model, self.name = model, name
        self.definition, self.index = None, 0

    def redo(self) -> None:
        self.definition, self.index = self.model.remove_block(self.name)

    def undo(self) -> None:
        self.model.add_block(self.definition, self.index)
