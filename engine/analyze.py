"""Analyze: a pre-flight check of a graph, its data and its training settings, before a second is
spent training (MATLAB's analyzeNetwork, but run on every edit).

``analyze`` returns one list of ``Finding``s. An *error* means Train would fail or train nothing
(a classifier head that does not match the data's classes, a label of the wrong kind for its
loss, no loss, everything frozen); a *warning* means it runs but probably not as meant (a
Softmax before CrossEntropyLoss, a node that leads to no loss, a learning rate far outside the
optimizer's usual range, an Input that Train will refit to the data). Shape errors are included,
so the window can show every problem in one list. It never raises: problems are data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from layerloom.engine.data import Dataset
from layerloom.engine.graph import Graph
from layerloom.engine.shapes import ShapeReport, infer_shapes, param_counts
from layerloom.engine.spec import LayerloomError, fmt_shape

ERROR, WARNING = "error", "warning"
# The learning rates each optimizer usually trains with; "far outside" is 10× beyond either end.
USUAL_LR = {"sgd": (1e-4, 1.0), "momentum": (1e-4, 0.5), "adam": (1e-5, 1e-2),
            "adamw": (1e-5, 1e-2)}
OPTIMIZER_NAMES = {"sgd": "SGD", "momentum": "SGD + momentum", "adam": "Adam", "adamw": "AdamW"}
LOSS_TARGETS = {"CrossEntropyLoss": "class index", "MSELoss": "values"}


@dataclass(frozen=True)
class Finding:
    severity: str  # ERROR or WARNING
    node_id: str | None  # the node to badge; None for the graph or the settings as a whole
    message: str  # one line, naming the thing and the fix
    kind: str = "graph"  # "shape", "graph", "data" or "training": which rule group found it


@dataclass
class Analysis:
    findings: list = field(default_factory=list)
    dangling: frozenset = frozenset()  # nodes that lead to no loss (left out of training)

    @property
    def errors(self) -> list:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """"2 errors, 1 warning" (empty when there is nothing to say)."""
        parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in
                 ((len(self.errors), "error"), (len(self.warnings), "warning")) if n]
        return ", ".join(parts)


def analyze(graph: Graph, report: ShapeReport | None = None, dataset: Dataset | None = None,
            training: dict | None = None) -> Analysis:
    """Every problem of ``graph`` (with ``dataset`` and the ``training`` settings when given)."""
    report = report or infer_shapes(graph)
    if not graph.nodes:
        return Analysis([Finding(ERROR, None, "the graph is empty: drag an Input from the Layers "
                                              "palette, or start from File > New from Sample")])
    found = [Finding(ERROR, n, msg, "shape") for n, msg in report.errors.items()]
    dangling = dangling_nodes(graph)
    found += _structure(graph, report, dangling)
    if dataset is not None:
        found += _data(graph, dataset, report)
    if training is not None:
        found += _training(training)
    found.sort(key=lambda f: f.severity != ERROR)  # errors first, each group in rule order
    return Analysis(_unique(found), frozenset(dangling))


def _unique(findings: list) -> list:
    seen, out = set(), []
    for f in findings:
        if (f.node_id, f.message) not in seen:
            seen.add((f.node_id, f.message))
            out.append(f)
    return out


def _of_type(graph: Graph, type_id: str) -> list[str]:
    return [n for n, node in graph.nodes.items() if node.type == type_id]


def _losses(graph: Graph) -> list[str]:
    return [n for n in graph.nodes if graph.layer(n).is_loss]


def _needs_no_data(graph: Graph) -> bool:
    from layerloom.engine.objective import graph_needs_no_data

    return graph_needs_no_data(graph)


def dangling_nodes(graph: Graph) -> list[str]:
    """Nodes from which no loss can be reached: they run, but nothing trains them."""
    losses = _losses(graph)
    if not losses:
        return []
    feeding = graph.reachable(losses, downstream=False)
    return [n for n in graph.nodes if n not in feeding]


def _structure(graph: Graph, report: ShapeReport, dangling: list[str]) -> list[Finding]:
    out = []
    inputs, labels, losses = _of_type(graph, "Input"), _of_type(graph, "Label"), _losses(graph)
    free = _needs_no_data(graph)  # Parameters and an Objective: no Input, Label or data
    if len(inputs) != 1 and not free:
        out.append(Finding(ERROR, None, f"training needs exactly one Input node (the samples), "
                                        f"found {len(inputs)}"))
    if not losses:
        out.append(Finding(ERROR, None, "the graph has no loss node: add CrossEntropyLoss "
                                        "(classes) or MSELoss (values) after the last layer"))
    elif len(labels) != 1 and not free:
        out.append(Finding(ERROR, None, f"training needs exactly one Label node (the targets), "
                                        f"found {len(labels)}"))
    out += _loss_inputs(graph)
    counts = param_counts(graph, report)
    for n in dangling:
        if n in report.errors:
            continue  # an unconnected input: its shape error already says what to wire
        node = graph.nodes[n]
        lost = f" and its {counts[n]:,} parameters are not trained" if counts.get(n) else ""
        what = "is connected to nothing" if not (graph.edges_into(n) or graph.edges_from(n)) \
            else "leads to no loss"
        out.append(Finding(WARNING, n, f"{node.type} {n!r} {what}: it does not affect "
                                       f"training{lost}; connect it or delete it"))
    fed = graph.reachable(inputs)
    for n, node in graph.nodes.items():
        layer = graph.layer(n)
        if n not in fed and not free and not layer.is_source and not layer.is_loss \
                and n not in report.errors and n not in dangling:
            out.append(Finding(WARNING, n, f"{node.type} {n!r} is not fed from the Input: "
                                           f"it never sees the data"))
    if not report.errors:  # a failing node's parameters are unknown: it may have some
        out += _trainable(graph, counts, dangling)
    return out


def _loss_inputs(graph: Graph) -> list[Finding]:
    """What feeds each loss: a label of the kind it needs, and no Softmax before cross-entropy."""
    out = []
    for n in _losses(graph):
        node = graph.nodes[n]
        target = graph.edge_into((n, "target"))
        want = LOSS_TARGETS.get(node.type)
        source = graph.nodes.get(target.src[0]) if target is not None else None
        if want and source is not None and source.type == "Label" \
                and source.attrs.get("kind") != want:
            fix = "MSELoss" if want == "class index" else "CrossEntropyLoss"
            out.append(Finding(ERROR, n, f"{node.type} {n!r} needs targets of kind {want!r} but "
                                         f"Label {source.id!r} gives {source.attrs.get('kind')!r}:"
                                         f" set the Label's kind, or use {fix}"))
        scores = graph.edge_into((n, "input"))
        before = graph.nodes.get(scores.src[0]) if scores is not None else None
        if node.type == "CrossEntropyLoss" and before is not None and before.type == "Softmax":
            out.append(Finding(WARNING, before.id, f"Softmax {before.id!r} feeds {node.type} "
                                                   f"{n!r}, which applies softmax itself: remove "
                                                   f"it (two softmaxes make learning slow)"))
    return out


def _trainable(graph: Graph, counts: dict, dangling: list[str]) -> list[Finding]:
    with_params = [n for n, c in counts.items() if c and n not in dangling]
    if not _losses(graph) or not (_of_type(graph, "Input") or _needs_no_data(graph)):
        return []
    if not with_params:
        return [Finding(ERROR, None, "nothing to train: no layer with parameters leads to the "
                                     "loss; add a Dense or Conv2D layer")]
    if all(graph.nodes[n].frozen for n in with_params):
        return [Finding(ERROR, None, "every layer with parameters is frozen: nothing would "
                                     "learn; unfreeze one in the Inspector")]
    return []


# ------------------------------------------------------------------------------------ data
def _data(graph: Graph, dataset: Dataset, report: ShapeReport) -> list[Finding]:
    """The data's findings: nodes Train refits (warnings), then, on the refitted graph, what still
    does not fit: shape errors the data causes, and a class-score width that is not the data's
    number of classes (Train would crash on it at the end or learn nonsense)."""
    from layerloom.engine.project import planned_fit

    try:
        edits = planned_fit(graph, dataset)
    except LayerloomError:
        return []  # not exactly one Input and one Label: the structure findings say so
    out, name = [], dataset.name
    for node_id, attr, old, new in edits:
        show = (lambda v: fmt_shape(v) if attr == "shape" and v is not None else str(v))  # noqa: E731
        out.append(Finding(WARNING, node_id, f"data {name!r} needs {attr} {show(new)}, this node "
                                             f"has {show(old)} (Train or Data > Load sets it)",
                           "data"))
    trial = graph.copy()
    for node_id, attr, _old, new in edits:
        trial.set_attr(node_id, attr, new)
    after = infer_shapes(trial)
    for node_id, error in after.errors.items():
        if node_id not in report.errors:
            out.append(Finding(ERROR, node_id, f"with data {name!r}: {error}", "data"))
    if not after.errors and dataset.task == "classification":
        out += _class_count(trial, after, dataset)
    return out


def _class_count(graph: Graph, report: ShapeReport, dataset: Dataset) -> list[Finding]:
    out, k = [], dataset.num_classes
    for n in _of_type(graph, "CrossEntropyLoss"):
        scores = graph.edge_into((n, "input"))
        shape = report.shapes.get(tuple(scores.src)) if scores is not None else None
        if not k or not shape or shape[-1] is None or shape[-1] == k:
            continue
        src = graph.nodes[scores.src[0]]
        fix = (f"set its out_features to {k}" if "out_features" in src.attrs
               else f"make it output {k}")
        out.append(Finding(ERROR, src.id, f"{src.type} {src.id!r} gives {shape[-1]} class scores "
                                          f"but data {dataset.name!r} has {k} classes: {fix}",
                           "data"))
    return out


# ------------------------------------------------------------------------------------ training
def _training(training: dict) -> list[Finding]:
    optimizer, lr = training.get("optimizer", "adam"), training.get("lr", 1e-3)
    usual = USUAL_LR.get(optimizer)
    if usual is None or isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        return []  # the settings' own checks refuse these with a one-line error
    low, high = usual
    name = OPTIMIZER_NAMES.get(optimizer, optimizer)
    if lr > 10 * high:
        return [Finding(WARNING, None, f"learning rate {lr:g} is far above what {name} usually "
                                       f"takes ({low:g} to {high:g}): expect the loss to blow up",
                        "training")]
    if lr < low / 10:
        return [Finding(WARNING, None, f"learning rate {lr:g} is far below what {name} usually "
                                       f"takes ({low:g} to {high:g}): training will barely move",
                        "training")]
    return []
