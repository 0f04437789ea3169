"""The ``layerloom-graph`` v1 JSON format: a graph plus training settings and data source.

Loading is two stages: parse and check the structure to a one-line error with a JSON path, then
build through ``Graph``'s public methods so every rule of an edit also holds for a file. Nothing in
a file is ever executed. Writes are atomic (temporary file, fsync, ``os.replace``).
"""
from __future__ import annotations

import bisect
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerloom.engine.graph import Graph, GraphError, Node, check_node_id
from layerloom.engine.registry import LAYERS
from layerloom.engine.safe_json import JSONLimitError, join, loads
from layerloom.engine.spec import AttrError, LayerloomError, short

FORMAT, VERSION = "layerloom-graph", 1
# Limits far above any graph a person draws, low enough that checking and building stay quick.
MAX_FILE_BYTES = 16 * 2**20
MAX_NODES, MAX_EDGES = 2_000, 4_000
MAX_ID = 100  # characters of a node id
MAX_POS = 1e7  # canvas coordinates


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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_graph_dict(data: Any) -> None:
    """Every rule a graph file must meet, checked on plain data before anything is built: the
    structure, each attribute against its layer's descriptor, ids, positions, edges and sizes.
    Raises FormatError naming the JSON path (``nodes[3].attrs.out_features: must be <= …``)."""
    _expect(isinstance(data, dict), "top level", "must be a JSON object")
    _expect(data.get("format") == FORMAT, "format", f"must be {FORMAT!r}, got {short(data.get('format'))}")
    version = data.get("version")
    _expect(isinstance(version, int) and not isinstance(version, bool) and version == VERSION,
            "version", f"version {short(version)} is not supported (this build reads {VERSION})")
    nodes, edges = data.get("nodes"), data.get("edges", [])
    _expect(isinstance(nodes, list), "nodes", "must be a list")
    _expect(isinstance(edges, list), "edges", "must be a list")
    _expect(len(nodes) <= MAX_NODES, "nodes", f"at most {MAX_NODES:,} nodes, got {len(nodes):,}")
    _expect(len(edges) <= MAX_EDGES, "edges", f"at most {MAX_EDGES:,} edges, got {len(edges):,}")
    types: dict[str, str] = {}
    for i, raw in enumerate(nodes):
        node_id, type_id = _check_node(raw, f"nodes[{i}]", types)
        types[node_id] = type_id
    _check_edges(edges, types)


def _check_node(raw: Any, where: str, seen: dict) -> tuple[str, str]:
    _expect(isinstance(raw, dict), where, "must be an object")
    node_id, type_id = raw.get("id"), raw.get("type")
    _expect(isinstance(node_id, str), f"{where}.id", f"must be a string, got {short(node_id)}")
    _expect(len(node_id) <= MAX_ID, f"{where}.id", f"at most {MAX_ID} characters, got {len(node_id):,}")
    try:
        check_node_id(node_id)
    except GraphError as err:
        raise FormatError(f"{where}.id: {err}") from None
    _expect(node_id not in seen, f"{where}.id", f"{node_id!r} is used by an earlier node")
    _expect(isinstance(type_id, str), f"{where}.type", f"must be a string, got {short(type_id)}")
    _expect(type_id in LAYERS, f"{where}.type", f"unknown layer type {short(type_id)}")
    cls = LAYERS[type_id]
    attrs = raw.get("attrs", {})
    _expect(isinstance(attrs, dict), f"{where}.attrs", f"must be an object, got {short(attrs)}")
    values = {}
    for name, value in attrs.items():
        path = join(f"{where}.attrs", name)
        _expect(name in cls.attrs, path, f"{type_id} has no attribute {short(name)}")
        try:
            values[name] = cls.attrs[name].validate(path, value)
        except AttrError as err:
            raise FormatError(str(err)) from None
    try:
        cls.validate_attrs(values)  # defaults and the cross-attribute rules (check_attrs)
    except AttrError as err:
        raise FormatError(f"{where}.attrs: {err}") from None
    pos = raw.get("pos", [0, 0])
    _expect(isinstance(pos, list) and len(pos) == 2 and all(_is_number(v) for v in pos),
            f"{where}.pos", f"must be [x, y], got {short(pos)}")
    _expect(all(abs(v) <= MAX_POS for v in pos), f"{where}.pos",
            f"each coordinate must be within ±{MAX_POS:g}, got {short(pos)}")
    _expect(isinstance(raw.get("frozen", False), bool), f"{where}.frozen", "must be true or false")
    return node_id, type_id


def _check_edges(edges: list, types: dict) -> None:
    """Each edge joins an existing output port to a free input port; no cycle (Kahn, linear)."""
    fed: dict[tuple, int] = {}
    for j, raw in enumerate(edges):
        where = f"edges[{j}]"
        _expect(isinstance(raw, dict), where, "must be an object")
        ends = []
        for key, side in (("from", "outputs"), ("to", "inputs")):
            ref = raw.get(key)
            _expect(isinstance(ref, list) and len(ref) == 2 and all(isinstance(s, str) for s in ref),
                    f"{where}.{key}", f"must be [node_id, port], got {short(ref)}")
            node_id, port = ref
            _expect(node_id in types, f"{where}.{key}", f"no node named {short(node_id)}")
            ports = getattr(LAYERS[types[node_id]], side)
            _expect(port in ports, f"{where}.{key}", f"{types[node_id]} {node_id!r} has no "
                    f"{side[:-1]} port {short(port)} (it has {', '.join(ports) or 'none'})")
            ends.append((node_id, port))
        src, dst = ends
        _expect(src[0] != dst[0], where, f"connects {src[0]!r} to itself")
        _expect(dst not in fed, f"{where}.to",
                f"input {dst[1]!r} of {dst[0]!r} is already fed by edges[{fed.get(dst)}]")
        fed[dst] = j
    order = _topological([{"id": n} for n in types], edges)
    if len(order) < len(types):
        stuck = [n for n in types if n not in set(order)]
        raise FormatError(f"edges: the graph has a cycle through {', '.join(stuck[:5])}"
                          + (f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""))


def graph_from_dict(data: Any) -> Graph:
    """Check everything (``check_graph_dict``), then build through ``Graph``'s own methods."""
    check_graph_dict(data)
    graph = Graph()
    for i, raw in enumerate(data["nodes"]):
        try:
            graph.add_node(Node(raw["id"], raw["type"], raw.get("attrs", {}),
                                tuple(raw.get("pos", [0, 0])), raw.get("frozen", False)))
        except GraphError as err:  # the checks above hold Graph's rules; kept as a net
            raise FormatError(f"nodes[{i}]: {err}") from None
    edges = data.get("edges", [])
    # Connected in the topological order of their sources, each put at its place in the file's
    # order: the cycle check of ``connect`` then finds nothing downstream to walk (any order of
    # a long chain would take cubic time).
    rank = {n: r for r, n in enumerate(_topological(data["nodes"], edges))}
    placed: list[int] = []
    for i in sorted(range(len(edges)), key=lambda i: rank[edges[i]["from"][0]]):
        at = bisect.bisect(placed, i)
        try:
            graph.connect(tuple(edges[i]["from"]), tuple(edges[i]["to"]), index=at)
        except GraphError as err:
            raise FormatError(f"edges[{i}]: {err}") from None
        placed.insert(at, i)
    return graph


def _topological(nodes: list, edges: list) -> list[str]:
    after: dict[str, list] = {raw["id"]: [] for raw in nodes}
    indeg = dict.fromkeys(after, 0)
    for raw in edges:
        after[raw["from"][0]].append(raw["to"][0])
        indeg[raw["to"][0]] += 1
    ready, order = [n for n, d in indeg.items() if d == 0], []
    while ready:
        order.append(ready.pop())
        for t in after[order[-1]]:
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    return order


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
