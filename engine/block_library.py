"""The block library: stock blocks built from a few settings, and a person's own saved blocks.

A stock block is a ``Template``: settings declared with the same attribute descriptors layers use
(so the window builds its form the same way) and a function that writes the definition. A saved
block is a ``.json`` file (``layerloom-block`` format: the definition, plus the definitions it
uses) in a folder the caller names, the user's data folder in the window. Either way the result
is a *bundle* (``{"name", "nodes", "edges", "blocks"}``), and ``bundle_definitions`` says which
definitions a model must gain to hold an instance of it (reusing an identical one, renaming
around a different one of the same name).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from layerloom.engine.block_templates import TEMPLATES, Template
from layerloom.engine.graph import Graph, GraphError
from layerloom.engine.serialize import (FormatError, atomic_write_bytes, fill_level, graph_from_dict,
                                        graph_to_dict, parse_text, read_text)

__all__ = ["TEMPLATES", "Template", "LibraryError", "bundle_of", "bundle_definitions",
           "read_block_file", "save_user_block", "user_blocks"]

BLOCK_FORMAT, BLOCK_VERSION = "layerloom-block", 1
MAX_FILE_BYTES = 20 << 20


class LibraryError(FormatError):
    """A saved block that cannot be read or written; one line naming the file."""


@dataclass(frozen=True)
class SavedBlock:
    name: str  # the definition's name, the file's stem
    path: Path


def bundle_of(model: Graph, name: str) -> dict:
    """Definition ``name`` of ``model`` with every definition it uses, as a bundle."""
    used = [n for n in model.blocks if n in model.uses(name)]
    level = graph_to_dict(model.blocks[name])
    return {"name": name, "nodes": level["nodes"], "edges": level["edges"],
            "blocks": {n: _level(model.blocks[n]) for n in used}}


def _level(graph: Graph) -> dict:
    data = graph_to_dict(graph)
    return {"nodes": data["nodes"], "edges": data["edges"]}


def bundle_definitions(model: Graph, bundle: dict) -> tuple[list[tuple[str, dict]], str]:
    """([(name, level dict)] the model must add, in an order that adds a used definition before
    its user; the name the instance refers to). A definition equal to one the model has is
    reused; a different one under a taken name is renamed (references follow)."""
    adds, names = merge_definitions(model, {**bundle.get("blocks", {}), bundle["name"]: bundle})
    return adds, names[bundle["name"]]


def merge_definitions(model: Graph, levels: dict) -> tuple[list[tuple[str, dict]], dict]:
    """As ``bundle_definitions`` for several definitions (name -> level dict) at once: the
    additions, and the name each one has in the model."""
    order = _dependency_order(levels)
    names: dict[str, str] = {}
    adds, taken = [], set(model.blocks)
    for name in order:
        level = _renamed(levels[name], names)
        if name in model.blocks and _level(model.blocks[name]) == _normalised(model, level):
            names[name] = name
            continue
        new = name
        if new in taken:
            new = model.unique_block_name(name)
            while new in taken:
                new = model.unique_block_name(new)
        names[name] = new
        taken.add(new)
        adds.append((new, level))
    return adds, names


def _normalised(model: Graph, level: dict) -> dict | None:
    """A level as the model would store it (defaults filled in, numbers as floats), or None
    when it cannot be built in this model yet (it uses a definition still to be added)."""
    probe = model.new_block("probe")  # never added: its edits reach no one
    try:
        fill_level(probe, level)
    except (FormatError, GraphError):
        return None
    return _level(probe)


def _dependency_order(levels: dict) -> list[str]:
    order, seen = [], set()

    def visit(name: str, path: tuple) -> None:
        if name in seen:
            return
        if name in path:
            raise LibraryError(f"block {name!r} contains itself")
        for n in levels[name].get("nodes", []):
            used = n.get("attrs", {}).get("block") if n.get("type") == "Block" else None
            if used in levels:
                visit(used, path + (name,))
        seen.add(name)
        order.append(name)

    for name in levels:
        visit(name, ())
    return order


def _renamed(level: dict, names: dict) -> dict:
    nodes = [dict(n, attrs={**n["attrs"], "block": names.get(n["attrs"]["block"],
                                                               n["attrs"]["block"])})
             if n.get("type") == "Block" else n for n in level.get("nodes", [])]
    return {"nodes": nodes, "edges": list(level.get("edges", []))}


# ------------------------------------------------------------------------------ saved blocks
def save_user_block(folder: str | Path, model: Graph, name: str) -> Path:
    """Write definition ``name`` (and what it uses) to ``folder/name.json``, atomically. A
    different block saved under that name before is kept: this one becomes ``name_2``."""
    folder = Path(folder)
    bundle = bundle_of(model, name)
    stem, i = name, 2
    while (folder / f"{stem}.json").is_file() and not _same(folder / f"{stem}.json",
                                                             {**bundle, "name": stem}):
        stem, i = f"{name}_{i}", i + 1
    bundle = {"format": BLOCK_FORMAT, "version": BLOCK_VERSION, **bundle, "name": stem}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.json"
        atomic_write_bytes(path, (json.dumps(bundle, indent=1) + "\n").encode("utf-8"))
    except OSError as err:
        raise LibraryError(f"{folder}: cannot save block {name!r} ({err.strerror or err})") from None
    return path


def _same(path: Path, bundle: dict) -> bool:
    try:
        return read_block_file(path) == bundle
    except LibraryError:
        return False  # a broken file under the name: keep it, write beside it


def user_blocks(folder: str | Path) -> list[SavedBlock]:
    """The saved blocks in ``folder`` (none when it does not exist), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [SavedBlock(p.stem, p) for p in sorted(folder.glob("*.json"))
            if p.stem.isidentifier()]


def read_block_file(path: str | Path) -> dict:
    """A saved block's bundle, checked by building it into a scratch model (never executed)."""
    path = Path(path)
    try:  # a regular file within the size cap, parsed within the graph files' limits
        data = parse_text(read_text(path, MAX_FILE_BYTES))
    except FormatError as err:
        raise LibraryError(f"{path.name}: cannot read ({err})") from None
    if not isinstance(data, dict) or data.get("format") != BLOCK_FORMAT:
        raise LibraryError(f"{path.name}: not a Layerloom block file (format {BLOCK_FORMAT!r})")
    if data.get("version") != BLOCK_VERSION:
        raise LibraryError(f"{path.name}: version {data.get('version')!r} is not supported")
    name = data.get("name")
    blocks = data.get("blocks", {})
    if not isinstance(name, str) or not isinstance(blocks, dict) or name in blocks:
        raise LibraryError(f"{path.name}: needs a name and an object of the blocks it uses")
    try:
        graph_from_dict({"format": "layerloom-graph", "version": 2, "nodes": [], "edges": [],
                         "blocks": {**blocks, name: {"nodes": data.get("nodes"),
                                                     "edges": data.get("edges", [])}}})
    except (FormatError, GraphError) as err:
        raise LibraryError(f"{path.name}: {err}") from None
    return {"name": name, "nodes": data["nodes"], "edges": data.get("edges", []),
            "blocks": blocks}

