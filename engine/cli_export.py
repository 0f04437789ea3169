"""``layerloom export GRAPH OUT`` and ``layerloom import MODEL.onnx OUT.json``: models in and out.

Export: the output's extension picks the form. ``.py`` is a module with the model, its loss and
a command line that trains it with the graph file's settings (``engine.export.torch_code``).
``.onnx`` is the inference graph with the weights inside (``engine.export.onnx``): from
``--weights``, else freshly initialised ones, and it says which.
Import: an ONNX model's graph (``engine.export.onnx_import``) as a graph file, its weights
beside it as ``OUT.weights.npz``, which opening the graph loads.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from layerloom.engine.spec import LayerloomError

FORMATS = {".py": "PyTorch code", ".onnx": "ONNX model"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the ``export`` subcommand to ``layerloom``'s subparsers."""
    parser = subparsers.add_parser("export", help="write a graph as PyTorch code (.py) or an "
                                                  "ONNX model (.onnx)")
    parser.add_argument("graph", help="a layerloom-graph JSON file")
    parser.add_argument("out", help="the file to write: .py (PyTorch code) or .onnx")
    parser.add_argument("--weights", metavar="FILE",
                        help="trained weights (.npz or .safetensors) to put in an .onnx model")
    parser.set_defaults(run=cmd_export)
    reader = subparsers.add_parser("import", help="read an ONNX model into a graph file and its "
                                                  "weights")
    reader.add_argument("model", help="an .onnx file")
    reader.add_argument("out", help="the graph file to write (.json); the weights go beside it")
    reader.set_defaults(run=cmd_import)
    return parser


def cmd_import(args: argparse.Namespace) -> int:
    from layerloom.engine.export.onnx_import import graph_from_onnx_file
    from layerloom.engine.export.weights import save_weights, weights_path
    from layerloom.engine.serialize import Project, save_project

    src, out = Path(args.model), Path(args.out)
    if out.suffix != ".json":
        raise LayerloomError(f"{out.name}: name a .json file for the graph")
    graph, params = graph_from_onnx_file(src)  # a regular file only; checked before it is built
    try:
        save_project(Project(graph), out)
        save_weights(params, weights_path(out))
    except OSError as err:
        raise LayerloomError(f"{out}: cannot write ({err.strerror or err})") from None
    print(f"wrote {out} ({len(graph.nodes)} nodes) and {weights_path(out).name}; add a Label and "
          f"a loss to train it further", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from layerloom.engine.serialize import atomic_write_bytes, load_project

    out = Path(args.out)
    if out.suffix not in FORMATS:
        raise LayerloomError(f"{out.name}: cannot tell the format; name a .py file (PyTorch "
                             f"code) or an .onnx file")
    project = load_project(args.graph)
    if out.suffix == ".py":
        from layerloom.engine.export.torch_code import torch_source

        payload = torch_source(project.graph, project.training, title=out.stem).encode("utf-8")
        hint = f"train it with: python {out} --data DATA.npz --save WEIGHTS.npz"
    else:
        from layerloom.engine.export.onnx import onnx_bytes
        from layerloom.engine.network import Network

        net = Network(project.graph, seed=int(project.training.get("seed", 0)))
        if args.weights:
            net.load_weights(args.weights)
        payload = onnx_bytes(net, title=out.stem)
        hint = (f"weights from {args.weights}" if args.weights else
                "weights freshly initialised: pass --weights FILE for trained ones")
    try:
        atomic_write_bytes(out, payload)
    except OSError as err:
        raise LayerloomError(f"{out}: cannot write ({err.strerror or err})") from None
    print(f"wrote {out} ({FORMATS[out.suffix]}); {hint}", file=sys.stderr)
    return 0
