"""Compile a valid graph to an immutable Plan: the steps the executor runs, in order.

The plan decides once what each step needs: which inputs want a gradient (nothing flows into a
branch that has no trainable parameter upstream), which parameters are trainable (frozen nodes'
are not), and the parameter keys ``"<node_id>.<param>"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.graph import Graph, PortRef
from engine.registry import LAYERS
from engine.shapes import ShapeReport, infer_shapes
from engine.spec import AttrValues, Layer, LayerloomError


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


@dataclass(frozen=True)
class Plan:
    steps: tuple
    sources: tuple  # node ids fed from data (Input, Label)
    losses: tuple  # node ids whose scalar outputs sum to the loss
    shapes: ShapeReport
    consumers: dict  # PortRef -> number of edges reading it

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
                params[f"{s.node_id}.{name}"] = np.ascontiguousarray(value, dtype=dtype)
        return params


def compile_plan(graph: Graph, report: ShapeReport | None = None) -> Plan:
    report = report or infer_shapes(graph)
    problems = list(report.errors.values())
    if not graph.nodes:
        problems.append("the graph is empty: add an Input node")
    if problems:
        raise PlanError(problems)
    rng = np.random.default_rng(0)
    steps, requires = [], {}
    for node_id in graph.topological_order():
        node = graph.nodes[node_id]
        cls = LAYERS[node.type]
        attrs = AttrValues(node.attrs)
        refs = []
        for port in cls.inputs:
            edge = graph.edge_into((node_id, port))
            refs.append(tuple(edge.src) if edge else None)
        in_shapes = report.in_shapes[node_id]
        names = tuple(cls.init(attrs, in_shapes, rng))
        grad_names = tuple(n for n in names if n not in cls.buffers)
        trainable = bool(grad_names) and not node.frozen
        diff = cls.differentiable_inputs if cls.differentiable_inputs is not None else cls.inputs
        needs = tuple(ref is not None and requires[ref[0]] and port in diff
                      for port, ref in zip(cls.inputs, refs))
        requires[node_id] = trainable or any(needs)
        steps.append(Step(node_id, cls, attrs, tuple(refs), tuple(cls.outputs), in_shapes,
                          tuple(f"{node_id}.{n}" for n in names),
                          tuple(f"{node_id}.{n}" for n in grad_names), trainable, requires[node_id],
                          needs))
    consumers: dict[PortRef, int] = {}
    for e in graph.edges:
        consumers[e.src] = consumers.get(e.src, 0) + 1
    sources = tuple(s.node_id for s in steps if s.layer.is_source)
    losses = tuple(s.node_id for s in steps if s.layer.is_loss)
    return Plan(tuple(steps), sources, losses, report, consumers)
