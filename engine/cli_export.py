"""``layerloom export GRAPH OUT.py``: the graph as runnable PyTorch code.

The output's extension picks the form; ``.py`` is the one there is (``engine.export.torch_code``):
a module with the model, its loss and a command line that trains it with the graph file's
settings, loading and saving Layerloom weights files.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.spec import LayerloomError

FORMATS = {".py": "PyTorch code"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the ``export`` subcommand to ``layerloom``'s subparsers."""
    parser = subparsers.add_parser("export", help="write a graph as runnable PyTorch code (.py)")
    parser.add_argument("graph", help="a layerloom-graph JSON file")
    parser.add_argument("out", help="the file to write: .py for PyTorch code")
    parser.set_defaults(run=cmd_export)
    return parser


def cmd_export(args: argparse.Namespace) -> int:
    from engine.export.torch_code import torch_source
    from engine.serialize import atomic_write_bytes, load_project

    out = Path(args.out)
    if out.suffix not in FORMATS:
        raise LayerloomError(f"{out.name}: cannot tell the format; name a .py file for "
                             f"PyTorch code")
    project = load_project(args.graph)
    source = torch_source(project.graph, project.training, title=out.stem)
    try:
        atomic_write_bytes(out, source.encode("utf-8"))
    except OSError as err:
        raise LayerloomError(f"{out}: cannot write ({err.strerror or err})") from None
    print(f"wrote {out} ({FORMATS[out.suffix]}); train it with: python {out} --data DATA.npz "
          f"--save WEIGHTS.npz", file=sys.stderr)
    return 0
