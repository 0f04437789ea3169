"""The ``layerloom-graph`` JSON format: a graph plus training settings and data source.

Version 2 adds block definitions (``"blocks": {name: {"nodes": [...], "edges": [...]}}``, each a
graph whose BlockInput/BlockOutput nodes are its ports) used by ``Block`` nodes. A file without
blocks is still written as version 1, so older builds keep reading it; version 1 files load as
they always did.

Loading is two stages: parse and check the structure to a one-line error with a JSON path, then
build through ``Graph``'s public methods so every rule of an edit also holds for a file. Nothing in
a file is ever executed. Writes are atomic (temporary file, fsync, ``os.replace``).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerloom.engine.graph import Graph, GraphError, Node
from layerloom.engine.spec import LayerloomError
from layerloom.engine.training_config import SettingsError, check_settings

FORMAT, VERSION = "layerloom-graph", 2
VERSIONS = (1, 2)  # what this build reads; version 2 is the first with "blocks"


class FormatError(LayerloomError):
    """A graph file that cannot be read; the message names the file and the JSON path."""


@dataclass
class Project:
    """What a graph file holds: the graph, training settings, and the data source spec."""

    graph: Graph
    training: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


def graph_to_dict(graph: Graph) -> dict:
    """A model with its block definitions (version 2), or without any (version 1); a block
    definition on its own is written as its nodes and edges only."""
    blocks = graph.blocks if graph.name is None else {}
    out = {"format": FORMAT, "version": VERSION if blocks else 1, **_level_to_dict(graph)}
    if blocks:
        out["blocks"] = {name: _level_to_dict(d) for name, d in graph.blocks.items()}
    return out


def _level_to_dict(graph: Graph) -> dict:
    nodes = [{"id": n.id, "type": n.type, "attrs": _jsonable(n.attrs), "pos": list(n.pos),
              "frozen": n.frozen} for n in graph.nodes.values()]
    edges = [{"from": list(e.src), "to": list(e.dst)} for e in graph.edges]
    return {"nodes": nodes, "edges": edges}


def _jsonable(attrs: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}


def _expect(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise FormatError(f"{where}: {what}")


def graph_from_dict(data: Any) -> Graph:
    """Validate the structure, then build; every problem is a FormatError naming its path.

    Definitions are built before the model, all their nodes before any of their edges, so a
    block may use one defined after it and every port exists when its edges are connected."""
    _expect(isinstance(data, dict), "top level", "must be a JSON object")
    _expect(data.get("format") == FORMAT, "format", f"must be {FORMAT!r}, got {data.get('format')!r}")
    _expect(data.get("version") in VERSIONS, "version",
            f"version {data.get('version')!r} is not supported (this build reads "
            f"{' and '.join(map(str, VERSIONS))})")
    blocks = data.get("blocks", {})
    _expect(isinstance(blocks, dict), "blocks", "must be an object of block definitions")
    _expect(not blocks or data["version"] >= 2, "blocks", "block definitions need version 2")
    graph = Graph()
    levels = []
    for name, raw in blocks.items():
        where = f"blocks.{name}"
        _expect(isinstance(raw, dict), where, "must be an object with nodes and edges")
        try:
            graph.add_block(graph.new_block(name))
        except GraphError as err:
            raise FormatError(f"{where}: {err}") from None
        levels.append((graph.blocks[name], raw, f"{where}."))
    levels.append((graph, data, ""))
    for level, raw, where in levels:
        _add_nodes(level, raw, where)
    for level, raw, where in levels:
        _add_edges(level, raw, where)
    return graph


def fill_level(graph: Graph, level: dict, where: str = "") -> None:
    """Add a level's nodes, then its edges, to ``graph`` (a new block definition)."""
    _add_nodes(graph, level, where)
    _add_edges(graph, level, where)


def _add_nodes(graph: Graph, data: dict, prefix: str) -> None:
    nodes = data.get("nodes")
    _expect(isinstance(nodes, list), f"{prefix}nodes", "must be a list")
    for i, raw in enumerate(nodes):
        where = f"{prefix}nodes[{i}]"
        _expect(isinstance(raw, dict), where, "must be an object")
        _expect(isinstance(raw.get("id"), str), f"{where}.id", "must be a string")
        _expect(isinstance(raw.get("type"), str), f"{where}.type", "must be a string")
        attrs, pos = raw.get("attrs", {}), raw.get("pos", [0, 0])
        _expect(isinstance(attrs, dict), f"{where}.attrs", "must be an object")
        _expect(isinstance(pos, list) and len(pos) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos),
                f"{where}.pos", "must be [x, y]")
        _expect(isinstance(raw.get("frozen", False), bool), f"{where}.frozen", "must be true or false")
        try:
            graph.add_node(Node(raw["id"], raw["type"], attrs, tuple(pos), raw.get("frozen", False)))
        except GraphError as err:
            raise FormatError(f"{where}: {err}") from None


def _add_edges(graph: Graph, data: dict, prefix: str) -> None:
    edges = data.get("edges", [])
    _expect(isinstance(edges, list), f"{prefix}edges", "must be a list")
    for i, raw in enumerate(edges):
        where = f"{prefix}edges[{i}]"
        _expect(isinstance(raw, dict), where, "must be an object")
        for key in ("from", "to"):
            ref = raw.get(key)
            _expect(isinstance(ref, list) and len(ref) == 2 and all(isinstance(s, str) for s in ref),
                    f"{where}.{key}", "must be [node_id, port]")
        try:
            graph.connect(tuple(raw["from"]), tuple(raw["to"]))
        except GraphError as err:
            raise FormatError(f"{where}: {err}") from None


def project_to_dict(project: Project) -> dict:
    out = graph_to_dict(project.graph)
    out["training"] = dict(project.training)
    out["data"] = dict(project.data)
    return out


def project_from_dict(data: Any) -> Project:
    graph = graph_from_dict(data)
    training, source = data.get("training", {}), data.get("data", {})
    _expect(isinstance(training, dict), "training", "must be an object")
    _expect(isinstance(source, dict), "data", "must be an object")
    try:
        check_settings(training, "training")
    except SettingsError as err:
        raise FormatError(str(err)) from None
    return Project(graph, dict(training), dict(source))


def load_project(path: str | os.PathLike) -> Project:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: cannot read ({err.__class__.__name__}: {err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    try:
        return project_from_dict(data)
    except FormatError as err:
        raise FormatError(f"{path.name}: {err}") from None


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write beside the target, fsync, then rename over it: a crash leaves the old file whole."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_project(project: Project, path: str | os.PathLike) -> None:
    text = json.dumps(project_to_dict(project), indent=1)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))
