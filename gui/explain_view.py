"""The Explain tab beside the inspector: what the selected node computes and what it computed.

Its formula and shapes, parameter counts, operations and activation memory per sample, then — on
request, since it runs the network — the numbers of one forward and backward pass on a batch of
the training data with the current weights: inputs, parameters, output, dL/dY, dL/dX and dL/dW
(small tensors whole, large ones as statistics), a Dense unit's output written out as its
largest terms, and a gradient check of this node against finite differences.
"""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from layerloom.engine.explain import (SMALL, dot_terms, explain_node, flops_per_sample,
                                      formula_text, objective_gradient, stats)
from layerloom.engine.network import Network
from layerloom.engine.node_check import check_nodes
from layerloom.engine.objective import graph_needs_no_data
from layerloom.engine.spec import LayerloomError, fmt_shape
from layerloom.engine.tensor_pictures import is_small
from layerloom.engine.training import bind
from layerloom.gui.explain_field import FieldChooser, applies, field_html
from layerloom.gui.explain_pictures import PictureJobs, PictureText, to_image

BATCH = 8  # samples the numbers are computed on


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _numbers(array: np.ndarray) -> str:
    """One number as itself, a few as a list, more as their shape."""
    flat = np.ravel(array)
    if flat.size == 1:
        return _fmt(float(flat[0]))
    if flat.size <= SMALL:
        return "[" + ", ".join(_fmt(float(v)) for v in flat) + "]"
    return f"a tensor of {fmt_shape(array.shape)}"


def gradient_html(g) -> str:
    """∇f of a data-free graph with the numbers: with respect to its trainable variables, at
    the current values of all of them; frozen ones named as held constant."""
    name = lambda key: html.escape(key.removesuffix(".value"))  # noqa: E731
    wrt = list(g.gradient)
    if not wrt:
        return "<p><b>∇f</b>: every variable is frozen, so f has no gradient to follow</p>"
    parts = ", ".join(f"∂f/∂{name(k)}" for k in wrt)
    numbers = ", ".join(_numbers(g.gradient[k]) for k in wrt)
    at = ", ".join(f"{name(k)} = {_numbers(v)}" for k, v in g.variables.items())
    text = "<p>"
    if g.formula is not None:
        text += f"<b>f</b> = {html.escape(g.formula)}<br>"
    text += f"<b>∇f</b> with respect to ({', '.join(name(k) for k in wrt)}) = ({parts})"
    if g.partials is not None:
        text += f"<br>= ({html.escape(', '.join(g.partials))})"
    text += f"<br>= <b>({numbers})</b><br>at {at}, where f = {_fmt(g.value)}"
    if g.frozen:
        held = ", ".join(name(k) for k in g.frozen)
        text += (f"<br><i>{held} frozen: held constant, so this is the gradient with respect "
                 f"to the others only</i>")
    return text + "</p>"


def tensor_html(name: str, array: np.ndarray, batched: bool = False, pic=None) -> str:
    """A small tensor as its five numbers and a table; a large one as its five numbers, heat map
    and histogram once the worker has made them (``pic``), a note meanwhile."""
    label = f"<b>{html.escape(name)}</b> {fmt_shape(array.shape)}"
    if not is_small(array, batched) and pic is None:
        return f"<p>{label}: <i>statistics, heat map and histogram on their way…</i></p>"
    s = pic.stats if pic is not None else stats(array)
    head = (f"{label}: min {_fmt(s.min)}, max {_fmt(s.max)}, mean {_fmt(s.mean)}, "
            f"std {_fmt(s.std)}, norm {_fmt(s.norm)}")
    if pic is None or pic.heat is None:
        sample = array[0] if batched and array.ndim > 1 else array
        cells = ", ".join(_fmt(float(v)) for v in np.ravel(sample))
        which = " (first sample)" if sample is not array else ""
        return f"<p>{head}<br><tt>[{cells}]</tt>{which}</p>"
    src = html.escape(name, quote=True)
    return (f'<p>{head}<br><img src="heat/{src}"><br><small>heat map, {html.escape(pic.note)} '
            f'(blue &lt; 0 &lt; red)</small><br><img src="hist/{src}"><br><small>histogram of '
            f'all {int(pic.counts.sum()):,} values, {_fmt(pic.edges[0])} to {_fmt(pic.edges[-1])}'
            f'</small></p>')


class ExplainView(QWidget):
    pictures_ready = Signal()  # the worker's heat maps and histograms are shown

    def __init__(self, window, parent: QWidget | None = None):
        super().__init__(parent)
        self.pictures: dict = {}  # tensor name -> engine.tensor_pictures.TensorPicture
        self.jobs = PictureJobs(self)  # large tensors' pictures, made off the UI thread
        self.jobs.ready.connect(self._on_pictures)
        self.jobs.failed.connect(
            lambda text: self.window.statusBar().showMessage(f"Explain: {text}", 10000))
        self.window = window
        self.node_id: str | None = None
        self.numbers = None
        self.gradient = None  # engine.explain.ObjectiveGradient of a data-free graph
        self.text = PictureText()
        self.compute_button = QPushButton("Numbers on a batch")
        self.compute_button.setToolTip(f"One forward and backward pass on {BATCH} training "
                                       "samples with the current weights")
        self.check_button = QPushButton("Check gradient")
        self.check_button.setToolTip("This node's backward against finite differences at its "
                                     "real inputs (float64)")
        self.unit = QSpinBox()
        self.unit.setToolTip("The output unit a Dense node's sum is written out for")
        self.unit_label = QLabel("unit")
        row = QHBoxLayout()
        for w in (self.compute_button, self.check_button, self.unit_label, self.unit):
            row.addWidget(w)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        self.field = FieldChooser()  # a convolution's output element: its receptive field
        self.field.changed.connect(self._render)
        layout.addWidget(self.field)
        layout.addWidget(self.text, 1)
        self.compute_button.clicked.connect(self.compute)
        self.check_button.clicked.connect(self.check)
        self.unit.valueChanged.connect(lambda _v: self._render())
        self.check_lines: list[str] = []
        self.show_node(None)

    # ------------------------------------------------------------------ what is shown
    def show_node(self, node_id: str | None) -> None:
        graph = self.window.document.graph
        self.node_id = node_id if node_id in graph.nodes else None
        self.numbers, self.gradient, self.check_lines = None, None, []
        self.jobs.cancel()
        self.pictures = {}
        free = graph_needs_no_data(self.window.document.model)  # the founding example
        self.compute_button.setText("Numbers and ∇f" if free else "Numbers on a batch")
        self.compute_button.setToolTip(
            "One forward and backward pass at the variables' current values: the numbers of "
            "this node and the gradient of f" if free else
            f"One forward and backward pass on {BATCH} training samples with the current weights")
        for w in (self.compute_button, self.check_button):  # a block is many nodes: open it
            w.setEnabled(self.node_id is not None and graph.definition(self.node_id) is None)
        self._render()

    def _render(self) -> None:
        if self.node_id is None:
            self.field.setVisible(False)
            self.text.setHtml("<p>Select a node to see what it computes.</p>")
            return
        doc, node_id = self.window.document, self.node_id
        graph, report = doc.graph, doc.report
        cls, node = graph.layer(node_id), graph.nodes[node_id]
        parts = [f"<h3>{html.escape(node_id)}: {cls.type_id}</h3>",
                 f"<p>{html.escape(cls.description())}</p>"]
        if cls.formula:
            parts.append(f"<p><b>Forward</b> {formula_text(cls.formula, node.attrs)}</p>")
        if cls.backward_formula:
            parts.append(f"<p><b>Backward</b> {formula_text(cls.backward_formula, node.attrs)}"
                         "</p>")
        ins = [fmt_shape(s) if s is not None else "?" for s in report.in_shapes.get(node_id, ())]
        outs = [report.shapes.get((node_id, p)) for p in graph.output_ports(node_id)]
        parts.append(f"<p>in {', '.join(ins) or '–'} → out "
                     f"{', '.join(fmt_shape(s) if s is not None else '?' for s in outs)}</p>")
        parts.append(self._costs(outs))
        if self.gradient is not None:
            parts.append(gradient_html(self.gradient))
        if self.numbers is not None:
            where = ("at the variables' current values (no data), f" if self.gradient is not None
                     else f"on {BATCH} training samples, loss")
            parts.append(f"<p><i>{where} "
                         f"{_fmt(self.numbers.loss) if self.numbers.loss is not None else '–'}"
                         f"</i></p>")
        show_field = applies(cls, self.numbers)  # a convolution: first, where the chooser is
        self.field.setVisible(show_field)
        if show_field:
            parts.append(field_html(self.field, cls.validate_attrs(node.attrs), self.numbers,
                                    self.text.images))
        if self.numbers is not None:
            parts += [tensor_html(name, a, name in self.numbers.batched, self.pictures.get(name))
                      for name, a in self.numbers.tensors.items()]
            parts.append(self._dot_product())
        if self.check_lines:
            parts.append("<p><b>Gradient check</b><br>" + "<br>".join(
                html.escape(line) for line in self.check_lines) + "</p>")
        scroll = self.text.verticalScrollBar()
        kept = scroll.value()  # a new element or newly arrived pictures: stay where one reads
        self.text.setHtml("".join(parts))
        scroll.setValue(kept)

    def _costs(self, outs: list) -> str:
        shapes = self.numbers.tensors if self.numbers is not None else {}
        weight = shapes.get("weight")
        out = outs[0] if outs and outs[0] is not None else ()
        flops = flops_per_sample(tuple(weight.shape) if weight is not None else None, out[1:]
                                 if out and out[0] is None else out)
        memory = sum(int(np.prod([d for d in s if d is not None])) for s in outs
                     if s is not None) * 4  # a scalar () is one number, not none
        return (f"<p>≈ {flops:,} operations and {memory:,} bytes of activations per sample"
                + ("" if weight is not None or self.numbers is not None else
                   f" (press <i>{self.compute_button.text()}</i> to count the weights' "
                   "operations)") + "</p>")

    def _dot_product(self) -> str:
        t = self.numbers.tensors
        weight, x = t.get("weight"), t.get("x")
        show = weight is not None and weight.ndim == 2 and x is not None and x.ndim == 2
        self.unit.setVisible(show)
        self.unit_label.setVisible(show)
        if not show:
            return ""
        self.unit.setMaximum(weight.shape[0] - 1)
        j = self.unit.value()
        top, rest, bias = dot_terms(x[0], weight, t.get("bias"), j)
        terms = " + ".join(f"({_fmt(w)})·x[{i}]={_fmt(xv)}" for i, w, xv in top)
        y = t.get("y")
        value = f" = {_fmt(float(y[0, j]))}" if y is not None else ""
        return (f"<p><b>y[{j}]</b> of the first sample = Σ w[{j}, i]·x[i] + b[{j}] = {terms} "
                f"+ {_fmt(rest)} (the other terms) + {_fmt(bias)}{value}</p>")

    # ------------------------------------------------------------------ computing
    def _batch(self) -> tuple[dict, dict | None]:
        controller = self.window.training.controller
        if controller.busy:
            raise LayerloomError("the numbers wait until the run stops")
        kept = controller.trained_network()
        params = dict(kept.params) if kept is not None else None
        if graph_needs_no_data(self.window.document.model):
            return {}, params  # Parameters and an Objective: nothing to feed
        data = controller.dataset or controller.load_dataset()
        binding = bind(Network(self.window.document.model.copy()))
        n = min(BATCH, len(data.train))
        feeds = {binding.input_id: data.train.x[:n], binding.label_id: data.train.y[:n]}
        return feeds, params

    def compute(self) -> None:
        try:
            feeds, params = self._batch()
            doc = self.window.document
            self.numbers = explain_node(doc.model.copy(), doc.levels.prefix() + self.node_id,
                                        feeds, params)
            self.gradient = (objective_gradient(doc.model.copy(), params)
                             if graph_needs_no_data(doc.model) else None)
            self.pictures = {}
            batched = frozenset(self.numbers.batched)
            if not all(is_small(a, n in batched) for n, a in self.numbers.tensors.items()):
                self.jobs.request(dict(self.numbers.tensors), batched)
        except LayerloomError as err:
            self.window.statusBar().showMessage(f"Explain: {err}", 10000)
            return
        self._render()

    def check(self) -> None:
        try:
            feeds, params = self._batch()
            doc = self.window.document
            (result,) = check_nodes(doc.model.copy(), feeds, params,
                                    [doc.levels.prefix() + self.node_id])
        except LayerloomError as err:
            self.window.statusBar().showMessage(f"Check gradient: {err}", 10000)
            return
        self.check_lines = result.lines()
        self.window.statusBar().showMessage(
            f"{self.node_id}: gradient check {'passed' if result.passed else 'FAILED'}", 10000)
        self._render()

    def _on_pictures(self, pictures: dict) -> None:
        for key in [k for k in self.text.images if k.startswith(("heat/", "hist/"))]:
            del self.text.images[key]
        for name, pic in pictures.items():
            if pic.heat is not None:
                self.text.images[f"heat/{name}"] = to_image(pic.heat)
                self.text.images[f"hist/{name}"] = to_image(pic.histogram)
        self.pictures = pictures
        self._render()
        self.pictures_ready.emit()

    def shutdown(self) -> None:
        """The window closes: join the picture threads."""
        self.jobs.shutdown()
