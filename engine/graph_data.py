"""The plain data a graph is made of (nodes, edges, a Qt-free signal) and its error type.

Kept apart from ``engine.graph`` so the block rules (``engine.block_model``) can use them
without importing the Graph they are mixed into; ``engine.graph`` re-exports every name.
"""
from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from typing import Any, Callable

from layerloom.engine.spec import LayerloomError


class GraphError(LayerloomError):
    """A graph edit or file that breaks a structural rule (cycle, taken port, unknown type...)."""


class Signal:
    """A tiny Qt-free signal: ``connect(fn)``, ``emit(*args)``; keeps the engine headless."""

    def __init__(self) -> None:
        self._slots: list[Callable] = []

    def connect(self, fn: Callable) -> None:
        self._slots.append(fn)

    def disconnect(self, fn: Callable) -> None:
        self._slots.remove(fn)

    def emit(self, *args: Any) -> None:
        for fn in list(self._slots):
            fn(*args)


PortRef = tuple  # (node_id, port_name)


@dataclass
class Node:
    id: str
    type: str
    attrs: dict = field(default_factory=dict)
    pos: tuple = (0.0, 0.0)
    frozen: bool = False

    def __repr__(self) -> str:
        frozen = ", frozen" if self.frozen else ""
        return f"Node({self.id!r}, {self.type}, {self.attrs}{frozen})"


@dataclass(frozen=True)
class Edge:
    src: PortRef  # (node_id, output port)
    dst: PortRef  # (node_id, input port)


def check_node_id(node_id: str) -> None:
    """Ids become parameter keys and PyTorch attribute names, so they must be identifiers."""
    if not isinstance(node_id, str) or not node_id.isidentifier() or keyword.iskeyword(node_id):
        raise GraphError(f"node id {node_id!r} must be a Python identifier (letters, digits, _)")
