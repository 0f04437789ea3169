"""What one node computed, with its real numbers: the inputs it read, its parameters, its output,
and after the backward pass dL/dY, dL/dX and dL/dW — for the Explain tab.

A person learning how networks work should see ``Y = L(X)`` and ``θ ← θ − γ∇θ l(θ)`` as numbers,
not only as symbols. Everything comes from one forward and backward pass of the real network on a
real batch (every node kept as its own step, so a node inside a fused chain has its own values),
never from a second implementation of the layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from layerloom.engine.graph import Graph
from layerloom.engine.network import Network
from layerloom.engine.polynomial import gradient_text
from layerloom.engine.spec import LayerloomError

SMALL = 32  # tensors with at most this many entries are shown whole


def formula_text(template: str, attrs: dict) -> str:
    """A layer's formula with its ``{attribute}`` placeholders filled by the node's values.

    A placeholder naming no attribute (a custom layer's slip) leaves the template as written:
    the rest of the Explain tab must still show, and the registry test keeps built-in layers right.
    """
    try:
        return template.format(**attrs)
    except (KeyError, IndexError, ValueError):
        return template

@dataclass(frozen=True)
class Stats:
    shape: tuple
    min: float
    max: float
    mean: float
    std: float
    norm: float


def stats(array: np.ndarray) -> Stats:
    a = np.asarray(array, dtype=np.float64)
    if a.size == 0:
        return Stats(a.shape, 0.0, 0.0, 0.0, 0.0, 0.0)
    return Stats(a.shape, float(a.min()), float(a.max()), float(a.mean()), float(a.std()),
                 float(np.sqrt(np.vdot(a, a))))


@dataclass
class NodeNumbers:
    node_id: str
    layer_type: str
    tensors: dict = field(default_factory=dict)  # "x", "weight", "y", "dL/dy", … -> array
    loss: float | None = None
    batched: set = field(default_factory=set)  # the tensors with a batch axis (not parameters)


def explain_node(graph: Graph, node_id: str, feeds: dict, params: dict | None = None,
                 seed: int = 0) -> NodeNumbers:
    """One forward and backward pass on ``feeds``; the node's values and gradients."""
    net = Network(graph, seed=seed, params=params)
    steps = {s.node_id: s for s in net.plan.steps}
    if node_id not in steps:
        raise LayerloomError(f"no node {node_id!r} in the running graph")
    step = steps[node_id]
    net.forward(feeds, training=True, keep=tuple(steps))
    values = net.executor.values
    out = NodeNumbers(node_id, step.layer.type_id)
    for port, ref in zip(step.layer.inputs, step.inputs):
        if ref is not None:
            out.tensors[port] = np.array(values[tuple(ref)])
    for name, key in zip(step.param_names, step.param_keys):
        out.tensors[name] = np.array(net.params[key])
    for port in step.outputs:
        out.tensors[port] = np.array(values[(node_id, port)])
    out.batched = {p for p, ref in zip(step.layer.inputs, step.inputs) if ref is not None}
    out.batched |= set(step.outputs) | {f"dL/d{p}" for p in out.batched | set(step.outputs)}
    if net.plan.losses:
        net.executor.record_grads = recorded = {}
        try:
            grads = net.backward()
        finally:
            net.executor.record_grads = None
        out.loss = float(net.loss())
        dys, dxs = recorded.get(node_id, ((), ()))
        for port, dy in zip(step.outputs, dys):
            out.tensors[f"dL/d{port}"] = np.array(dy)
        for port, dx, need in zip(step.layer.inputs, dxs, step.needs_input_grad):
            if need and dx is not None:
                out.tensors[f"dL/d{port}"] = np.array(dx)
        for name, key in zip(step.param_names, step.param_keys):
            if key in grads:
                out.tensors[f"dL/d{name}"] = np.array(grads[key])
    return out


def flops_per_sample(weight_shape: tuple | None, out_shape: tuple) -> int:
    """Multiply-adds ×2 for a layer with a weight (each output position of each output channel
    reads the whole weight slice: Dense, convolutions), else one operation per output element."""
    out_elements = int(np.prod([d for d in out_shape if d is not None], dtype=np.int64))
    if weight_shape and len(weight_shape) >= 2 and weight_shape[0]:
        positions = out_elements // max(int(weight_shape[0]), 1)
        return 2 * int(np.prod(weight_shape, dtype=np.int64)) * max(positions, 1)
    return out_elements


def dot_terms(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, unit: int,
              k: int = 5) -> tuple[list[tuple[int, float, float]], float, float]:
    """A Dense unit's output written out: the ``k`` largest terms w[unit, i]·x[i] as (i, w, x),
    the sum of the rest, and the bias."""
    terms = weight[unit] * x
    order = np.argsort(-np.abs(terms))
    top = [(int(i), float(weight[unit, i]), float(x[i])) for i in order[:k]]
    rest = float(terms[order[k:]].sum())
    return top, rest, float(bias[unit]) if bias is not None else 0.0


@dataclass(frozen=True)
class ObjectiveGradient:
    """∇f of a data-free graph at its variables' current values: the founding example's
    (4x, 3y², 1), or with a node frozen the gradient with respect to the others only."""

    value: float  # f
    variables: dict  # key -> its value (an array; one number for a scalar variable)
    gradient: dict  # key -> ∂f/∂key, for the trainable variables only
    frozen: tuple  # keys held constant (frozen nodes): no gradient
    formula: str | None = None  # f over the variables ("2x² + y³ + z") when it is a polynomial
    partials: tuple | None = None  # ∂f/∂v as formulas ("4x", "3y²", "1"), in ``gradient``'s order


def objective_gradient(graph: Graph, params: dict | None = None,
                       seed: int = 0) -> ObjectiveGradient:
    """One forward and backward pass of a graph that needs no data, in float64."""
    net = Network(graph, seed=seed, dtype=np.float64, params=params, batch_size=1)
    if net.plan.sources or not net.plan.losses:
        raise LayerloomError("∇f needs a graph of Parameters and an Objective (no Input or Label)")
    net.forward({})
    grads = net.backward()
    keys = tuple(net.params)
    gradient = {k: np.array(grads[k]) for k in keys if k in grads}
    formulas = gradient_text(graph, [k.removesuffix(".value") for k in gradient])
    return ObjectiveGradient(float(net.loss()), {k: np.array(net.params[k]) for k in keys},
                             gradient, tuple(k for k in keys if k not in grads),
                             *((formulas[0], tuple(formulas[1])) if formulas else (None, None)))
