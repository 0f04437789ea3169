"""``layerloom export GRAPH OUT``: the graph as runnable PyTorch code, or as an ONNX model.

The output's extension picks the form. ``.py`` is a module with the model, its loss and a
command line that trains it with the graph file's settings (``engine.export.torch_code``).
``.onnx`` is the inference graph with the weights inside (``engine.export.onnx``): from
``--weights``, else freshly initialised ones, and it says which.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.spec import LayerloomError

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
    return parser


def cmd_export(args: argparse.Namespace) -> int:
    from engine.serialize import atomic_write_bytes, load_project

    out = Path(args.out)
    if out.suffix not in FORMATS:
        raise LayerloomError(f"{out.name}: cannot tell the format; name a .py file (PyTorch "
                             f"code) or an .onnx file")
    project = load_project(args.graph)
    if out.suffix == ".py":
        from engine.export.torch_code import torch_source

        payload = torch_source(project.graph, project.training, title=out.stem).encode("utf-8")
        hint = f"train it with: python {out} --data DATA.npz --save WEIGHTS.npz"
    else:
        from engine.export.onnx import onnx_bytes
        from engine.network import Network

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
