"""Source nodes: where a batch from the data set enters the graph (features and labels)."""
from __future__ import annotations

from layerloom.engine.registry import register
from layerloom.engine.spec import Choice, Example, IntTuple, Layer


@register
class Input(Layer):
    """Feeds a batch of samples (images, vectors, or token ids) into the graph."""

    formula = "y = a batch of the data set's samples, each of shape {shape} ({dtype})"
    backward_formula = ("none: a source has no inputs or parameters, so the gradient dL/dy stops "
                        "here")
    category = "Input/Output"
    inputs = ()
    outputs = ("y",)
    is_source = True
    attrs = {
        "shape": IntTuple((1, 28, 28), "shape of one sample, without the batch", min=1),
        "dtype": Choice("float32", "float32 for images and vectors, int64 for token ids",
                        choices=("float32", "int64")),
    }
    examples = (Example({"shape": (3,)}),)

    @classmethod
    def label(cls, a) -> str:
        return "×".join(map(str, a["shape"]))

    @staticmethod
    def feed_dtype(a) -> str:
        return a.dtype

    @staticmethod
    def infer(a):
        return (None, *a.shape)


@register
class Label(Layer):
    """Feeds the training targets: class indices (for cross-entropy) or values (for MSE)."""

    formula = "y = the batch's targets: {kind}, each of shape {shape}"
    backward_formula = "none: targets are data, so no gradient flows into them"
    category = "Input/Output"
    inputs = ()
    outputs = ("y",)
    is_source = True
    attrs = {
        "kind": Choice("class index", "integer classes, or real-valued targets",
                       choices=("class index", "values")),
        "shape": IntTuple((), "shape of one target without the batch: () for one class per sample",
                          min=1),
    }
    examples = (Example({"kind": "values", "shape": (2,)}),)

    @classmethod
    def label(cls, a) -> str:
        return "classes" if a["kind"] == "class index" else "×".join(map(str, a["shape"])) or "scalar"

    @staticmethod
    def feed_dtype(a) -> str:
        return "int64" if a.kind == "class index" else "float32"

    @staticmethod
    def infer(a):
        return (None, *a.shape)


def source_nodes(graph, type_id: str) -> list[str]:
    """Ids of the graph's nodes of one source type, in insertion order."""
    return [n.id for n in graph.nodes.values() if n.type == type_id]
