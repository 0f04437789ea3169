"""``layerloom generate GRAPH --weights FILE --prompt TEXT``: continue a text with a trained model;
``--fill TEXT`` instead fills in the ``[MASK]`` (or ``_``) characters of TEXT with a masked-LM;
``--source TEXT [--beam K]`` decodes a source with an encoder-decoder trained on ``pairs:`` data.

The vocabulary comes from the data set the model was trained on: the graph file's data spec, or
``--data`` when it was trained on another text. Prints the prompt followed by the generated text;
for ``--fill``, the filled-in text and then, one line per mask, its likeliest characters; for
``--source``, the decoded target alone.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Iterator


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 always takes the likeliest), got {text}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the ``generate`` subcommand to ``layerloom``'s subparsers."""
    parser = subparsers.add_parser("generate", help="continue a text with a trained character "
                                                    "language model, or decode a source with an "
                                                    "encoder-decoder")
    parser.add_argument("graph", help="a layerloom-graph JSON file")
    parser.add_argument("--weights", required=True, metavar="FILE",
                        help="trained weights (.npz or .safetensors)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", metavar="TEXT", help="the text to continue")
    what.add_argument("--fill", metavar="TEXT", help="a text with [MASK] (or _) where characters "
                                                     "are hidden, for a masked-LM to fill in")
    parser.add_argument("--top", type=_count, default=5, metavar="K",
                        help="with --fill: candidates shown per mask (default 5)")
    what.add_argument("--source", metavar="TEXT",
                      help="the source to decode (a model trained on pairs: data)")
    parser.add_argument("--beam", type=_count, default=1, metavar="K",
                        help="with --source: beam search with K beams (default 1: greedy)")
    parser.add_argument("--length", type=_count, default=200, metavar="N",
                        help="characters to generate (default 200)")
    parser.add_argument("--temperature", type=_temperature, default=0.6, metavar="T",
                        help="below 1 safer, above 1 wilder, 0 always the likeliest (default 0.6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    parser.add_argument("--data", metavar="SPEC",
                        help="the data the model was trained on, for its vocabulary "
                             "(default: the graph file's)")
    parser.add_argument("--allow-outside-data", action="store_true",
                        help="read the data the graph file names even outside its folder")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Raises LayerloomError subclasses for ``layerloom``'s main to print as one line."""
    from layerloom.engine.data import load_data
    from layerloom.engine.data.location import graph_data_spec
    from layerloom.engine.network import Network
    from layerloom.engine.project import fit_graph_to_data
    from layerloom.engine.serialize import load_project

    project = load_project(args.graph)
    spec = args.data or project.data.get("spec") or "text"
    if not args.data:  # the file's own data path: inside its folder, or agreed to
        spec = graph_data_spec(spec, args.graph, allow_all=args.allow_outside_data)
    dataset = load_data(spec, seed=project.data.get("seed", 0))
    fit_graph_to_data(project.graph, dataset)  # the context length follows the data, as in train
    net = Network(project.graph)
    net.load_weights(args.weights)
    with _one_core():
        if args.source is not None:
            return _decode(net, dataset, args.source, args.beam)
        return _write(args, net, dataset.class_names)


@contextlib.contextmanager
def _one_core() -> Iterator[None]:
    """numba and the BLAS on one thread: one sequence is too little work to share, and both
    pools on two busy cores made 320 characters of tiny_gpt take 193 s (19 s on one thread).
    numba's setting is put back after (it is per thread, and ``main`` may be called again)."""
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(before)


def _write(args: argparse.Namespace, net, vocab: list[str]) -> int:
    from layerloom.engine.sampling import fill, generate

    if args.fill is not None:
        filled = fill(net, vocab, args.fill, max(args.top, 1))
        lines = [filled.text] + [f"  {pos:3d}: " + "  ".join(f"{ch!r} {p:.0%}" for ch, p in best)
                                 for pos, best in filled.guesses]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        return 0
    text = generate(net, vocab, args.prompt, args.length, args.temperature, args.seed)
    sys.stdout.write(args.prompt + text + "\n")
    sys.stdout.flush()
    return 0


def _decode(net, dataset, source: str, beam: int) -> int:
    from layerloom.engine.data.pairs import PairFormat
    from layerloom.engine.decode import DecodeError, Seq2SeqModel, decode_text

    if beam < 1:
        raise DecodeError(f"--beam must be at least 1, got {beam}")
    decoded = decode_text(Seq2SeqModel.of(net, PairFormat.of(dataset)), source, beam)
    sys.stdout.write(decoded.text + "\n")
    sys.stdout.flush()
    return 0
