"""Compile a valid graph to an immutable Plan: the steps the executor runs, in order.

The plan decides once what each step needs: which inputs want a gradient (nothing flows into a
branch that has no trainable parameter upstream), which parameters are trainable (frozen nodes'
are not), and the parameter keys ``"<node_id>.<param>"``. Block instances are expanded first
(``engine.flatten``): a step inside one has a dotted id (``enc.2.attn``) and dotted keys
(``enc.2.attn.weight``); the values leaving an instance's ports are ``Plan.aliases``.

``Plan.steps`` holds one step per node: the reference. ``Plan.schedule(keep)`` is what the executor
runs: the same steps with known chains fused into one (Conv2D stride 1 → ReLU → MaxPool2D or its
1-D form, Dense [→ activation] → Dense … as in an MLP, Conv2D → BatchNorm2d [→ ReLU], Conv2D → ReLU,
BatchNorm → ReLU, and a same-shape residual Add → ReLU). A chain fuses only when each inner node feeds exactly the next one, no inner
node is in ``keep`` (activations a caller must see), all its nodes share one frozen flag, and the
attributes are ones the fused kernel supports.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from layerloom.engine.graph import Graph, PortRef
from layerloom.engine.registry import LAYERS  # first: loads every layer module, which fusion builds on
from layerloom.engine.flatten import flatten
from layerloom.engine.fusion import (AddReLU, BatchNormReLU, ConvBatchNorm, ConvReLU,
                                     ConvReluMaxPool, DenseChain, conv_bn_attrs, conv_pool_attrs,
                                     dense_chain_attrs)
from layerloom.engine.fusion_residual import ConvBatchNormAddReLU
from layerloom.engine.kernels import aligned
from layerloom.engine.shapes import DEFAULT_BATCH, ShapeReport, infer_shapes
from layerloom.engine.spec import AttrValues, Layer, LayerloomError


class PlanError(LayerloomError):
    """The graph cannot run; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


@dataclass(frozen=True)
class Step:
    node_id: str
    layer: type[Layer]
    attrs: AttrValues
    inputs: tuple  # PortRef per input port, None for an unconnected optional input
    outputs: tuple  # output port names
    in_shapes: tuple
    param_keys: tuple  # ("conv1.weight", ...), buffers included
    grad_keys: tuple  # param_keys without the buffers: what gets a gradient
    trainable: bool  # has parameters and is not frozen
    requires_grad: bool  # its output depends on a trainable parameter
    needs_input_grad: tuple  # per input port
    param_names: tuple = ()  # param_keys without the "<node_id>." prefix
    frozen: bool = False
    members: tuple = ()  # a fused step: the Steps it replaces, in order; () for a plain step
    # The layer reads its parameters by full key ("fc1.weight") from the network's whole dict (a
    # fused step over several parametrised nodes): no per-call dict of its own (0.6 µs at batch 1).
    by_full_key: bool = False


@dataclass(frozen=True)
class Plan:
    steps: tuple
    sources: tuple  # node ids fed from data (Input, Label)
    losses: tuple  # node ids whose scalar outputs sum to the loss
    shapes: ShapeReport
    consumers: dict  # PortRef -> number of edges reading it
    readers: dict = field(default_factory=dict)  # PortRef -> node ids reading it
    # (block instance path, port) -> the step output leaving that port ("enc", "y")
    aliases: dict = field(default_factory=dict)
    # bytes of every output for one sample: how large an inference batch the memory budget allows
    sample_bytes: int = 0
    # a level's path prefix ("", "enc.0.") -> {(node id, port) at that level: step output}
    levels: dict = field(default_factory=dict, compare=False, repr=False)
    _schedules: dict = field(default_factory=dict, compare=False, repr=False)

    def schedule(self, keep=(), fuse: bool = True) -> tuple:
        """The steps to run, fused unless ``fuse`` is False; nodes in ``keep`` stay visible, and
        so does every value leaving a block (a fused chain never hides a block's output)."""
        if not fuse:
            return self.steps
        key = frozenset(keep)
        if key not in self._schedules:
            outs = frozenset(ref[0] for ref in self.aliases.values())
            self._schedules[key] = fused_steps(self, key | outs)
        return self._schedules[key]

    def outer(self, ref: PortRef) -> PortRef:
        """The outermost name of a step output: the block instance port it leaves through
        (("enc", "y") for ("enc.3.add2", "y")), else the ref itself."""
        names = [a for a, r in self.aliases.items() if r == tuple(ref)]
        return min(names, key=lambda a: a[0].count(".")) if names else tuple(ref)

    def public_name(self, ref: PortRef) -> str:
        """A step output's name as ``Network.forward`` gives it, by its outermost name: "fc3",
        "lstm.seq" for one of several ports, "enc" for what leaves a block instance."""
        node, port = self.outer(ref)
        ports = ([p for path, p in self.aliases if path == node] if (node, port) in self.aliases
                 else self.step(node).outputs)
        return node if len(ports) == 1 else f"{node}.{port}"

    @property
    def trainable_keys(self) -> tuple:
        return tuple(k for s in self.steps if s.trainable for k in s.grad_keys)

    def step(self, node_id: str) -> Step:
        return next(s for s in self.steps if s.node_id == node_id)

    def init_params(self, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
        """Fresh parameters for every step, in PyTorch's default init, cast to ``dtype``."""
        params = {}
        for s in self.steps:
            for name, value in s.layer.init(s.attrs, s.in_shapes, rng).items():
                params[f"{s.node_id}.{name}"] = aligned(value, dtype)
        return params


def compile_plan(graph: Graph, report: ShapeReport | None = None,
                 batch_size: int = DEFAULT_BATCH, itemsize: int = 4) -> Plan:
    """A plan for a graph whose shape report has no error, the memory budget included (checked
    for training at ``batch_size``): a graph that cannot fit is refused before any allocation."""
    if graph.name is not None:
        raise PlanError([f"block {graph.name!r} runs inside a model: compile the model"])
    report = report or infer_shapes(graph, batch_size, itemsize=itemsize)
    problems = list(report.errors.values())
    if not graph.nodes:
        problems.append("the graph is empty: add an Input node")
    if problems:
        raise PlanError(problems)
    flat = flatten(graph, report)
    steps, requires = [], {}
    feeds_loss = _feeding_losses(flat.nodes)
    for f in flat.nodes:
        cls = LAYERS[f.node.type]
        attrs = AttrValues(f.node.attrs)
        names = tuple(cls.param_shapes(attrs, f.in_shapes))  # declared: nothing allocated yet
        grad_names = tuple(n for n in names if n not in cls.buffers)
        # a node that leads to no loss gets no gradient: training it would read a missing one
        trainable = bool(grad_names) and not f.frozen and f.id in feeds_loss
        diff = cls.differentiable_inputs if cls.differentiable_inputs is not None else cls.inputs
        needs = tuple(ref is not None and requires[ref[0]] and port in diff
                      for port, ref in zip(cls.inputs, f.inputs))
        requires[f.id] = trainable or any(needs)
        steps.append(Step(f.id, cls, attrs, f.inputs, tuple(cls.outputs_for(attrs)), f.in_shapes,
                          tuple(f"{f.id}.{n}" for n in names),
                          tuple(f"{f.id}.{n}" for n in grad_names), trainable, requires[f.id],
                          needs, names, f.frozen))
    consumers: dict[PortRef, int] = {}
    readers: dict[PortRef, list] = {}
    for s in steps:
        for ref in s.inputs:
            if ref is not None:
                consumers[ref] = consumers.get(ref, 0) + 1
                readers.setdefault(ref, []).append(s.node_id)
    sources = tuple(s.node_id for s in steps if s.layer.is_source)
    losses = tuple(s.node_id for s in steps if s.layer.is_loss)
    shapes = ShapeReport(shapes={**flat.shapes, **{a: flat.shapes[r] for a, r in
                                                   flat.aliases.items() if r in flat.shapes}},
                         in_shapes={f.id: f.in_shapes for f in flat.nodes})
    sample = -(-sum(report.activation_bytes.values()) // max(report.batch_size, 1))
    return Plan(tuple(steps), sources, losses, shapes, consumers, readers, flat.aliases, sample,
                flat.levels)


def _feeding_losses(nodes) -> set:
    """Ids of the flattened nodes with a path to a loss node (every node when there is no loss:
    a model bound for predictions or export keeps its parameters trainable)."""
    inputs = {f.id: [ref[0] for ref in f.inputs if ref is not None] for f in nodes}
    todo = [f.id for f in nodes if LAYERS[f.node.type].is_loss]
    if not todo:
        return set(inputs)
    seen: set = set()
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(inputs.get(n, ()))
    return seen


# ------------------------------------------------------------------------------------ fusion
def _next(plan: Plan, step: Step, by_id: dict, keep: frozenset) -> Step | None:
    """The one node reading ``step``'s only output, when the chain may continue through it."""
    if step.node_id in keep or len(step.outputs) != 1:
        return None
    ref = (step.node_id, step.outputs[0])
    readers = plan.readers.get(ref, ())
    if plan.consumers.get(ref, 0) != 1 or len(readers) != 1:
        return None
    nxt = by_id[readers[0]]
    return nxt if nxt.frozen == step.frozen and not nxt.layer.is_loss else None


def _conv_chain(plan: Plan, head: Step, by_id: dict, keep: frozenset) -> Step | None:
    pools = {"Conv2D": "MaxPool2D", "Conv1d": "MaxPool1d"}
    ones = lambda v: v in (1, (1, 1))  # noqa: E731  (a stride or dilation of 1, 1-D or 2-D)
    if head.layer.type_id not in pools or not ones(head.attrs.stride) \
            or head.attrs.groups != 1 or not ones(head.attrs.dilation):
        return None
    relu = _next(plan, head, by_id, keep)
    if relu is None or relu.layer.type_id != "ReLU":
        return None
    pool = _next(plan, relu, by_id, keep)
    if pool is None or pool.layer.type_id != pools[head.layer.type_id] \
            or pool.attrs.padding not in (0, (0, 0)) or not ones(pool.attrs.dilation) \
            or pool.attrs.ceil_mode:
        return None
    return _fused(ConvReluMaxPool, conv_pool_attrs(head.attrs, pool.attrs), (head, relu, pool))


def _dense_chain(plan: Plan, head: Step, by_id: dict, keep: frozenset) -> Step | None:
    """Dense nodes, each optionally followed by an activation, each feeding the next Dense."""
    members, node = [], head
    while node is not None and node.layer.type_id == "Dense":
        act = _next(plan, node, by_id, keep)
        act = act if act is not None and act.layer.fusable_activation else None
        members += [node, act] if act is not None else [node]
        node = _next(plan, members[-1], by_id, keep)
    if len(members) < 2:
        return None
    return _fused(DenseChain, dense_chain_attrs(tuple(members)), tuple(members), full_names=True)


def _conv_bn(plan: Plan, head: Step, by_id: dict, keep: frozenset) -> Step | None:
    """Conv2D → BatchNorm2d [→ ReLU] (folded into one convolution in inference), or Conv2D →
    ReLU where no max pool follows."""
    bn = _next(plan, head, by_id, keep) if head.layer.type_id == "Conv2D" else None
    if bn is None or bn.node_id in keep:  # a node asked for runs as a step of its own
        return None
    if bn.layer.type_id == "ReLU":  # Conv2D → ReLU (with a max pool after it: _conv_chain)
        return _fused(ConvReLU, head.attrs, (head, bn))
    if bn.layer.type_id != "BatchNorm2d":
        return None
    relu = _relu_after(plan, bn, by_id, keep)
    members = (head, bn, relu) if relu is not None else (head, bn)
    return _fused(ConvBatchNorm, conv_bn_attrs(head, bn, len(members) == 3), members,
                  full_names=True)


def _conv_bn_add(plan: Plan, head: Step, by_id: dict, keep: frozenset) -> Step | None:
    """Conv2D → BatchNorm2d → Add of two same-shape tensors → ReLU: a residual block's end
    (``fusion_residual``), the Add's other input (the shortcut) the step's second."""
    bn = _next(plan, head, by_id, keep) if head.layer.type_id == "Conv2D" else None
    if bn is None or bn.layer.type_id != "BatchNorm2d":
        return None
    add = _next(plan, bn, by_id, keep)
    relu = _relu_after(plan, add, by_id, keep) if _same_shape_add(add) else None
    if relu is None:
        return None
    port = 1 if add.inputs[0] == (bn.node_id, bn.outputs[0]) else 0  # the shortcut's
    step = _fused(ConvBatchNormAddReLU, conv_bn_attrs(head, bn, False), (head, bn, add, relu),
                  full_names=True)
    return replace(step, inputs=head.inputs + (add.inputs[port],),
                   in_shapes=head.in_shapes + (add.in_shapes[port],),
                   needs_input_grad=head.needs_input_grad + (add.needs_input_grad[port],))


def _relu_tail(plan: Plan, head: Step, by_id: dict, keep: frozenset) -> Step | None:
    """BatchNorm → ReLU, or an Add of two same-shape tensors → ReLU (a residual block's end)."""
    norms = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
    t = head.layer.type_id
    relu = _relu_after(plan, head, by_id, keep) if t in norms or _same_shape_add(head) else None
    if relu is None:
        return None
    return _fused(BatchNormReLU if t in norms else AddReLU, head.attrs, (head, relu))


def _same_shape_add(step: Step | None) -> bool:
    """An Add of two tensors of one shape (no broadcasting): what the fused ReLU tails take."""
    return step is not None and step.layer.type_id == "Add" and None not in step.in_shapes \
        and step.in_shapes[0] == step.in_shapes[1]


def _relu_after(plan: Plan, step: Step, by_id: dict, keep: frozenset) -> Step | None:
    """The ReLU that alone reads ``step``'s output, when the chain may continue into it and it
    is not a node asked for."""
    relu = _next(plan, step, by_id, keep)
    ok = relu is not None and relu.layer.type_id == "ReLU" and relu.node_id not in keep
    return relu if ok else None


def _fused(layer, attrs, members: tuple, full_names: bool = False) -> Step:
    """One step standing for ``members``: the head's inputs, the tail's output, every member's
    parameters: named by their full keys ("fc1.weight") when several members have some, else
    by the head's own names ("weight")."""
    head, tail = members[0], members[-1]
    keys = tuple(k for m in members for k in m.param_keys)
    return replace(head, node_id=tail.node_id, layer=layer, attrs=attrs, outputs=tail.outputs,
                   requires_grad=tail.requires_grad, members=members, param_keys=keys,
                   param_names=keys if full_names else head.param_names, by_full_key=full_names,
                   grad_keys=tuple(k for m in members for k in m.grad_keys),
                   trainable=any(m.trainable for m in members))


PATTERNS = (_conv_chain, _dense_chain, _conv_bn_add, _conv_bn, _relu_tail)


def fused_steps(plan: Plan, keep: frozenset) -> tuple:
    """``plan.steps`` with every fusable chain replaced by one step at the chain's last position
    (the chain's outside inputs, the head's and a residual Add's other one, come earlier)."""
    by_id = {s.node_id: s for s in plan.steps}
    at_tail, inner = {}, set()
    for s in plan.steps:
        if s.node_id in inner:
            continue
        # the first pattern whose members are all free: a residual Add's two branches may both
        # lead to it, and the first one met takes it
        group = next((g for g in (f(plan, s, by_id, keep) for f in PATTERNS)
                      if g is not None and inner.isdisjoint(m.node_id for m in g.members)), None)
        if group is not None:
            at_tail[group.node_id] = group
            inner.update(m.node_id for m in group.members)
    return tuple(at_tail.get(s.node_id, s) for s in plan.steps
                 if s.node_id in at_tail or s.node_id not in inner)
