"""Graphs the export tests share: one node per registered layer example, the samples' feeds."""
from pathlib import Path

import numpy as np

from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.registry import LAYERS
from layerloom.engine.spec import FixedInput, IntInput, RangeInput

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def add_after(g: Graph, prev: str | None, node_id: str, type_id: str, attrs: dict | None = None,
              port: str = "x") -> str:
    """Add a node fed by ``prev``'s output (none for a source); returns its id, to chain on."""
    g.add_node(Node(node_id, type_id, attrs or {}))
    if prev is not None:
        g.connect((prev, "y"), (node_id, port))
    return node_id


def one_node_graph(type_id: str, case: int) -> tuple[Graph, dict]:
    """Sources for the example's inputs (a Label for a loss's target), then the node."""
    cls, rng = LAYERS[type_id], np.random.default_rng(case)
    ex = cls.examples[case]
    g, feeds = Graph(), {}
    g.add_node(Node("node", type_id, dict(ex.attrs)))
    for port, spec in zip(cls.inputs, ex.inputs):
        source = f"in_{port}"
        fixed = spec.array() if isinstance(spec, FixedInput) else None
        ints = isinstance(spec, IntInput) or (fixed is not None and fixed.dtype.kind == "i")
        shape = spec.shape if isinstance(spec, (IntInput, RangeInput, FixedInput)) else spec
        if cls.is_loss and port == "target":
            attrs = {"kind": "class index" if ints else "values", "shape": list(shape[1:])}
            g.add_node(Node(source, "Label", attrs))
        else:
            attrs = {"shape": list(shape[1:]), "dtype": "int64" if ints else "float32"}
            g.add_node(Node(source, "Input", attrs))
        if fixed is not None:
            feeds[source] = fixed
        elif ints:
            feeds[source] = rng.integers(0, spec.high, size=shape)
        elif isinstance(spec, RangeInput):
            feeds[source] = rng.uniform(spec.low, spec.high, size=shape)
        else:
            feeds[source] = rng.standard_normal(shape)
        g.connect((source, "y"), ("node", port))
    return g, feeds


def perturbed(net: Network, seed=1) -> Network:
    """Move parameters off their init (zero biases, unit gains) so every term shows."""
    rng = np.random.default_rng(seed)
    for key, value in net.params.items():
        value += 0.1 * rng.standard_normal(value.shape)
    return net


def sample_feeds(g: Graph, net: Network, n: int = 3, spec: str | None = None) -> dict:
    """A batch for every source of a sample graph: token ids below the embedding's vocabulary,
    class labels below the logits' width, floats in [0, 1). Paired sequences (a ``pairs:``
    ``spec``) come from the data itself: their packed key-padding mask is no random ids."""
    if spec is not None and spec.startswith("pairs:"):
        from layerloom.engine.data import load_data

        data = load_data(spec)
        kinds = {node.type: node.id for node in g.nodes.values()}
        return {kinds["Input"]: data.train.x[:n], kinds["Label"]: data.train.y[:n]}
    rng = np.random.default_rng(0)
    feeds = {}
    for node in g.nodes.values():
        if node.type in ("Input", "Label"):
            shape = (n, *node.attrs.get("shape", ()))
            high = 10
            for e in g.edges:  # token ids below the embedding's vocabulary, labels below classes
                reader = g.nodes[e.dst[0]]
                if e.src[0] == node.id and reader.type == "Embedding":
                    high = reader.attrs["num_embeddings"]
                if e.src[0] == node.id and reader.type == "CrossEntropyLoss":
                    high = net.plan.shapes.in_shapes[reader.id][0][-1]
            ints = node.attrs.get("dtype") == "int64" or node.attrs.get("kind") == "class index"
            feeds[node.id] = rng.integers(0, high, shape) if ints else rng.random(shape)
    return feeds
