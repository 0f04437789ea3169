"""The variables of a data-free run (the founding example's x, y, z) plotted step by step, with the
update rule the optimizer applies, written out with the real γ and the last step's numbers.

A graph of Parameters and an Objective trains without data (``engine.objective``): each step
report carries every scalar variable's value and gradient. Here each variable is one curve of its
value against the step, so "training walks the variables downhill" is a picture; above it the
rule ``θ ← θ − γ∇θ f(θ)`` and, for plain SGD, the last update as arithmetic
(``x ← 0.8 − 0.05·3.2 = 0.64``). Buffers and the shared ~10 Hz redraw timer, as every live plot.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from layerloom.engine.objective import update_rule
from layerloom.gui.plots.buffers import Redrawer, RingBuffer
from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.gradient_plot import NODE_COLOURS
from layerloom.gui.plots.loss_plot import few_points, fix_x_range
from layerloom.gui.plots.style import legend_label_html, make_view, style_plot

OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "SGD with momentum", "adam": "Adam",
                   "adamw": "AdamW"}
HINT = ("A graph without data — Parameter nodes (variables) feeding an Objective, as "
        "samples/gradient_wrt_subset.json — shows its variables here, step by step, as it "
        "trains.")


def variable_name(key: str) -> str:
    """``"x.value"`` -> ``"x"``: a Parameter node's one tensor is named by its node."""
    return key.removesuffix(".value")


class VariablesPlot(QWidget):
    """Each scalar variable's value against the step, and the update rule with γ."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.buffers: dict[str, RingBuffer] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.last: dict = {}  # key -> (value, gradient) of the newest step
        self.last_step: int | None = None
        self.config, self.lr = None, None
        self.rule = QLabel()
        self.rule.setWordWrap(True)
        self.rule.setTextFormat(Qt.RichText)
        self.rule.setContentsMargins(6, 2, 6, 2)
        self.rule.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.view = make_view(pg.PlotWidget)
        self.plot = self.view.getPlotItem()
        style_plot(self.plot, left="value", bottom="step")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.rule)
        layout.addWidget(self.view, 1)
        self.hint = EmptyHint(self.view, HINT)
        self.redrawer = Redrawer(self._redraw, self)
        self.reset(None)

    @property
    def active(self) -> bool:
        """This run has variables to show (a data-free run)."""
        return bool(self.buffers)

    def reset(self, info=None) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.buffers, self.curves, self.last, self.last_step = {}, {}, {}, None
        self.config, self.lr = getattr(info, "config", None), None
        self.redrawer.mark()

    def add_steps(self, reports: list) -> None:
        for r in reports:
            if not r.variables:
                continue
            if not self.buffers:
                fix_x_range(self.plot, r.total_steps)
            for key, (value, grad) in r.variables.items():
                if key not in self.buffers:
                    self._add_curve(key)
                self.buffers[key].append(r.global_step, value)
            self.last, self.last_step = dict(r.variables), r.global_step
            self.lr = r.lr
        self.redrawer.mark()

    def _add_curve(self, key: str) -> None:
        colour = NODE_COLOURS[len(self.curves) % len(NODE_COLOURS)]
        self.buffers[key] = RingBuffer(capacity=100_000)
        self.curves[key] = self.plot.plot(pen=pg.mkPen(colour, width=2), name=variable_name(key))

    def mark_diverged(self, report) -> None:
        self.redrawer.mark()

    # ------------------------------------------------------------------ drawing
    def rule_html(self) -> str:
        """The update rule with γ, the curves' legend, and the last update as arithmetic."""
        if self.config is None or not self.buffers:
            return ""
        opt = self.config.optimizer
        lr = self.lr or self.config.lr
        legend = legend_label_html([(self.curves[k].opts["pen"].color().name(), "line",
                                     variable_name(k)) for k in self.curves])
        parts = [f"<b>Update</b> {update_rule(opt)}, &nbsp;γ = {lr:g} "
                 f"({OPTIMIZER_NAMES.get(opt, opt)})", legend]
        if opt == "sgd" and self.config.weight_decay == 0 and self.last:
            steps = "; &nbsp;".join(
                f"{variable_name(k)} ← {v:.4g} − {lr:g}·{g:.4g} = {v - lr * g:.4g}"
                for k, (v, g) in self.last.items())
            parts.append(f"step {self.last_step + 1}: {steps}")
        return "<br>".join(parts)

    def _redraw(self) -> None:
        for key, curve in self.curves.items():
            buf = self.buffers[key]
            curve.setData(buf.x, buf.y, **few_points(len(buf), curve.opts["pen"].color()))
        self.rule.setText(self.rule_html())
        self.rule.setVisible(bool(self.buffers))
        self.hint.show_when(not self.buffers)
