"""The ``nn.Module`` classes of exported PyTorch code: ``Net`` for the model and one class per
block definition, as a person would write them.

A level (the model, or a block definition) becomes an ``__init__`` holding one module per node
that has parameters, under the node's id, and a ``forward`` with one line per node. A block
instance is a module too: ``self.enc = Residual()``, or ``nn.ModuleList([Residual() for _ in
range(4)])`` run in a loop when it repeats. So a parameter's path in the module tree is its
Layerloom key (``enc.2.fc1.weight``) and a weights file is the state_dict unchanged. A definition
used with two different input shapes (its layers' sizes follow the input) gets one class each.
"""
from __future__ import annotations

import keyword
from dataclasses import dataclass, field

from layerloom.engine.block_types import BLOCK_INPUT, BLOCK_OUTPUT
from layerloom.engine.export.outputs import ExportError
from layerloom.engine.graph import Graph
from layerloom.engine.shapes import ShapeReport
from layerloom.engine.spec import AttrValues

# Attribute names of torch.nn.Module (2.13): a node holding a module under one of these names
# would replace a method of the model. Checked against torch itself in the tests.
MODULE_ATTRIBUTES = frozenset((
    "T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda "
    "double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter "
    "get_submodule half ipu load_state_dict modules mtia named_buffers named_children "
    "named_modules named_parameters parameters register_backward_hook register_buffer "
    "register_forward_hook register_forward_pre_hook register_full_backward_hook "
    "register_full_backward_pre_hook register_load_state_dict_post_hook "
    "register_load_state_dict_pre_hook register_module register_parameter "
    "register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state "
    "set_submodule share_memory state_dict to to_empty train training type xpu zero_grad").split())
# Names the generated code itself uses: a value named so gets a trailing underscore.
TAKEN = frozenset({"self", "torch", "F", "nn", "np", "len", "range", "outputs", "recurrent",
                   "self_attention", "multi_head_attention", "PositionalEmbedding",
                   "LearnedTensor", "block", "Net"})
INDENT = " " * 8


def value_names(graph: Graph) -> dict:
    """A Python name per value of one level ((node id, port) -> name), unique and clear of the
    file's own names: the node's id, or "<id>_<port>" for one of several outputs."""
    names, used = {}, set(TAKEN)
    for node_id in graph.nodes:
        ports = graph.output_ports(node_id)
        for port in ports:
            name = node_id if len(ports) == 1 else f"{node_id}_{port}"
            while name in used or keyword.iskeyword(name):
                name += "_"
            used.add(name)
            names[(node_id, port)] = name
    return names


@dataclass
class Level:
    """One level's code: ``__init__`` lines, ``forward`` lines, and what forward returns."""

    init: list = field(default_factory=list)
    forward: list = field(default_factory=list)
    returns: dict = field(default_factory=dict)  # BlockOutput id -> the value it returns


@dataclass
class ModuleWriter:
    """Writes levels; collects each definition's class (dependencies first) and the helpers the
    layers' code needs."""

    classes: list = field(default_factory=list)  # class source texts
    helpers: list = field(default_factory=list)
    _by_key: dict = field(default_factory=dict)  # (definition, input shapes) -> class name

    def level(self, graph: Graph, report: ShapeReport, names: dict) -> Level:
        out, frozen = Level(), []
        for node_id in graph.topological_order():
            node, cls = graph.nodes[node_id], graph.layer(node_id)
            if cls.is_source or cls.is_loss or node.type == BLOCK_INPUT:
                continue
            args = {}
            for port in graph.input_ports(node_id):
                edge = graph.edge_into((node_id, port))
                if edge is not None:
                    args[port] = names[tuple(edge.src)]
            if node.type == BLOCK_OUTPUT:
                out.returns[node_id] = args["x"]
                continue
            targets = [names[(node_id, p)] for p in graph.output_ports(node_id)]
            holds = self._node_lines(graph, report, node_id, args, targets, out)
            if holds and node.frozen:
                frozen.append(node_id)
        out.init += [f"{INDENT}self.{n}.requires_grad_(False)" for n in frozen]  # trained nowhere
        return out

    def _node_lines(self, graph: Graph, report: ShapeReport, node_id: str, args: dict,
                    targets: list, out: Level) -> bool:
        """Adds one node's lines; True when it holds a module (parameters) under its id."""
        node, definition = graph.nodes[node_id], graph.definition(node_id)
        if definition is not None:
            cls_name = self.block_class(definition, report.inner[node_id],
                                        report.in_shapes[node_id])
            self._check_name(node_id)
            ins = ", ".join(args[p] for p in graph.input_ports(node_id))
            lhs = ", ".join(targets)
            n = node.attrs["repeat"]
            if n == 1:
                out.init.append(f"{INDENT}self.{node_id} = {cls_name}()")
                out.forward.append(f"{INDENT}{lhs + ' = ' if lhs else ''}self.{node_id}({ins})")
            else:
                out.init.append(f"{INDENT}self.{node_id} = nn.ModuleList("
                                f"[{cls_name}() for _ in range({n})])")
                out.forward += [f"{INDENT}{lhs} = {ins}", f"{INDENT}for block in self.{node_id}:",
                                f"{INDENT}    {lhs} = block({lhs})"]
            return True
        code = graph.layer(node_id).to_torch(AttrValues(node.attrs), report.in_shapes[node_id])
        self.helpers += [h.strip("\n") for h in code.helpers if h.strip("\n") not in self.helpers]
        if code.module:
            self._check_name(node_id)
            out.init.append(f"{INDENT}self.{node_id} = {code.module}")
        expr = code.forward.format(m=f"self.{node_id}", **args)
        out.forward.append(f"{INDENT}{', '.join(targets)} = {expr}")
        return bool(code.module)

    @staticmethod
    def _check_name(node_id: str) -> None:
        if node_id in MODULE_ATTRIBUTES:
            raise ExportError(f"node {node_id!r}: PyTorch modules use that name for their own "
                              f"{node_id!r}; rename the node to export it")

    def block_class(self, definition: Graph, report: ShapeReport, in_shapes: tuple) -> str:
        """The class of a definition used with these input shapes, written on first use."""
        key = (definition.name, tuple(tuple(s) for s in in_shapes))
        if key not in self._by_key:
            base = "".join(w[:1].upper() + w[1:] for w in definition.name.split("_") if w) or "B"
            base = base + "Block" if base in TAKEN else base  # "Net", a helper's name
            taken, name, i = set(self._by_key.values()), base, 2
            while name in taken:  # the same definition at another width: Flex, Flex2
                name, i = f"{base}{i}", i + 1
            self._by_key[key] = name
            names = value_names(definition)
            body = self.level(definition, report, names)
            ports = [names[(p, "y")] for p in definition.port_nodes(BLOCK_INPUT)]
            self.classes.append(_class_source(name, definition, in_shapes, ports, body))
        return self._by_key[key]


def _class_source(name: str, definition: Graph, in_shapes: tuple, ports: list,
                  body: Level) -> str:
    # in port order, as the caller unpacks them (the walk above met them in topological order)
    results = [body.returns[p] for p in definition.port_nodes(BLOCK_OUTPUT)]
    takes = ", ".join(f"{p} of shape (batch, {', '.join(map(str, s[1:]))})"
                      for p, s in zip(ports, in_shapes)) or "nothing"
    lines = [f"class {name}(nn.Module):",
             f'    """Block {definition.name!r} of the graph (takes {takes})."""', "",
             "    def __init__(self):", f"{INDENT}super().__init__()", *body.init, "",
             f"    def forward(self{''.join(', ' + p for p in ports)}):", *body.forward,
             f"{INDENT}return {', '.join(results) or 'None'}"]
    return "\n".join(lines)
