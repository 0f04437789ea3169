"""``layerloom export GRAPH OUT`` and ``layerloom import MODEL.onnx OUT.json``: models in and out.

Export: the output's extension picks the form. ``.py`` is a module with the model, its loss and
a command line that trains it with the graph file's settings (``engine.export.torch_code``).
``.onnx`` is the inference graph with the weights inside (``engine.export.onnx``): from
``--weights``, else freshly initialised ones, and it says which. ``--split`` writes an
encoder-decoder as two: ``OUT.encoder.onnx`` and ``OUT.decoder.onnx``
(``engine.export.onnx_split``).
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
                        help="trained weights (.npz or .safetensors) to put in an .onnx model "
                             "or a project")
    parser.add_argument("--split", action="store_true",
                        help="an encoder-decoder as two .onnx models: OUT.encoder.onnx (source "
                             "and mask -> memory) and OUT.decoder.onnx (memory and decoder "
                             "input -> next-token scores)")
    parser.add_argument("--project", action="store_true",
                        help="OUT is a folder: a PyTorch training project (model.py, train.py "
                             "for torchrun, the data and weights, a README)")
    parser.add_argument("--data", metavar="SPEC", help="the data a project carries (default: "
                        "the graph file's)")
    parser.add_argument("--allow-outside-data", action="store_true",
                        help="read the data the graph file names even outside its folder")
    parser.set_defaults(run=cmd_export, val_fraction=None)
    reader = subparsers.add_parser("import", help="read an ONNX model into a graph file and its "
                                                  "weights")
    reader.add_argument("model", help="an .onnx file")
    reader.add_argument("out", help="the graph file to write (.json); the weights go beside it")
    reader.set_defaults(run=cmd_import)
    return parser


def cmd_import(args: argparse.Namespace) -> int:
    from layerloom.engine.export.onnx_import import read_onnx_file
    from layerloom.engine.export.weights import save_weights, weights_path
    from layerloom.engine.serialize import Project, save_project

    src, out = Path(args.model), Path(args.out)
    if out.suffix != ".json":
        raise LayerloomError(f"{out.name}: name a .json file for the graph")
    result = read_onnx_file(src)  # a regular file only; checked before it is built
    graph, params = result.graph, result.params
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
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
    if args.project:
        return _export_project(args, out)
    if out.suffix not in FORMATS:
        raise LayerloomError(f"{out.name}: cannot tell the format; name a .py file (PyTorch "
                             f"code) or an .onnx file")
    if args.split and out.suffix != ".onnx":
        raise LayerloomError(f"{out.name}: --split writes ONNX models; name an .onnx file")
    project = load_project(args.graph)
    if out.suffix == ".py":
        from layerloom.engine.export.torch_code import torch_source

        payload = torch_source(project.graph, project.training, title=out.stem).encode("utf-8")
        hint = f"train it with: python {out} --data DATA.npz --save WEIGHTS.npz"
    else:
        from layerloom.engine.export.onnx import onnx_bytes
        from layerloom.engine.network import Network
        from layerloom.engine.training_config import TrainConfig

        net = Network(project.graph, seed=TrainConfig.from_settings(project.training).seed)
        if args.weights:
            net.load_weights(args.weights)
        from layerloom.engine.predict import export_metadata

        metadata = export_metadata(project.data)
        if args.split:
            return _write_split(net, out, metadata, args.weights)
        payload = onnx_bytes(net, title=out.stem, metadata=metadata)
        hint = (f"weights from {args.weights}" if args.weights else
                "weights freshly initialised: pass --weights FILE for trained ones")
    try:
        atomic_write_bytes(out, payload)
    except OSError as err:
        raise LayerloomError(f"{out}: cannot write ({err.strerror or err})") from None
    print(f"wrote {out} ({FORMATS[out.suffix]}); {hint}", file=sys.stderr)
    return 0


def _write_split(net, out: Path, metadata: dict, weights: str | None) -> int:
    from layerloom.engine.export.onnx_split import split_onnx
    from layerloom.engine.serialize import atomic_write_bytes

    models = split_onnx(net, title=out.stem, metadata=metadata)
    paths = [out.with_suffix(f".{part}.onnx") for part in ("encoder", "decoder")]
    for path, payload in zip(paths, models):
        try:
            atomic_write_bytes(path, payload)
        except OSError as err:
            raise LayerloomError(f"{path}: cannot write ({err.strerror or err})") from None
    start = f"weights from {weights}" if weights else "weights freshly initialised"
    print(f"wrote {paths[0]} (source, source_mask -> memory) and {paths[1]} (memory, "
          f"decoder_input -> next-token scores); {start}", file=sys.stderr)
    return 0


def _export_project(args: argparse.Namespace, out: Path) -> int:
    from layerloom.engine.data.section import load_data_section
    from layerloom.engine.export.torch_project import check_trains_on_data, write_project
    from layerloom.engine.network import Network
    from layerloom.engine.project import fit_graph_to_data
    from layerloom.engine.serialize import load_project

    project = load_project(args.graph)
    check_trains_on_data(project)
    spec, dataset = load_data_section(project.data, Path(args.graph).name, args.data,
                                      graph_path=args.graph,
                                      allow_outside=args.allow_outside_data)
    fit_graph_to_data(project.graph, dataset)
    net = Network(project.graph, seed=int(project.training.get("seed", 0)))
    if args.weights:
        net.load_weights(args.weights)
    write_project(project, out, net.params, dataset, title=Path(args.graph).stem)
    start = f"weights from {args.weights}" if args.weights else "freshly initialised weights"
    print(f"wrote the training project {out}/ ({spec}, {start}); run it with: cd {out} && "
          f"python train.py   (or torchrun --nproc_per_node=N train.py)", file=sys.stderr)
    return 0
