"""What both exports (PyTorch code and ONNX) agree on: which values a model gives, and the error
an export raises."""
from __future__ import annotations

from layerloom.engine.plan import Plan
from layerloom.engine.spec import LayerloomError


class ExportError(LayerloomError):
    """The graph cannot be exported in the asked form; the message says why in one line."""


def model_outputs(plan: Plan) -> list:
    """What an exported model gives: the values the loss nodes read (not the labels), or, for a
    graph without a loss, every value no node reads."""
    losses = [s for s in plan.steps if s.layer.is_loss]
    if losses:
        refs = [r for s in losses for r in s.inputs
                if r is not None and plan.step(r[0]).layer.type_id != "Label"]
    else:
        refs = [(s.node_id, p) for s in plan.steps if not s.layer.is_source
                for p in s.outputs if (s.node_id, p) not in plan.consumers]
    return list(dict.fromkeys(refs))
