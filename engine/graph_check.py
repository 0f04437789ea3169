"""Every rule a graph file must meet, checked on the parsed JSON before anything is built.

Hand-written checks rather than a schema library: the rules for attributes already live on each
layer's descriptors (Int, Float, Choice… with their ranges), which this reads for any layer,
including ones added later, so a schema would restate them; the checks that matter most here
(sizes, ids, ports that depend on a block definition, cycles) are not structural anyway; and each
message must be one line with a JSON path (``nodes[3].attrs.out_features: must be <= 1000000,
got 5000000``), which is simplest to write where the rule is.
"""
from __future__ import annotations

from typing import Any

from layerloom.engine.block_types import BLOCK, BLOCK_INPUT, BLOCK_OUTPUT, STRUCTURAL
from layerloom.engine.graph_data import GraphError, check_node_id
from layerloom.engine.registry import LAYERS
from layerloom.engine.safe_json import join
from layerloom.engine.short_repr import short
from layerloom.engine.spec import AttrError, LayerloomError

FORMAT, VERSION = "layerloom-graph", 2
VERSIONS = (1, 2)  # what this build reads; version 2 is the first with "blocks"
# Far above any graph a person draws, low enough that checking and building stay quick.
MAX_NODES, MAX_EDGES, MAX_BLOCKS = 2_000, 4_000, 200  # over the whole file, blocks included
MAX_ID = 100  # characters of a node id or a block name
MAX_POS = 1e7  # canvas coordinates


class FormatError(LayerloomError):
    """A graph file that cannot be read; the message names the file and the JSON path."""


def expect(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise FormatError(f"{where}: {what}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_graph_dict(data: Any) -> None:
    """Structure, types, ranges and sizes of a whole file; raises FormatError naming the path."""
    expect(isinstance(data, dict), "top level", "must be a JSON object")
    expect(data.get("format") == FORMAT, "format", f"must be {FORMAT!r}, got {short(data.get('format'))}")
    version = data.get("version")
    expect(isinstance(version, int) and not isinstance(version, bool) and version in VERSIONS,
           "version", f"version {short(version)} is not supported (this build reads "
           f"{' and '.join(map(str, VERSIONS))})")
    blocks = data.get("blocks", {})
    expect(isinstance(blocks, dict), "blocks", "must be an object of block definitions")
    expect(not blocks or version >= 2, "blocks", "block definitions need version 2")
    expect(len(blocks) <= MAX_BLOCKS, "blocks", f"at most {MAX_BLOCKS} definitions, got {len(blocks):,}")
    levels = []
    for name, raw in blocks.items():
        where = join("blocks", name)
        expect(len(name) <= MAX_ID and name.isidentifier(), where,
               f"a block name must be a Python identifier of at most {MAX_ID} characters")
        expect(isinstance(raw, dict), where, "must be an object with nodes and edges")
        levels.append((where + ".", raw))
    levels.append(("", data))
    counts = [0, 0]
    for prefix, raw in levels:
        for i, key in enumerate(("nodes", "edges")):
            items = raw.get(key, [] if key == "edges" else None)
            expect(isinstance(items, list), f"{prefix}{key}", "must be a list")
            counts[i] += len(items)
    expect(counts[0] <= MAX_NODES, "nodes", f"a file holds at most {MAX_NODES:,} nodes, got {counts[0]:,}")
    expect(counts[1] <= MAX_EDGES, "edges", f"a file holds at most {MAX_EDGES:,} edges, got {counts[1]:,}")
    types = {prefix: _check_nodes(raw["nodes"], prefix, blocks) for prefix, raw in levels}
    ports = {name: tuple(tuple(n for n, (t, *_) in types[join("blocks", name) + "."].items()
                               if t == kind) for kind in (BLOCK_INPUT, BLOCK_OUTPUT))
             for name in blocks}
    for prefix, raw in levels:
        _check_edges(raw.get("edges", []), prefix, types[prefix], ports)


def check_level(level: Any, prefix: str, blocks: dict) -> None:
    """One level added to a model on its own (a block definition from the library, a grouping):
    the same checks as a file's, the ports of its block instances read from the model's built
    definitions (``blocks``: name -> Graph)."""
    expect(isinstance(level, dict), prefix.rstrip(".") or "level", "must be an object with nodes and edges")
    nodes, edges = level.get("nodes"), level.get("edges", [])
    expect(isinstance(nodes, list), f"{prefix}nodes", "must be a list")
    expect(isinstance(edges, list), f"{prefix}edges", "must be a list")
    expect(len(nodes) <= MAX_NODES and len(edges) <= MAX_EDGES, prefix.rstrip(".") or "level",
           f"at most {MAX_NODES:,} nodes and {MAX_EDGES:,} edges")
    ports = {name: (d.port_nodes(BLOCK_INPUT), d.port_nodes(BLOCK_OUTPUT)) for name, d in blocks.items()}
    _check_edges(edges, prefix, _check_nodes(nodes, prefix, blocks), ports)


def _check_nodes(nodes: list, prefix: str, blocks: dict) -> dict:
    """{node id: (type, block name or None, validated attrs)} of one level, every node checked."""
    seen: dict[str, tuple] = {}
    for i, raw in enumerate(nodes):
        where = f"{prefix}nodes[{i}]"
        node_id, *rest = _check_node(raw, where, blocks)
        expect(node_id not in seen, f"{where}.id", f"{node_id!r} is the id of an earlier node")
        seen[node_id] = tuple(rest)
    return seen


def _check_node(raw: Any, where: str, blocks: dict) -> tuple:
    expect(isinstance(raw, dict), where, "must be an object")
    node_id, type_id = raw.get("id"), raw.get("type")
    expect(isinstance(node_id, str), f"{where}.id", f"must be a string, got {short(node_id)}")
    expect(len(node_id) <= MAX_ID, f"{where}.id", f"at most {MAX_ID} characters, got {len(node_id):,}")
    try:
        check_node_id(node_id)
    except GraphError as err:
        raise FormatError(f"{where}.id: {err}") from None
    expect(isinstance(type_id, str), f"{where}.type", f"must be a string, got {short(type_id)}")
    cls = LAYERS.get(type_id) or STRUCTURAL.get(type_id)
    expect(cls is not None, f"{where}.type", f"unknown layer type {short(type_id)}")
    values = _check_attrs(raw.get("attrs", {}), f"{where}.attrs", cls)
    block = values["block"] if type_id == BLOCK else None
    expect(block is None or block in blocks, f"{where}.attrs.block",
           f"no block definition named {short(block)}")
    pos = raw.get("pos", [0, 0])
    expect(isinstance(pos, list) and len(pos) == 2 and all(_is_number(v) for v in pos),
           f"{where}.pos", f"must be [x, y], got {short(pos)}")
    expect(all(abs(v) <= MAX_POS for v in pos), f"{where}.pos",
           f"each coordinate must be within ±{MAX_POS:g}, got {short(pos)}")
    expect(isinstance(raw.get("frozen", False), bool), f"{where}.frozen", "must be true or false")
    return node_id, type_id, block, values


def _check_attrs(attrs: Any, where: str, cls) -> dict:
    """Each attribute against its descriptor (type, range, choices), then the layer's own
    cross-attribute rules; returns all the validated values, defaults filled in."""
    expect(isinstance(attrs, dict), where, f"must be an object, got {short(attrs)}")
    values = {}
    for name, value in attrs.items():
        path = join(where, name)
        expect(name in cls.attrs, path, f"{cls.type_id} has no attribute {short(name)}")
        try:
            values[name] = cls.attrs[name].validate(path, value)
        except AttrError as err:
            raise FormatError(str(err)) from None
    try:
        return cls.validate_attrs(values)  # defaults filled, then check_attrs
    except AttrError as err:
        raise FormatError(f"{where}: {err}") from None


def _check_edges(edges: list, prefix: str, types: dict, ports: dict) -> None:
    """Each edge joins an existing output port to a free input port; no cycle (Kahn, linear)."""
    fed: dict[tuple, int] = {}
    for j, raw in enumerate(edges):
        where = f"{prefix}edges[{j}]"
        expect(isinstance(raw, dict), where, "must be an object")
        ends = []
        for key, side in (("from", 1), ("to", 0)):
            ref = raw.get(key)
            expect(isinstance(ref, list) and len(ref) == 2 and all(isinstance(s, str) for s in ref),
                   f"{where}.{key}", f"must be [node_id, port], got {short(ref)}")
            node_id, port = ref
            expect(node_id in types, f"{where}.{key}", f"no node named {short(node_id)}")
            type_id, block, attrs = types[node_id]
            cls = LAYERS.get(type_id) or STRUCTURAL[type_id]
            names = ports[block][side] if block else (cls.outputs_for(attrs) if side else cls.inputs)
            expect(port in names, f"{where}.{key}", f"{type_id} {node_id!r} has no "
                   f"{('input', 'output')[side]} port {short(port)} (it has "
                   f"{', '.join(names) or 'none'})")
            ends.append((node_id, port))
        src, dst = ends
        expect(src[0] != dst[0], where, f"connects {src[0]!r} to itself")
        expect(dst not in fed, f"{where}.to",
               f"input {dst[1]!r} of {dst[0]!r} is already fed by {prefix}edges[{fed.get(dst)}]")
        fed[dst] = j
    order = topological(list(types), edges)
    if len(order) < len(types):
        stuck = [n for n in types if n not in set(order)]
        raise FormatError(f"{prefix}edges: the graph has a cycle through {', '.join(stuck[:5])}"
                          + (f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""))


def topological(node_ids: list, edges: list) -> list[str]:
    """Kahn's order of checked edges' nodes (shorter than ``node_ids`` when there is a cycle)."""
    after: dict[str, list] = {n: [] for n in node_ids}
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
