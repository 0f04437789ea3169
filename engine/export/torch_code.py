"""A graph as runnable PyTorch code: ``torch_source(graph, training) -> str``.

The file defines ``Net``: one torch module per node that has parameters, stored under the node's
id, so a Layerloom weights file (keys "<node_id>.<param>") is its state_dict unchanged. It also
defines ``compute_loss`` (the graph's loss nodes, summed) and a command line. The command line
trains on an ``.npz`` data set with the graph's training settings and writes the weights back as
``.npz``, which Layerloom imports, so a model prototyped here can train at scale on a GPU and come
back. Frozen nodes stay frozen. Every node's translation comes from its layer's ``to_torch``; this
module only lays the file out, and never imports torch.
"""
from __future__ import annotations

import keyword
from dataclasses import dataclass

from layerloom.engine.export.outputs import ExportError, model_outputs
from layerloom.engine.export.torch_runner import LIBRARY, RUNNER
from layerloom.engine.graph import Graph
from layerloom.engine.plan import Plan, compile_plan
from layerloom.engine.training import TrainConfig

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
TAKEN = frozenset({"self", "torch", "F", "nn", "np", "len", "outputs", "recurrent",
                   "self_attention", "PositionalEmbedding"})
INDENT = " " * 8


@dataclass
class _Names:
    """A Python name per value (node output port), unique and clear of the file's own names."""

    plan: Plan

    def __post_init__(self) -> None:
        self.by_ref: dict = {}
        used = set(TAKEN)
        for s in self.plan.steps:
            for port in s.outputs:
                name = s.node_id if len(s.outputs) == 1 else f"{s.node_id}_{port}"
                while name in used or keyword.iskeyword(name):
                    name += "_"
                used.add(name)
                self.by_ref[(s.node_id, port)] = name

    def __getitem__(self, ref) -> str:
        return self.by_ref[ref]


def torch_source(graph: Graph, training: dict | None = None, title: str = "model") -> str:
    """The whole ``.py`` file for ``graph``; ``training`` is the project's training section."""
    plan = compile_plan(graph)
    names = _Names(plan)
    steps = [s for s in plan.steps if not s.layer.is_source]
    codes = {s.node_id: s.layer.to_torch(s.attrs, s.in_shapes) for s in steps}
    for s in steps:
        if codes[s.node_id].module and s.node_id in MODULE_ATTRIBUTES:
            raise ExportError(f"node {s.node_id!r}: PyTorch modules use that name for their own "
                              f"{s.node_id!r}; rename the node to export it")
    inputs = [s for s in plan.steps if s.layer.type_id == "Input"]
    labels = [s for s in plan.steps if s.layer.type_id == "Label"]
    losses = [s for s in steps if s.layer.is_loss]
    outputs = model_outputs(plan)
    helpers = list(dict.fromkeys(h.strip("\n") for c in codes.values() for h in c.helpers))
    parts = [_header(title, inputs, labels, losses), LIBRARY.strip("\n"), *helpers,
             _net_class(plan, names, codes, inputs, outputs),
             _loss_function(plan, names, codes, losses, labels, outputs)]
    config = TrainConfig.from_dict(training or {})
    settings = {name: getattr(config, name) for name in ("optimizer", "lr", "schedule", "momentum",
                                                         "weight_decay", "batch_size", "epochs",
                                                         "seed")}
    runner = RUNNER.replace("__TRAINING__", "{\n" + "".join(
        f"    {k!r}: {v!r},\n" for k, v in settings.items()) + "}")
    trainable = len(inputs) == 1 and len(labels) == 1 and losses
    runner = runner.replace("__INPUT_SHAPE__", repr(tuple(inputs[0].attrs.shape) if inputs else ()))
    runner = runner.replace("__INPUT_DTYPE__", repr(inputs[0].attrs.dtype if inputs else ""))
    runner = runner.replace("__LABEL_KIND__", repr(labels[0].attrs.kind if labels else ""))
    runner = runner.replace("__TRAINABLE__", repr(bool(trainable)))
    return "\n\n\n".join(p for p in parts if p) + "\n\n\n" + runner.strip("\n") + "\n"


def _header(title: str, inputs: list, labels: list, losses: list) -> str:
    args = ", ".join(s.node_id for s in inputs)
    shapes = "; ".join(f"{s.node_id}: (batch, {', '.join(map(str, s.attrs.shape))}) "
                       f"{s.attrs.dtype}" for s in inputs)
    loss = (f"\n``compute_loss(model({args}), {', '.join(s.node_id for s in labels)})`` is the "
            f"graph's loss ({', '.join(s.layer.type_id for s in losses)}).") if losses else ""
    return (f'"""{title}: PyTorch code exported by Layerloom.\n\n'
            f"``Net()`` is the graph; ``model({args})`` takes {shapes}.{loss}\n"
            f"Weights exported by Layerloom (.npz or .safetensors) load with ``load_weights``.\n\n"
            f"    python {title}.py --data DATA.npz [--weights W.npz] [--epochs N] "
            f"[--device cuda] --save OUT.npz\n\n"
            f"trains it (``python {title}.py --help`` for the options).\n"
            f'"""\nimport argparse\nimport json\nimport math\nimport struct\nimport sys\n\n'
            f"import numpy as np\nimport torch\nimport torch.nn.functional as F\n"
            f"from torch import nn")


def _net_class(plan: Plan, names: _Names, codes: dict, inputs: list, outputs: list) -> str:
    init, forward, frozen = [], [], []
    for s in plan.steps:
        if s.layer.is_source or s.layer.is_loss:
            continue
        code = codes[s.node_id]
        if code.module:
            init.append(f"{INDENT}self.{s.node_id} = {code.module}")
            if s.frozen and s.param_keys:
                frozen.append(s.node_id)
        args = {port: names[ref] for port, ref in zip(s.layer.inputs, s.inputs) if ref is not None}
        expr = code.forward.format(m=f"self.{s.node_id}", **args)
        targets = ", ".join(names[(s.node_id, p)] for p in s.outputs)
        forward.append(f"{INDENT}{targets} = {expr}")
    for node_id in frozen:  # trained nowhere: Layerloom's frozen nodes
        init.append(f"{INDENT}self.{node_id}.requires_grad_(False)")
    result = ", ".join(names[r] for r in outputs) or "None"
    args = "".join(f", {names[(s.node_id, s.outputs[0])]}" for s in inputs)
    lines = ["class Net(nn.Module):", "    def __init__(self):", f"{INDENT}super().__init__()",
             *init, "", f"    def forward(self{args}):", *forward, f"{INDENT}return {result}"]
    return "\n".join(lines)


def _loss_function(plan: Plan, names: _Names, codes: dict, losses: list, labels: list,
                   outputs: list) -> str:
    if not losses:
        return ""
    args = "".join(f", {names[(s.node_id, s.outputs[0])]}" for s in labels)
    body = [f"    {', '.join(names[r] for r in outputs)} = outputs"]  # as forward returns them
    for s in losses:
        ports = {port: names[ref] for port, ref in zip(s.layer.inputs, s.inputs)}
        body.append(f"    {names[(s.node_id, s.outputs[0])]} = "
                    f"{codes[s.node_id].forward.format(**ports)}")
    total = " + ".join(names[(s.node_id, s.outputs[0])] for s in losses)
    return "\n".join([f"def compute_loss(outputs{args}):",
                      '    """The graph\'s loss nodes, summed: what training minimises."""',
                      *body, f"    return {total}"])
