"""Gradient check of one node at its current inputs and parameters: does its backward agree with
central finite differences?

A layer's backward is checked against PyTorch once, on made-up inputs, by the test table; this
checks it where a person's model actually is — this node's real inputs (from a forward pass on a
real batch) and its current, maybe trained, parameters — in float64, with a seeded random
upstream gradient dL/dY so that every output element counts. Custom and imported layers are
checked the same way, since only ``forward`` and ``backward`` are used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerloom.engine.graph import Graph
from layerloom.engine.network import Network
from layerloom.engine.plan import Step
from layerloom.engine.spec import Ctx, LayerloomError

EPS = 1e-6
TOLERANCE = 1e-5  # worst relative error that passes (float64 central differences: ~1e-8 typical)
ENTRIES = 24  # entries probed per input and parameter


@dataclass(frozen=True)
class TensorCheck:
    name: str  # "d/dx" (an input port) or "d/dweight" (a parameter)
    worst: float  # worst relative error over the probed entries
    probed: int
    passed: bool
    kinks: int = 0  # entries skipped: the function bends there (a ReLU at 0, a tie in a max)


@dataclass(frozen=True)
class NodeCheck:
    node_id: str
    layer_type: str
    results: tuple[TensorCheck, ...]
    note: str = ""  # why nothing was checked (a data source, no float inputs or parameters)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def lines(self) -> list[str]:
        if not self.results:
            return [f"{self.node_id} ({self.layer_type}): nothing to check, {self.note}"]
        return [f"{self.node_id} ({self.layer_type}) {r.name}: worst relative error "
                f"{r.worst:.2e} over {r.probed} entries"
                + (f" ({r.kinks} at a kink skipped)" if r.kinks else "")
                + f": {'pass' if r.passed else 'FAIL'}" for r in self.results]


def relative_error(analytic: float, numeric: float, scale: float = 0.0) -> float:
    """|a - n| relative to the larger of the two, or to ``scale`` (the tensor's typical
    gradient) for entries near zero, whose differences are rounding noise."""
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), scale, 1e-12)


def _run(step: Step, params: dict, xs: list, needs: tuple) -> tuple[list, Ctx]:
    ctx = Ctx(True, np.random.default_rng(123), needs)  # same dropout mask on every call
    out = step.layer.forward(step.attrs, {k: v.copy() for k, v in params.items()}, ctx,
                             *[None if x is None else x.copy() for x in xs])
    outs = (out,) if len(step.outputs) == 1 else tuple(out)
    return [np.asarray(o, dtype=np.float64) for o in outs], ctx


def check_step(step: Step, params: dict, xs: list, seed: int = 0,
               tolerance: float = TOLERANCE) -> NodeCheck:
    """Check ``step``'s layer at inputs ``xs`` (arrays) and ``params`` (name -> array)."""
    cls = step.layer
    xs = [None if x is None else np.asarray(x, np.float64)
          if np.issubdtype(np.asarray(x).dtype, np.floating) else np.asarray(x) for x in xs]
    params = {k: np.asarray(v, np.float64).copy() for k, v in params.items()}
    diff = cls.differentiable_inputs if cls.differentiable_inputs is not None else cls.inputs
    needs = tuple(x is not None and p in diff and np.issubdtype(x.dtype, np.floating)
                  for p, x in zip(cls.inputs, xs))
    grads_of = [n for n in params if n not in cls.buffers]
    if not any(needs) and not grads_of:
        return NodeCheck(step.node_id, cls.type_id, (), "no float input or parameter")
    outs, ctx = _run(step, params, xs, needs)
    rng = np.random.default_rng(seed)
    dys = [rng.standard_normal(y.shape) for y in outs]
    in_grads, p_grads = cls.backward(step.attrs, {k: v.copy() for k, v in params.items()}, ctx, *dys)

    def objective(xs_, params_) -> float:
        ys, _ = _run(step, params_, xs_, needs)
        return sum(float((y * d).sum()) for y, d in zip(ys, dys))

    def probe(name: str, array: np.ndarray, analytic, poke) -> TensorCheck:
        if analytic is None or np.shape(analytic) != array.shape:
            return TensorCheck(name, float("inf"), 0, False)
        worst, kinks, scale = 0.0, 0, 1e-3 * float(np.abs(analytic).max(initial=0.0))
        picks = rng.choice(array.size, size=min(ENTRIES, array.size), replace=False)
        centre = objective(xs, params)
        for flat in picks:
            idx = np.unravel_index(flat, array.shape)
            hi, lo = poke(idx, EPS), poke(idx, -EPS)
            # one-sided slopes that disagree: a kink, where no derivative exists to compare
            if relative_error((hi - centre) / EPS, (centre - lo) / EPS, scale) > 1e-3:
                kinks += 1
                continue
            worst = max(worst, relative_error(float(analytic[idx]), (hi - lo) / (2 * EPS), scale))
        return TensorCheck(name, worst, len(picks) - kinks, worst <= tolerance, kinks)

    results = []
    for j, (x, need) in enumerate(zip(xs, needs)):
        if need:
            def poke(idx, eps, j=j):
                moved = [None if v is None else v.copy() for v in xs]
                moved[j][idx] += eps
                return objective(moved, params)
            results.append(probe(f"d/d{cls.inputs[j]}", x, in_grads[j], poke))
    for name in grads_of:
        def poke(idx, eps, name=name):
            moved = {k: v.copy() for k, v in params.items()}
            moved[name][idx] += eps
            return objective(xs, moved)
        results.append(probe(f"d/d{name}", params[name], p_grads.get(name), poke))
    return NodeCheck(step.node_id, cls.type_id, tuple(results))


def node_inputs(net: Network, feeds: dict, node_id: str) -> list[np.ndarray]:
    """The values ``node_id`` reads in a forward pass on ``feeds`` (every node kept apart, so a
    node inside a fused chain has its own inputs); None for an unconnected optional input."""
    step = net.plan.step(node_id)
    net.forward(feeds, training=True, keep=tuple(s.node_id for s in net.plan.steps))
    values = net.executor.values
    missing = [ref for ref in step.inputs if ref is not None and tuple(ref) not in values]
    if missing:
        raise LayerloomError(f"{node_id}: its input {missing[0][0]}.{missing[0][1]} was not "
                             f"computed in this forward pass")
    return [None if ref is None else values[tuple(ref)] for ref in step.inputs]


def check_nodes(graph: Graph, feeds: dict, params: dict | None = None,
                node_ids: list[str] | None = None, seed: int = 0) -> list[NodeCheck]:
    """Check the given nodes (default: every computing node) of ``graph`` at the inputs a forward
    pass on ``feeds`` gives them, with ``params`` (default: a fresh initialisation)."""
    net = Network(graph, seed=seed, dtype=np.float64, params=params)
    steps = {s.node_id: s for s in net.plan.steps}
    wanted = node_ids if node_ids is not None else [
        s.node_id for s in net.plan.steps if not s.layer.is_source]
    for node_id in wanted:
        if node_id not in steps:
            raise LayerloomError(f"no node {node_id!r} to check (a block's inner node is "
                                 f"named by its path, e.g. enc.0.fc)")
    checks = []
    for node_id in wanted:
        step = steps[node_id]
        if step.layer.is_source:
            checks.append(NodeCheck(node_id, step.layer.type_id, (), "a data source"))
            continue
        xs = node_inputs(net, feeds, node_id)
        own = {name: net.params[key] for name, key in zip(step.param_names, step.param_keys)}
        checks.append(check_step(step, own, xs, seed))
    return checks
