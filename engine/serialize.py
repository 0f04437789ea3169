"""The ``layerloom-graph`` v1 JSON format: a graph plus training settings and data source.

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

FORMAT, VERSION = "layerloom-graph", 1


class FormatError(LayerloomError):
    """A graph file that cannot be read; the message names the file and the JSON path."""


@dataclass
class Project:
    """What a graph file holds: the graph, training settings, and the data source spec."""

    graph: Graph
    training: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


def graph_to_dict(graph: Graph) -> dict:
    nodes = [{"id": n.id, "type": n.type, "attrs": _jsonable(n.attrs), "pos": list(n.pos),
              "frozen": n.frozen} for n in graph.nodes.values()]
    edges = [{"from": list(e.src), "to": list(e.dst)} for e in graph.edges]
    return {"format": FORMAT, "version": VERSION, "nodes": nodes, "edges": edges}


def _jsonable(attrs: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}


def _expect(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise FormatError(f"{where}: {what}")


def graph_from_dict(data: Any) -> Graph:
    """Validate the structure, then build; every problem is a FormatError naming its path."""
    _expect(isinstance(data, dict), "top level", "must be a JSON object")
    _expect(data.get("format") == FORMAT, "format", f"must be {FORMAT!r}, got {data.get('format')!r}")
    _expect(data.get("version") == VERSION, "version",
            f"version {data.get('version')!r} is not supported (this build reads {VERSION})")
    nodes, edges = data.get("nodes"), data.get("edges", [])
    _expect(isinstance(nodes, list), "nodes", "must be a list")
    _expect(isinstance(edges, list), "edges", "must be a list")
    graph = Graph()
    for i, raw in enumerate(nodes):
        where = f"nodes[{i}]"
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
    for i, raw in enumerate(edges):
        where = f"edges[{i}]"
        _expect(isinstance(raw, dict), where, "must be an object")
        for key in ("from", "to"):
            ref = raw.get(key)
            _expect(isinstance(ref, list) and len(ref) == 2 and all(isinstance(s, str) for s in ref),
                    f"{where}.{key}", "must be [node_id, port]")
        try:
            graph.connect(tuple(raw["from"]), tuple(raw["to"]))
        except GraphError as err:
            raise FormatError(f"{where}: {err}") from None
    return graph


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
