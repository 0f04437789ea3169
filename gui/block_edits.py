"""Edits that restructure the shown level around blocks, each one undo step: group the selection
into a block (Ctrl+G), ungroup one (Ctrl+Shift+G), make an instance unique, put a block from the
library on the canvas, save a block to the library.

Reached as ``document.blocks``. The engine works each edit out as a plan of primitive edits
(``engine.blocks``, ``engine.block_library``); here it is tried on a copy of the model first (a
refused edit never reaches the undo stack; its reason goes out on ``document.message``), then
pushed as one small command per primitive edit inside one macro.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths

from layerloom.engine.block_library import (TEMPLATES, bundle_definitions, read_block_file,
                                            save_user_block)
from layerloom.engine.blocks import (apply_edits, group_edits, new_instance, plan_group,
                                     plan_ungroup, ungroup_edits, unique_edits)
from layerloom.engine.spec import LayerloomError
from layerloom.gui import commands as cmd

TEMPLATE, SAVED, MODEL = "template", "saved", "model"  # where a library block comes from


def library_dir() -> Path:
    """The person's own blocks: ``blocks/`` in the application's data folder."""
    return Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)) / "blocks"


class BlockEdits:
    def __init__(self, document: QObject):
        self.document = document  # the Document: its levels, lock, push and macro

    # ------------------------------------------------------------------ the edits
    def group(self, node_ids: list[str]) -> str | None:
        """Make a block of the selected nodes, with ports where edges crossed the selection;
        returns the new instance's id."""
        plan = self._plan(lambda: plan_group(self.document.graph, node_ids))
        if plan is None or not self.apply(group_edits(plan), f"Group into {plan.name}"):
            return None
        self.document.select_requested.emit([plan.instance.id])
        return plan.instance.id

    def ungroup(self, node_id: str) -> list[str]:
        """Put the layers of block instance ``node_id`` (every copy) in its place."""
        plan = self._plan(lambda: plan_ungroup(self.document.graph, node_id))
        if plan is None or not self.apply(ungroup_edits(plan), f"Ungroup {node_id}"):
            return []
        ids = [n.id for n in plan.nodes]
        self.document.select_requested.emit(ids)
        return ids

    def make_unique(self, node_id: str) -> str | None:
        """Give instance ``node_id`` a copy of its definition of its own; returns its name."""
        edits = self._plan(lambda: unique_edits(self.document.graph, node_id))
        if edits is None or not self.apply(edits, f"Make {node_id} unique"):
            return None
        return self.document.graph.block_of(node_id)

    def insert(self, source: str, key: str, pos: tuple, settings: dict | None = None) -> str | None:
        """An instance of a library block at ``pos``: a stock ``TEMPLATE`` (``key`` its title,
        with ``settings``), a ``SAVED`` block file (``key`` its path) or one of the model's own
        definitions (``MODEL``, ``key`` its name). Returns the instance's id."""
        doc = self.document

        def plan():
            if source == MODEL:
                return [], key
            bundle = (TEMPLATES[key].bundle(settings) if source == TEMPLATE
                      else read_block_file(key))
            return bundle_definitions(doc.model, bundle)

        found = self._plan(plan)
        if found is None:
            return None
        adds, name = found
        node = new_instance(doc.graph, name, pos)
        edits = [("add_block", n, level) for n, level in adds] + [("add_node", node)]
        if not self.apply(edits, f"Add block {name}"):
            return None
        doc.select_requested.emit([node.id])
        return node.id

    def save_to_library(self, node_id: str, folder: Path | None = None) -> Path | None:
        """Write the definition of instance ``node_id`` to the person's block library."""
        doc = self.document
        definition = doc.graph.definition(node_id) if node_id in doc.graph.nodes else None
        if definition is None:
            doc.message.emit(f"{node_id!r} is not a block")
            return None
        try:
            path = save_user_block(folder or library_dir(), doc.model, definition.name)
        except LayerloomError as err:
            doc.message.emit(str(err))
            return None
        doc.message.emit(f"Saved block {path.stem!r} to the library ({path})")
        doc.library_changed.emit(path)
        return path

    # ------------------------------------------------------------------ checking and pushing
    def _plan(self, make):
        """``make()``'s plan, or None (the reason on ``message``) when it is refused."""
        if self.document.refuse_if_locked():
            return None
        try:
            return make()
        except LayerloomError as err:
            self.document.message.emit(str(err))
            return None

    def apply(self, edits: list[tuple], text: str) -> bool:
        """Try the edits on a copy of the model; when they all hold, push them as one step."""
        doc = self.document
        trial = doc.model.copy()
        level = trial
        for _, name in doc.levels.path:
            level = trial.blocks[name]
        try:
            apply_edits(level, edits)
        except LayerloomError as err:
            doc.message.emit(str(err))
            return False
        graph, model = doc.graph, doc.model
        with doc.macro(text):
            for kind, *args in edits:
                doc.push(_command(kind, args, graph, model))
        return True


def _command(kind: str, args: list, graph, model):
    if kind == "add_block":
        return cmd.AddBlockCommand(model, *args)
    if kind == "remove_block":
        return cmd.RemoveBlockCommand(model, *args)
    if kind == "add_node":
        return cmd.AddNodeCommand(graph, *args)
    if kind == "remove_node":
        return cmd.RemoveNodeCommand(graph, *args)
    if kind == "connect":
        return cmd.ConnectCommand(graph, *args)
    return cmd.SetAttrCommand(graph, *args)  # "set_attr"
