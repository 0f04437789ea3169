"""The ``layerloom-graph`` JSON format: a graph plus training settings and data source.

Version 2 adds block definitions (``"blocks": {name: {"nodes": [...], "edges": [...]}}``, each a
graph whose BlockInput/BlockOutput nodes are its ports) used by ``Block`` nodes. A file without
blocks is still written as version 1, so older builds keep reading it; version 1 files load as
they always did.

Loading is three stages: read a bounded regular file and parse it within limits
(``engine.safe_json``: depth, integer size, duplicate keys), check every rule on the plain data
(``engine.graph_check``: a one-line error with a JSON path), then build through ``Graph``'s public
methods so every rule of an edit also holds for a file. Nothing in a file is ever executed.
Writes are atomic (temporary file, fsync, ``os.replace``).
"""
from __future__ import annotations

import bisect
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerloom.engine.graph import Graph, GraphError, Node
from layerloom.engine.graph_check import (FORMAT, VERSION, VERSIONS, FormatError, check_graph_dict,
                                          check_level, expect, topological)
from layerloom.engine.safe_json import JSONLimitError, join, loads
from layerloom.engine.training_config import SettingsError, check_settings

__all__ = ["FORMAT", "VERSION", "VERSIONS", "FormatError", "Project", "graph_from_dict",
           "graph_to_dict", "load_project", "save_project", "parse_text", "read_text",
           "atomic_write_bytes", "check_graph_dict", "fill_level"]
MAX_FILE_BYTES = 16 * 2**20


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


def graph_from_dict(data: Any) -> Graph:
    """Check everything first (``engine.graph_check``: a FormatError naming the JSON path), then
    build through ``Graph``'s own methods, so every rule of an edit also holds for a file.

    Definitions are built before the model, all their nodes before any of their edges, so a
    block may use one defined after it and every port exists when its edges are connected."""
    check_graph_dict(data)
    graph = Graph()
    levels = []
    for name, raw in data.get("blocks", {}).items():
        where = join("blocks", name)
        try:
            graph.add_block(graph.new_block(name))
        except GraphError as err:
            raise FormatError(f"{where}: {err}") from None
        levels.append((graph.blocks[name], raw, f"{where}."))
    levels.append((graph, data, ""))
    for level, raw, where in levels:
        _add_nodes(level, raw["nodes"], where)
    for level, raw, where in levels:
        _add_edges(level, raw.get("edges", []), where)
    return graph


def fill_level(graph: Graph, level: Any, where: str = "") -> None:
    """Add a level's nodes, then its edges, to ``graph`` (a new block definition), after the
    same checks a file's levels get (``engine.graph_check.check_level``)."""
    check_level(level, where, graph.model.blocks)
    _add_nodes(graph, level["nodes"], where)
    _add_edges(graph, level.get("edges", []), where)


def _add_nodes(graph: Graph, nodes: list, prefix: str) -> None:
    for i, raw in enumerate(nodes):
        try:
            graph.add_node(Node(raw["id"], raw["type"], raw.get("attrs", {}),
                                tuple(raw.get("pos", [0, 0])), raw.get("frozen", False)))
        except GraphError as err:  # the rules that span levels (a block inside itself...)
            raise FormatError(f"{prefix}nodes[{i}]: {err}") from None


def _add_edges(graph: Graph, edges: list, prefix: str) -> None:
    """Connected in the topological order of their sources, each put at its place in the file's
    order: the cycle check of ``connect`` then finds nothing downstream to walk (the file's own
    order could take cubic time on a long chain listed backwards)."""
    rank = {n: r for r, n in enumerate(topological(list(graph.nodes), edges))}
    placed: list[int] = []
    for i in sorted(range(len(edges)), key=lambda i: rank[edges[i]["from"][0]]):
        at = bisect.bisect(placed, i)
        try:
            graph.connect(tuple(edges[i]["from"]), tuple(edges[i]["to"]), index=at)
        except GraphError as err:
            raise FormatError(f"{prefix}edges[{i}]: {err}") from None
        placed.insert(at, i)


def project_to_dict(project: Project) -> dict:
    out = graph_to_dict(project.graph)
    out["training"] = dict(project.training)
    out["data"] = dict(project.data)
    return out


def project_from_dict(data: Any) -> Project:
    graph = graph_from_dict(data)
    training, source = data.get("training", {}), data.get("data", {})
    expect(isinstance(training, dict), "training", "must be an object")
    expect(isinstance(source, dict), "data", "must be an object")
    try:
        check_settings(training, "training")
    except SettingsError as err:
        raise FormatError(str(err)) from None
    return Project(graph, dict(training), dict(source))


def parse_text(text: str) -> Any:
    """JSON text to plain data within the limits (depth, integer size, duplicate keys)."""
    try:
        return loads(text)
    except JSONLimitError as err:
        raise FormatError(str(err)) from None


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes (never a device or a FIFO,
    which could be endless or block)."""
    try:
        if not path.is_file():
            raise FormatError(f"{path}: " + ("no such file" if not path.exists() else
                                             "not a regular file"))
        with path.open("rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err.strerror or err.__class__.__name__})") from None
    if len(raw) > limit:
        raise FormatError(f"{path}: larger than {limit // 2**20} MB, which no graph file is")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not UTF-8 text (byte {err.start})") from None


def load_project(path: str | os.PathLike) -> Project:
    path = Path(path)
    text = read_text(path)
    try:
        return project_from_dict(parse_text(text))
    except FormatError as err:
        raise FormatError(f"{path.name}: {err}") from None


TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what mkstemp names below look like
STALE_SECONDS = 3600.0  # a write takes milliseconds: an hour-old temporary was left by a kill


def _umask() -> int:
    """The process's umask, read without changing it (Linux's /proc), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """A rewritten file keeps its mode; a new one gets what ``open()`` would give it (0666 less
    the umask) instead of mkstemp's private 0600."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def sweep_temporaries(folder: str | os.PathLike, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporaries a killed write left in ``folder`` (older than ``older_than``
    seconds, so a write in progress elsewhere is never touched); returns what went."""
    import time

    gone, now = [], time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return gone
    for entry in entries:
        try:
            if TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False) \
                    and now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                os.unlink(entry.path)
                gone.append(Path(entry.path))
        except OSError:
            continue
    return gone


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write beside the target, fsync, then rename over it: a crash leaves the old file whole,
    a failed write leaves no temporary behind, and the file's mode follows the umask."""
    path = Path(path)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
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
