"""The block rules of a graph, mixed into ``Graph``: ports of instances, the definitions a
model holds, and the checks that span levels.

A model's ``blocks`` maps a name to the definition's own Graph (BlockInput/BlockOutput nodes are
its ports, in insertion order). Every definition shares its model's ``blocks`` and knows the
model as ``model``, so the rules are checked wherever an edit happens: a block may not contain
itself (directly or through another), a port some instance has wired may not disappear under the
wire, ports go inside definitions and data, labels and losses in the model itself.
"""
from __future__ import annotations

import keyword
from typing import Callable

from layerloom.engine.block_types import BLOCK, BLOCK_INPUT, BLOCK_OUTPUT
from layerloom.engine.graph_data import GraphError


class BlockModel:
    """What ``Graph`` knows about blocks (see the module docstring)."""

    def input_ports(self, node_id: str) -> tuple:
        """A node's input port names: its layer's, or for a block its definition's BlockInputs."""
        definition = self.definition(node_id)
        return definition.port_nodes(BLOCK_INPUT) if definition else self.layer(node_id).inputs

    def output_ports(self, node_id: str) -> tuple:
        definition = self.definition(node_id)
        if definition:
            return definition.port_nodes(BLOCK_OUTPUT)
        return self.layer(node_id).outputs_for(self._node(node_id).attrs)

    def definition(self, node_id: str) -> "BlockModel | None":
        """The block definition a node is an instance of; None for any other node."""
        node = self._node(node_id)
        return self.blocks[node.attrs["block"]] if node.type == BLOCK else None

    def block_of(self, node_id: str) -> str | None:
        """The name of the definition a node is an instance of; None for any other node."""
        node = self._node(node_id)
        return node.attrs["block"] if node.type == BLOCK else None

    def copies(self, node_id: str) -> int:
        """How many copies a node stands for: a block's repeat, 1 for anything else."""
        node = self._node(node_id)
        return node.attrs["repeat"] if node.type == BLOCK else 1

    def port_nodes(self, type_id: str) -> tuple:
        """Ids of this definition's BlockInput (or BlockOutput) nodes: its ports, in order."""
        return tuple(n.id for n in self.nodes.values() if n.type == type_id)

    def instances_of(self, name: str) -> list[tuple["BlockModel", str]]:
        """(graph, node id) of every instance of a definition, in the model and in definitions."""
        return [(g, n.id) for g in (self.model, *self.blocks.values()) for n in g.nodes.values()
                if n.type == BLOCK and n.attrs["block"] == name]

    def uses(self, name: str) -> set:
        """Every definition that definition ``name`` contains, directly or through another."""
        seen, todo = set(), [name]
        while todo:
            for n in self.blocks[todo.pop()].nodes.values():
                if n.type == BLOCK and n.attrs["block"] not in seen:
                    seen.add(n.attrs["block"])
                    todo.append(n.attrs["block"])
        return seen

    def _check_level(self, node_id: str, cls) -> None:
        """Ports go inside definitions; data, labels and losses in the model itself."""
        if self.name is None and cls.type_id in (BLOCK_INPUT, BLOCK_OUTPUT):
            raise GraphError(f"{cls.type_id} {node_id!r}: block ports only go inside a block "
                             f"definition")
        if self.name is not None and (cls.is_source or cls.is_loss):
            raise GraphError(f"{cls.type_id} {node_id!r} cannot go inside block {self.name!r}: "
                             f"a block takes its data through BlockInput nodes")

    def _check_block_ref(self, node_id: str, name: str, ports_of: str | None = None) -> None:
        if name not in self.blocks:
            raise GraphError(f"Block {node_id!r}: no block definition named {name!r}")
        if self.name is not None and (name == self.name or self.name in self.uses(name)):
            via = "" if name == self.name else f" through {name!r}"
            raise GraphError(f"block {self.name!r} cannot contain itself{via}")
        if ports_of is not None:  # an instance switching definitions keeps its wired ports
            ins, outs = (self.blocks[name].port_nodes(t) for t in (BLOCK_INPUT, BLOCK_OUTPUT))
            for e in self.edges:
                port = (e.dst[1] if e.dst[0] == ports_of and e.dst[1] not in ins else
                        e.src[1] if e.src[0] == ports_of and e.src[1] not in outs else None)
                if port is not None:
                    raise GraphError(f"block {name!r} has no port {port!r}, which {ports_of!r} "
                                     f"is connected to")

    def port_wires(self, node_id: str) -> list:
        """(graph, edge) of every wire an instance of this definition has on the port that
        BlockInput/BlockOutput ``node_id`` makes; [] for any other node."""
        node = self.nodes[node_id]
        if self.name is None or node.type not in (BLOCK_INPUT, BLOCK_OUTPUT):
            return []
        return [(graph, e) for graph, inst in self.instances_of(self.name) for e in graph.edges
                if (e.dst if node.type == BLOCK_INPUT else e.src) == (inst, node_id)]

    def _check_port_free(self, node_id: str, verb: str) -> None:
        """A definition's port that some instance has wired may not disappear under the wire."""
        for graph, e in self.port_wires(node_id)[:1]:
            inst = e.dst[0] if self.nodes[node_id].type == BLOCK_INPUT else e.src[0]
            where = f" in block {graph.name!r}" if graph.name else ""
            raise GraphError(f"cannot {verb} port {node_id!r} of block {self.name!r}: it is "
                             f"connected on {inst!r}{where}; disconnect it there first")

    def new_block(self, name: str) -> "BlockModel":
        """An empty definition belonging to this graph's model (not yet added: ``add_block``)."""
        return type(self)(self.model, name)

    def unique_block_name(self, stem: str) -> str:
        stem = "".join(ch for ch in stem.lower() if ch.isalnum() or ch == "_") or "block"
        stem = "b" + stem if stem[0].isdigit() else stem
        if stem not in self.blocks and not keyword.iskeyword(stem):
            return stem
        i = 2
        while f"{stem}_{i}" in self.blocks:
            i += 1
        return f"{stem}_{i}"

    def add_block(self, definition: "BlockModel", index: int | None = None) -> None:
        """Add a definition to the model; ``index`` restores its old place (undo)."""
        model, name = self.model, definition.name
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise GraphError(f"block name {name!r} must be a Python identifier (letters, digits, _)")
        if definition.model is not model:
            raise GraphError(f"block {name!r} belongs to another model")
        if name in model.blocks:
            raise GraphError(f"a block named {name!r} already exists")
        items = list(model.blocks.items())
        items.insert(len(items) if index is None else index, (name, definition))
        model.blocks.clear()
        model.blocks.update(items)
        definition.changed.connect(model._block_slot(definition))
        model.block_added.emit(name)
        model.changed.emit()

    def remove_block(self, name: str) -> tuple["BlockModel", int]:
        """Remove an unused definition; returns it and its place for an undo."""
        model = self.model
        if name not in model.blocks:
            raise GraphError(f"no block definition named {name!r}")
        users = model.instances_of(name)
        if users:
            raise GraphError(f"block {name!r} is still used by {users[0][1]!r}")
        index = list(model.blocks).index(name)
        definition = model.blocks.pop(name)
        definition.changed.disconnect(model._block_slot(definition))
        model.block_removed.emit(name)
        model.changed.emit()
        return definition, index

    def _block_slot(self, definition: "BlockModel") -> Callable:
        """The model's one listener per definition (kept so it can be disconnected)."""
        slots = self.__dict__.setdefault("_slots", {})
        if id(definition) not in slots:
            def slot() -> None:
                self.block_changed.emit(definition.name)
                self.changed.emit()
            slots[id(definition)] = slot
        return slots[id(definition)]
