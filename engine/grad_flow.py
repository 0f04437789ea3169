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

from layerloom.engine.block_types import BLOCK_OUTPUT
from layerloom.engine.graph import Edge, Graph
from layerloom.engine.plan import Plan, compile_plan


@dataclass(frozen=True)
class GradientFlow:
    edges: frozenset  # the level's Edges that carry gradient toward a trainable parameter
    starved: frozenset  # the level's node ids with parameters that receive no gradient
    trained: frozenset  # the level's node ids with at least one parameter that gets a gradient


def _local(node_id: str, prefix: str) -> str | None:
    """The node of the level under ``prefix`` that a step belongs to (a step inside a block
    instance belongs to the instance); None for a step elsewhere."""
    if not node_id.startswith(prefix):
        return None
    return node_id[len(prefix):].split(".", 1)[0]


def _reaches_loss(plan: Plan) -> set[str]:
    """Step ids whose output is read, directly or not, by a loss step."""
    reached = set(plan.losses)
    for step in reversed(plan.steps):  # topological order: readers come after what they read
        if step.node_id in reached:
            reached.update(ref[0] for ref in step.inputs if ref is not None)
    return reached


def gradient_flow(graph: Graph, plan: Plan | None = None, level: Graph | None = None,
                  prefix: str = "") -> GradientFlow:
    """The flow through ``level`` (default: the model ``graph`` itself), a block definition
    opened through the instance whose steps' ids start with ``prefix`` ("enc.0.")."""
    plan = plan or compile_plan(graph)
    level = graph if level is None else level
    reached = _reaches_loss(plan)
    needed: dict[tuple, set] = {}  # step output -> the reached steps that need its gradient
    for step in plan.steps:
        if step.node_id in reached:
            for ref, needs in zip(step.inputs, step.needs_input_grad):
                if ref is not None and needs:
                    needed.setdefault(tuple(ref), set()).add(step.node_id)
    local = plan.levels.get(prefix, {})  # what each (node, port) of the level is in the plan

    def carries(edge: Edge) -> bool:
        readers = needed.get(local.get(tuple(edge.src)), ())
        if level.nodes[edge.dst[0]].type == BLOCK_OUTPUT:  # the value leaves the block
            return any(not r.startswith(prefix) for r in readers)
        return any(_local(r, prefix) == edge.dst[0] for r in readers)

    with_params, getting = set(), set()
    for step in plan.steps:
        node = _local(step.node_id, prefix)
        if step.grad_keys and node is not None:
            with_params.add(node)
            if step.trainable and step.node_id in reached:
                getting.add(node)
    return GradientFlow(frozenset(e for e in level.edges if carries(e)),
                        frozenset(with_params - getting), frozenset(getting))


def edge_key(edge: Edge) -> tuple:
    return (tuple(edge.src), tuple(edge.dst))
