"""A graph as runnable PyTorch code: ``torch_source(graph, training) -> str``.

The file defines ``Net``: one torch module per node that has parameters, stored under the node's
id, so a Layerloom weights file (keys "<node_id>.<param>") is its state_dict unchanged. It also
defines ``compute_loss`` (the graph's loss nodes, summed) and a command line. The command line
trains on an ``.npz`` data set with the graph's training settings and writes the weights back as
``.npz``, which Layerloom imports, so a model prototyped here can train at scale on a GPU and come
back. Frozen nodes stay frozen. A block definition becomes an ``nn.Module`` class of its own and
a repeated instance an ``nn.ModuleList`` of it (``engine.export.torch_modules``), so the keys stay
``"enc.2.fc1.weight"``. Every node's translation comes from its layer's ``to_torch``; this module
only lays the file out, and never imports torch.
"""
from __future__ import annotations

from layerloom.engine.export.outputs import ExportError, model_outputs
from layerloom.engine.export.torch_modules import (INDENT, MODULE_ATTRIBUTES, TAKEN, ModuleWriter,
                                                   value_names)
from layerloom.engine.export.torch_runner import LIBRARY, RUNNER
from layerloom.engine.graph import Graph
from layerloom.engine.plan import compile_plan
from layerloom.engine.shapes import infer_shapes
from layerloom.engine.spec import AttrValues
from layerloom.engine.training import TrainConfig

__all__ = ["torch_source", "ExportError", "MODULE_ATTRIBUTES", "TAKEN"]


def torch_source(graph: Graph, training: dict | None = None, title: str = "model") -> str:
    """The whole ``.py`` file for ``graph``; ``training`` is the project's training section."""
    report = infer_shapes(graph)
    plan = compile_plan(graph, report)
    names = value_names(graph)
    writer = ModuleWriter()
    net = writer.level(graph, report, names)
    inputs = [s for s in plan.steps if s.layer.type_id == "Input"]
    labels = [s for s in plan.steps if s.layer.type_id == "Label"]
    losses = {n: graph.layer(n).to_torch(AttrValues(graph.nodes[n].attrs), report.in_shapes[n])
              for n in graph.topological_order() if graph.layer(n).is_loss}
    writer.helpers += [h.strip("\n") for c in losses.values() for h in c.helpers
                       if h.strip("\n") not in writer.helpers]
    # what Net returns: the values the losses read, by their names in the model itself
    outputs = list(dict.fromkeys(plan.outer(r) for r in model_outputs(plan)
                                 if "." not in plan.outer(r)[0]))
    parts = [_header(title, inputs, labels, [graph.nodes[n].type for n in losses]),
             LIBRARY.strip("\n"), *writer.helpers, *writer.classes,
             _net_class(net, [names[r] for r in outputs],
                        [names[(s.node_id, s.outputs[0])] for s in inputs]),
             _loss_function(graph, names, losses, labels, outputs)]
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
            f"graph's loss ({', '.join(losses)}).") if losses else ""
    return (f'"""{title}: PyTorch code exported by Layerloom.\n\n'
            f"``Net()`` is the graph; ``model({args})`` takes {shapes}.{loss}\n"
            f"Weights exported by Layerloom (.npz or .safetensors) load with ``load_weights``.\n\n"
            f"    python {title}.py --data DATA.npz [--weights W.npz] [--epochs N] "
            f"[--device cuda] --save OUT.npz\n\n"
            f"trains it (``python {title}.py --help`` for the options).\n"
            f'"""\nimport argparse\nimport json\nimport math\nimport struct\nimport sys\n\n'
            f"import numpy as np\nimport torch\nimport torch.nn.functional as F\n"
            f"from torch import nn")


def _net_class(net, results: list, args: list) -> str:
    lines = ["class Net(nn.Module):", "    def __init__(self):", f"{INDENT}super().__init__()",
             *net.init, "", f"    def forward(self{''.join(', ' + a for a in args)}):",
             *net.forward, f"{INDENT}return {', '.join(results) or 'None'}"]
    return "\n".join(lines)


def _loss_function(graph: Graph, names: dict, losses: dict, labels: list, outputs: list) -> str:
    if not losses:
        return ""
    args = "".join(f", {names[(s.node_id, s.outputs[0])]}" for s in labels)
    body = [f"    {', '.join(names[r] for r in outputs)} = outputs"]  # as forward returns them
    for node_id, code in losses.items():
        ports = {e.dst[1]: names[tuple(e.src)] for e in graph.edges_into(node_id)}
        body.append(f"    {names[(node_id, graph.output_ports(node_id)[0])]} = "
                    f"{code.forward.format(**ports)}")
    total = " + ".join(names[(n, graph.output_ports(n)[0])] for n in losses)
    return "\n".join([f"def compute_loss(outputs{args}):",
                      '    """The graph\'s loss nodes, summed: what training minimises."""',
                      *body, f"    return {total}"])
