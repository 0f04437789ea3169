"""Where gradient flows: which edges carry a gradient back to a trainable parameter, and which
nodes' parameters receive none — "the gradient with respect to a chosen subset of variables",
made visible. Read off the compiled plan (the executor's own decisions), never restated.

An edge carries gradient when the node it feeds needs the gradient of that input (something
upstream of it has a trainable parameter) and that node's output reaches a loss. A node is
starved when it has parameters but none of them gets a gradient: frozen, or not on a path to a
loss.
"""
from __future__ import annotations

from dataclasses import dataclass

from layerloom.engine.graph import Edge, Graph
from layerloom.engine.plan import Plan, compile_plan


@dataclass(frozen=True)
class GradientFlow:
    edges: frozenset  # top-level Edges that carry gradient toward a trainable parameter
    starved: frozenset  # top-level node ids with parameters that receive no gradient
    trained: frozenset  # top-level node ids with at least one parameter that gets a gradient


def _top(node_id: str) -> str:
    return node_id.split(".", 1)[0]  # a step inside a block instance belongs to the instance


def _reaches_loss(plan: Plan) -> set[str]:
    """Step ids whose output is read, directly or not, by a loss step."""
    reached = set(plan.losses)
    for step in reversed(plan.steps):  # topological order: readers come after what they read
        if step.node_id in reached:
            reached.update(ref[0] for ref in step.inputs if ref is not None)
    return reached


def gradient_flow(graph: Graph, plan: Plan | None = None) -> GradientFlow:
    plan = plan or compile_plan(graph)
    reached = _reaches_loss(plan)
    carried: set[tuple] = set()  # (value ref as the plan knows it, reading top-level node)
    for step in plan.steps:
        if step.node_id not in reached:
            continue
        for ref, needs in zip(step.inputs, step.needs_input_grad):
            if ref is not None and needs:
                carried.add((tuple(ref), _top(step.node_id)))
    # a value leaving a block instance is known to the plan by the step inside it
    resolve = {tuple(alias): tuple(ref) for alias, ref in plan.aliases.items()}
    edges = frozenset(e for e in graph.edges
                      if (resolve.get(tuple(e.src), tuple(e.src)), e.dst[0]) in carried)
    with_params, getting = set(), set()
    for step in plan.steps:
        if step.grad_keys:
            with_params.add(_top(step.node_id))
            if step.trainable and step.node_id in reached:
                getting.add(_top(step.node_id))
    return GradientFlow(edges, frozenset(with_params - getting), frozenset(getting))


def edge_key(edge: Edge) -> tuple:
    return (tuple(edge.src), tuple(edge.dst))
