"""What changed between two graph files, as a person would say it: nodes added, removed or
changed (type, attributes, frozen), edges added or removed. Positions are layout, not structure,
and are ignored. The Runs panel highlights the changed nodes on the canvas; ``layerloom runs
compare`` prints the lines."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

IGNORED_SECTIONS = {"format", "version", "nodes", "edges", "training", "data", "weights", "blocks"}


@dataclass(frozen=True)
class GraphDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: dict = field(default_factory=dict)  # node id -> ((what, in a, in b), ...)
    edges_added: tuple[tuple, ...] = ()
    edges_removed: tuple[tuple, ...] = ()
    sections: tuple[str, ...] = ()  # other top-level sections that differ (block definitions …)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.edges_added
                    or self.edges_removed or self.sections)

    @property
    def touched_nodes(self) -> set[str]:
        """Nodes of the second graph to highlight: added or changed, or at an edge that is new."""
        ends = {e[0][0] for e in self.edges_added} | {e[1][0] for e in self.edges_added}
        return set(self.added) | set(self.changed) | ends

    def lines(self) -> list[str]:
        out = [f"node {n} added" for n in self.added]
        out += [f"node {n} removed" for n in self.removed]
        for node, items in sorted(self.changed.items()):
            out += [f"node {node}: {what} {a!r} -> {b!r}" for what, a, b in items]
        out += [f"edge {_edge(e)} added" for e in self.edges_added]
        out += [f"edge {_edge(e)} removed" for e in self.edges_removed]
        out += [f"{name} differ" for name in self.sections]
        return out or ["the graphs have the same structure"]


def _edge(e: tuple) -> str:
    return f"{e[0][0]}.{e[0][1]} -> {e[1][0]}.{e[1][1]}"


def _nodes(doc: dict) -> dict[str, dict]:
    return {n["id"]: n for n in doc.get("nodes", []) if isinstance(n, dict) and "id" in n}


def _edges(doc: dict) -> set[tuple]:
    return {(tuple(e["from"]), tuple(e["to"])) for e in doc.get("edges", [])
            if isinstance(e, dict) and "from" in e and "to" in e}


def diff_graphs(a: dict, b: dict) -> GraphDiff:
    na, nb = _nodes(a), _nodes(b)
    changed = {}
    for node in sorted(set(na) & set(nb)):
        x, y = na[node], nb[node]
        items = []
        if x.get("type") != y.get("type"):
            items.append(("type", x.get("type"), y.get("type")))
        ax, ay = x.get("attrs") or {}, y.get("attrs") or {}
        items += [(f"attrs.{k}", ax.get(k), ay.get(k)) for k in sorted(set(ax) | set(ay))
                  if ax.get(k) != ay.get(k)]
        if bool(x.get("frozen")) != bool(y.get("frozen")):
            items.append(("frozen", bool(x.get("frozen")), bool(y.get("frozen"))))
        if items:
            changed[node] = tuple(items)
    ea, eb = _edges(a), _edges(b)
    sections = tuple(sorted(k for k in (set(a) | set(b)) - IGNORED_SECTIONS
                            if a.get(k) != b.get(k))) + _blocks_differ(a, b)
    return GraphDiff(tuple(sorted(set(nb) - set(na))), tuple(sorted(set(na) - set(nb))), changed,
                     tuple(sorted(eb - ea)), tuple(sorted(ea - eb)), sections)


def _blocks_differ(a: dict, b: dict) -> tuple[str, ...]:
    """"block NAME" for each block definition whose structure differs (its layout is ignored,
    as the model's is)."""
    ba, bb = a.get("blocks") or {}, b.get("blocks") or {}
    if not isinstance(ba, dict) or not isinstance(bb, dict):
        return ("blocks",) if ba != bb else ()
    return tuple(f"block {name}" for name in sorted(set(ba) | set(bb))
                 if name not in ba or name not in bb or not diff_graphs(ba[name], bb[name]).empty)


def diff_graph_json(a: str, b: str) -> GraphDiff:
    return diff_graphs(json.loads(a), json.loads(b))
