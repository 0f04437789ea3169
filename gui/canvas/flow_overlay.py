"""View > Show Gradient Flow: every edge coloured by whether gradient flows through it to a
trainable parameter (given the frozen nodes), and nodes whose parameters receive none faded —
"the gradient with respect to a chosen subset of variables" made visible. It follows every edit
(freeze a node and watch the flow upstream of it change) and asks the engine
(``engine.grad_flow``), which reads the plan the executor runs.
"""
from __future__ import annotations

from layerloom.engine.grad_flow import GradientFlow, gradient_flow
from layerloom.engine.plan import PlanError
from layerloom.engine.spec import LayerloomError

FADED = 0.45  # opacity of a node whose parameters get no gradient


class GradientFlowOverlay:
    def __init__(self, scene, document):
        self.scene, self.document = scene, document
        self.enabled = False
        self.flow: GradientFlow | None = None
        document.report_changed.connect(lambda _report: self.refresh())

    def set_enabled(self, on: bool) -> str:
        """Turn the overlay on or off; returns a line for the status bar."""
        self.enabled = bool(on)
        self.refresh()
        if not self.enabled:
            return "Gradient flow hidden"
        if self.flow is None:
            return "Gradient flow: the graph cannot run yet, so nothing flows"
        return (f"Gradient flow: orange edges carry gradient to a trainable parameter; "
                f"{len(self.flow.starved)} node(s) with parameters get none (faded)")

    def refresh(self) -> None:
        self.flow = None
        if self.enabled:
            try:
                doc = self.document
                self.flow = gradient_flow(doc.model, level=doc.graph, prefix=doc.levels.prefix())
            except (PlanError, LayerloomError):
                self.flow = None
        flow = self.flow
        for edge, item in self.scene.edge_items.items():
            item.set_flow(None if not self.enabled else bool(flow and edge in flow.edges))
        for node_id, item in self.scene.items_by_id.items():
            starved = self.enabled and flow is not None and node_id in flow.starved
            item.setOpacity(FADED if starved else 1.0)
