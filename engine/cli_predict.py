"""``layerloom predict GRAPH --weights W FILE…``: what a trained network says about a person's files.

Image files (any format Pillow reads) are prepared as the training images were — size, channels,
crop, per-channel normalisation — from the graph file's stored preprocessing, or from the data it
names when none is stored (``--data SPEC`` for another source). CSV files give one prediction per
row, their columns read by name. Prints one line per sample: the ``--top`` likeliest classes with
their probabilities, or the predicted values of a regression model. A file that cannot be read is
reported on stderr and the others are still predicted (exit code 1 then).
"""
from __future__ import annotations

import argparse
import sys


def _top(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the ``predict`` subcommand to ``layerloom``'s subparsers."""
    parser = subparsers.add_parser("predict", help="predict the classes (or values) of image "
                                                   "files or CSV rows with a trained graph")
    parser.add_argument("graph", help="a layerloom-graph JSON file")
    parser.add_argument("files", nargs="+", metavar="FILE", help="image files or CSV files")
    parser.add_argument("--weights", required=True, metavar="FILE",
                        help="trained weights (.npz or .safetensors)")
    parser.add_argument("--top", type=_top, default=3, metavar="K",
                        help="classes to print per file, likeliest first (default 3)")
    parser.add_argument("--data", metavar="SPEC", help="the data the model was trained on, for "
                        "its preprocessing and class names (default: the graph file's)")
    parser.add_argument("--allow-outside-data", action="store_true",
                        help="read the data the graph file names even outside its folder (only "
                             "needed when the file stores no preprocessing)")
    parser.set_defaults(run=run)
    return parser


def preparation(project, data_spec: str | None, where: str, graph_path=None,
                allow_outside: bool = False):
    """The stored preparation, or the one of the data the graph (or ``--data``) names; the
    graph's own data is read under the data-path policy (engine.data.location)."""
    from layerloom.engine.data import DataError
    from layerloom.engine.data.section import load_data_section
    from layerloom.engine.predict import Prepared, stored_preparation

    stored = stored_preparation(project.data) if data_spec is None else None
    if stored is not None:
        return stored
    spec, dataset = load_data_section(project.data, where, data_spec, graph_path=graph_path,
                                      allow_outside=allow_outside)
    if not dataset.preprocessing:
        raise DataError(f"{where}: its data ({spec}) keeps no preprocessing for files: predict "
                        f"works for image and CSV data")
    return Prepared(dataset.preprocessing, list(dataset.class_names))


def network(project, prep: dict, weights: str):
    """The graph with its Input shaped as the preprocessing makes samples, and the weights."""
    from layerloom.engine.layers.io import source_nodes
    from layerloom.engine.network import Network
    from layerloom.engine.predict import input_shape
    from layerloom.engine.training import bind_for_predictions

    for node_id in source_nodes(project.graph, "Input"):
        project.graph.set_attr(node_id, "shape", input_shape(prep))
    net = Network(project.graph)
    net.load_weights(weights)
    return net, bind_for_predictions(net)


def run(args: argparse.Namespace) -> int:
    """Raises LayerloomError subclasses for ``layerloom``'s main to print as one line."""
    from pathlib import Path

    from layerloom.engine.data import DataError
    from layerloom.engine.predict import outputs, prepare_file, probabilities, top_classes
    from layerloom.engine.serialize import load_project

    where = Path(args.graph).name
    project = load_project(args.graph)
    prepared = preparation(project, args.data, where, args.graph, args.allow_outside_data)
    net, binding = network(project, prepared.preprocessing, args.weights)
    failed = 0
    for file in args.files:
        try:
            inputs = prepare_file(prepared.preprocessing, file)
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        scores = outputs(net, binding, inputs.x)
        for name, row in zip(inputs.names, scores):
            if binding.logits_ref is not None:
                probs = probabilities(net, binding, row[None])[0]
                shown = ", ".join(f"{c} {100 * p:.2f}%" for c, p in
                                  top_classes(probs, prepared.class_names, args.top))
            else:
                shown = ", ".join(f"{v:.6g}" for v in row.ravel())
            print(f"{name}: {shown}", flush=True)
    return 1 if failed else 0
