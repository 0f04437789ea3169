"""Predictions on a person's own files — image files or CSV rows — prepared as the training data was.

The preparation comes from the graph file's data section (``preprocessing`` and ``classes``,
written when the data was chosen), or, when the file stores none, from loading the data it names:
so a graph and its weights predict the same on any machine, even without the training data.
``layerloom predict`` (engine/cli_predict.py) and the Inference tab both use these functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError
from layerloom.engine.spec import LayerloomError


@dataclass(frozen=True)
class Inputs:
    """What one file gives the network: a name per sample and the batch."""

    names: list
    x: np.ndarray


@dataclass(frozen=True)
class Prepared:
    """How files become inputs for this graph, and what its outputs are called."""

    preprocessing: dict
    class_names: list


def stored_preparation(section: dict) -> Prepared | None:
    """The data section's stored preprocessing and class names, or None when it has none."""
    prep, classes = section.get("preprocessing"), section.get("classes", [])
    if not isinstance(prep, dict) or prep.get("kind") not in ("image", "table"):
        return None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DataError("data.classes: must be a list of class names")
    return Prepared(prep, list(classes))


def export_metadata(section: dict) -> dict[str, str]:
    """What an exported model carries about its inputs (ONNX metadata_props): the stored
    preprocessing and class names as JSON, so other tools prepare images with the same numbers."""
    import json

    try:
        stored = stored_preparation(section)
    except DataError:
        return {}
    if stored is None:
        return {}
    return {"layerloom.preprocessing": json.dumps(stored.preprocessing),
            "layerloom.classes": json.dumps(stored.class_names)}


def input_shape(prep: dict) -> tuple:
    """The sample shape the preprocessing makes: C×H×W for images, (features,) for tables."""
    if prep.get("kind") == "image":
        from layerloom.engine.data.images import ImagePrep

        p = ImagePrep.from_dict(prep)
        return (p.channels, *p.size)
    from layerloom.engine.data.table import TablePrep

    return (len(TablePrep.from_dict(prep).feature_names),)


def prepare_file(prep: dict, path: str | Path) -> Inputs:
    """One image file (one sample) or a CSV file (one sample per row) as network input."""
    path = Path(path)
    if prep.get("kind") == "image":
        from layerloom.engine.data.images import ImagePrep

        return Inputs([path.name], ImagePrep.from_dict(prep).load(path))
    if prep.get("kind") == "table":
        return _table_rows(prep, path)
    raise DataError(f"{path.name}: this graph's data has no file preprocessing (train it on "
                    f"folder: images or a CSV table)")


def _table_rows(prep: dict, path: Path) -> Inputs:
    from layerloom.engine.data.csv import has_header, read_table
    from layerloom.engine.data.table import TablePrep

    table = TablePrep.from_dict(prep)
    rows, lines = read_table(path, min_columns=1)
    if has_header(rows):
        header, rows, lines = rows[0], rows[1:], lines[1:]
    else:  # positional, as the training file was read: with or without its target column
        header = list(table.columns)
        if len(rows[0]) == len(header) - 1:
            header.remove(table.target)
    if len(rows[0]) != len(header):
        raise DataError(f"{path}: rows have {len(rows[0])} columns, the network was trained on "
                        f"{len(table.columns)} ({', '.join(table.columns)})")
    return Inputs([f"{path.name} line {n}" for n in lines], table.transform(header, rows, str(path)))


def outputs(net, binding, x: np.ndarray) -> np.ndarray:
    """The class scores (or regression values) of a batch, in inference mode."""
    ref = binding.logits_ref or binding.values_ref
    if ref is None:
        raise LayerloomError("the graph has no output to predict from")
    feeds = {binding.input_id: x}
    if binding.label_id is not None:  # the label is not used for predictions: zeros of its shape
        feeds[binding.label_id] = _blank_label(net, binding, len(x))
    net.forward(feeds, check=False)
    return np.array(net.executor.values[ref])


def _blank_label(net, binding, n: int) -> np.ndarray:
    attrs = net.graph.nodes[binding.label_id].attrs
    shape = tuple(attrs.get("shape") or ())
    kind = attrs.get("kind", "class index")
    return np.zeros((n, *shape), dtype=np.int64 if kind == "class index" else np.float32)


def probabilities(net, binding, scores: np.ndarray) -> np.ndarray:
    """Class probabilities from class scores: a softmax, unless the graph's output already is one
    (an imported model). One row per sample, float64."""
    ends_in_softmax = net.plan.step(binding.logits_ref[0]).layer.type_id == "Softmax"
    z = np.asarray(scores, dtype=np.float64)
    if ends_in_softmax:
        return z
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_classes(probs: np.ndarray, names: list, k: int) -> list[tuple[str, float]]:
    """The ``k`` likeliest classes of one sample, likeliest first (ties: lower class first)."""
    names = names if len(names) == len(probs) else [str(i) for i in range(len(probs))]
    order = np.argsort(-probs, kind="stable")[:k]
    return [(names[i], float(probs[i])) for i in order]
