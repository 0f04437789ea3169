"""The headless command line: ``layerloom check GRAPH`` and ``layerloom train GRAPH [options]``.

No Qt is imported here (``gui/main.py`` sends subcommands to ``main`` before it imports Qt).
Every ``LayerloomError`` ends as one ``error: ...`` line per problem and exit code 1, never a
traceback. Training consumes ``engine.training.train``'s reports: a progress line on stderr,
one summary line per epoch and the test result on stdout, and optionally a metrics JSON file.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator, TextIO

from layerloom.engine.budget import fmt_bytes, memory_budget
from layerloom.engine.data import Dataset, spec_forms
from layerloom.engine.graph import Graph
from layerloom.engine.optim import OPTIMIZERS, SCHEDULES
from layerloom.engine.plan import PlanError
from layerloom.engine.data.section import load_data_section
from layerloom.engine.serialize import atomic_write_bytes, load_project
from layerloom.engine.shapes import ShapeReport, batch_size_of, infer_shapes, param_counts
from layerloom.engine.spec import LayerloomError, fmt_shape
from layerloom.engine.training_config import SETTINGS, TrainConfig

COMMANDS = ("check", "train", "generate", "export", "import", "bench", "predict", "runs", "sweep",
            "lr-find", "gradcheck")
COMPILE_NOTICE_AFTER = 1.0  # seconds the first step may take before we say kernels are compiling


def _setting(name: str, convert: type):
    """An argparse type for the flag of training setting ``name``: the engine's own rule
    (``training_config.SETTINGS``) checks it, so a bad flag is argparse's one-line usage error."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            kind = "a whole number" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
        problem = SETTINGS[name].problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layerloom", description="Layerloom's headless commands.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="print a model summary, or the graph's problems")
    check.add_argument("graph", help="a layerloom-graph JSON file")
    check.set_defaults(run=cmd_check)
    train = sub.add_parser("train", help="train a graph; settings default to the file's")
    train.add_argument("graph", help="a layerloom-graph JSON file")
    train.add_argument("--data", metavar="SPEC", help=f"data set: {spec_forms()}")
    train.add_argument("--epochs", type=_setting("epochs", int))
    train.add_argument("--batch-size", type=_setting("batch_size", int))
    train.add_argument("--lr", type=_setting("lr", float), help="learning rate")
    train.add_argument("--optimizer", choices=OPTIMIZERS)
    train.add_argument("--schedule", choices=SCHEDULES,
                       help="learning rate over the run: constant, cosine decay, or ÷10 at ½ and ¾")
    train.add_argument("--seed", type=_setting("seed", int))
    train.add_argument("--max-steps", type=_setting("max_steps", int),
                       help="stop after this many steps")
    train.add_argument("--val-fraction", type=float, help="share of training data held out")
    train.add_argument("--allow-outside-data", action="store_true",
                       help="read the data the graph file names even outside its folder")
    train.add_argument("--save-weights", metavar="FILE", help="write weights (.npz or .safetensors)")
    train.add_argument("--init-weights", metavar="FILE", help="start from the weights in FILE "
                       "whose node ids and shapes match (fine-tune a pretrained part)")
    train.add_argument("--metrics-json", metavar="FILE", help="write losses and accuracies as JSON")
    train.add_argument("--weight-decay", type=_setting("weight_decay", float))
    train.add_argument("--momentum", type=_setting("momentum", float))
    train.add_argument("--run-name", help="the name of this run in the run store")
    train.add_argument("--run-tags", default="", help="tags of this run in the run store")
    train.add_argument("--runs-db", metavar="FILE", help="the run database (default: the user's)")
    train.add_argument("--no-record", action="store_true", help="do not record this run")
    train.add_argument("--sweep-id", help=argparse.SUPPRESS)
    train.set_defaults(run=cmd_train)
    from layerloom.engine import cli_generate  # its own module: sampling options stay out of this file
    cli_generate.add_parser(sub)
    from layerloom.engine import cli_export  # layerloom export / import: PyTorch code, ONNX
    cli_export.add_parser(sub)
    from layerloom.engine import cli_bench  # layerloom bench: the PyTorch comparison (tests/benchmarks)
    cli_bench.add_parser(sub)
    from layerloom.engine import cli_predict  # layerloom predict: a person's image files, CSV rows
    cli_predict.add_parser(sub)
    from layerloom.engine import cli_runs, cli_sweep  # the run store: runs, lr-find, sweep
    cli_runs.add_parser(sub)
    cli_sweep.add_parser(sub, main)
    from layerloom.engine import cli_gradcheck  # per-node gradient checks at real inputs
    cli_gradcheck.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        memory_budget(strict=True)  # a LAYERLOOM_MEMORY_BUDGET that cannot be read is said at once
        return args.run(args)
    except PlanError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
    except LayerloomError as err:
        print(f"error: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 1


# ------------------------------------------------------------------------------------ check
def summary_rows(graph: Graph, report: ShapeReport) -> list[tuple[str, str, str, int, bool]]:
    """(node id, type, output shape, parameter count, frozen) per node in execution order."""
    counts = param_counts(graph, report)
    rows = []
    for node_id in graph.topological_order():
        node = graph.nodes[node_id]
        ports = graph.output_ports(node_id)
        shapes = [report.shapes.get((node_id, p)) for p in ports]
        if len(ports) == 1:
            shown = fmt_shape(shapes[0]) if shapes[0] is not None else "?"
        else:
            shown = ", ".join(f"{p}: {fmt_shape(s) if s is not None else '?'}"
                              for p, s in zip(ports, shapes))
        kind = f"Block {graph.layer(node_id).label(node.attrs)}" if graph.definition(node_id) \
            else node.type  # which block, and how many copies
        rows.append((node_id, kind, shown, counts[node_id], node.frozen))
    return rows


def format_summary(rows: list[tuple]) -> str:
    head = ("node", "type", "output", "params", "")
    body = [(r[0], r[1], r[2], f"{r[3]:,}", "frozen" if r[4] else "") for r in rows]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(5)]
    line = lambda row: "  ".join(  # noqa: E731 (params right-aligned, the rest left)
        cell.rjust(w) if i == 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
    ).rstrip()
    rule = "-" * len(line(tuple("-" * w for w in widths)))
    total = sum(r[3] for r in rows)
    frozen = sum(r[3] for r in rows if r[4])
    tail = f"total parameters: {total:,} (trainable {total - frozen:,}, frozen {frozen:,})"
    return "\n".join([line(head), rule, *map(line, body), rule, tail])


def cmd_check(args: argparse.Namespace) -> int:
    project = load_project(args.graph)
    graph = project.graph
    report = infer_shapes(graph, batch_size_of(project.training))
    problems = list(report.errors.values())
    if not graph.nodes:
        problems.append("the graph is empty: add an Input node")
    if problems:
        raise PlanError(problems)
    print(format_summary(summary_rows(graph, report)))
    print(f"memory: about {fmt_bytes(report.training_bytes)} to train at batch {report.batch_size} "
          f"(budget {fmt_bytes(report.budget)})")
    if not any(graph.layer(n).is_loss for n in graph.nodes):
        print("note: no loss node, so this graph cannot be trained (add CrossEntropyLoss, MSELoss "
              "or Objective)")
    return 0


# ------------------------------------------------------------------------------------ train
FLAG_SETTINGS = ("epochs", "batch_size", "lr", "optimizer", "schedule", "seed", "max_steps",
                 "weight_decay", "momentum")


def training_config(settings: dict, args: argparse.Namespace, where: str) -> TrainConfig:
    """The file's "training" section with the command-line flags on top, checked."""
    flags = {f: getattr(args, f) for f in FLAG_SETTINGS if getattr(args, f, None) is not None}
    return TrainConfig.from_settings({**settings, **flags}, f"{where}: training")


class Progress:
    """A ``\\r``-updated bar on a terminal; nothing per step when stderr is a pipe or a file."""

    def __init__(self, stream: TextIO, epochs: int):
        self.stream, self.epochs = stream, epochs
        self.tty = stream.isatty()
        self.last, self.width = 0.0, 0

    def step(self, r) -> None:
        now = time.perf_counter()
        end_of_epoch = r.step + 1 == r.steps_per_epoch
        if not self.tty or (now - self.last < 0.1 and not end_of_epoch):
            return
        self.last = now
        done = (r.step + 1) / r.steps_per_epoch
        bar = "#" * int(20 * done) + "." * (20 - int(20 * done))
        text = (f"epoch {r.epoch + 1}/{self.epochs} [{bar}] step {r.step + 1}/{r.steps_per_epoch}"
                f"  loss {r.loss:.4f}  {r.samples_per_sec:,.0f} samples/s")
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


@contextmanager
def stop_on_sigint(control) -> Iterator[None]:
    """First Ctrl-C: finish the current step, evaluate, save. A second one aborts at once."""
    def handler(signum, frame):
        if control.stopped:
            raise KeyboardInterrupt
        control.stop()
        print("\nstopping after this step (Ctrl-C again to abort)", file=sys.stderr, flush=True)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _compile_notice() -> threading.Timer:
    timer = threading.Timer(COMPILE_NOTICE_AFTER, lambda: print(
        "compiling kernels… (first run only; cached afterwards)", file=sys.stderr, flush=True))
    timer.daemon = True
    timer.start()
    return timer


def run_training(net, dataset: Dataset, config, recorder=None) -> dict:
    """Consume ``train``'s reports, printing progress (and recording them in the run store when
    a ``RunRecorder`` is given); returns the metrics dict."""
    from layerloom.engine.run_recorder import recorded
    from layerloom.engine.threads import engine_threads
    from layerloom.engine.training import (Control, Diverged, DoneReport, EpochReport, Exploding,
                                           StepReport, train)

    control, progress = Control(), Progress(sys.stderr, config.epochs)
    metrics = {"epochs": [], "step_losses": [], "steps": 0, "samples_per_sec": None,
               "test_loss": None, "test_accuracy": None, "stopped": False, "diverged": None,
               "warnings": []}
    last_rate, t0 = None, time.perf_counter()
    timer = _compile_notice()
    with stop_on_sigint(control), engine_threads():
        for r in recorded(train(net, dataset, config, control), recorder):
            timer.cancel()
            if isinstance(r, StepReport):
                progress.step(r)
                metrics["step_losses"].append(r.loss)
                last_rate = r.samples_per_sec
            elif isinstance(r, EpochReport):
                progress.clear()
                metrics["epochs"].append({"epoch": r.epoch + 1, "train_loss": r.train_loss,
                                          "train_accuracy": r.train_accuracy,
                                          "val_loss": r.val_loss, "val_accuracy": r.val_accuracy,
                                          "samples_per_sec": last_rate, "val_exact": r.val_exact})
                exact = "" if r.val_exact is None else f", exact match {_pct(r.val_exact)}"
                print(f"epoch {r.epoch + 1}/{config.epochs}: train loss {_num(r.train_loss)}, "
                      f"val loss {_num(r.val_loss)}, val accuracy {_pct(r.val_accuracy)}{exact}"
                      f" ({last_rate or 0:,.0f} samples/s)", flush=True)
            elif isinstance(r, DoneReport):
                progress.clear()
                metrics.update(steps=r.steps, samples_per_sec=r.samples_per_sec, stopped=r.stopped,
                               test_loss=r.test_loss, test_accuracy=r.test_accuracy,
                               test_exact=r.test_exact)
            elif isinstance(r, Exploding):
                progress.clear()
                print(f"warning: at step {r.global_step + 1}, {r.message}", file=sys.stderr, flush=True)
                metrics["warnings"].append({"step": r.global_step, "message": r.message})
            elif isinstance(r, Diverged):
                progress.clear()
                metrics["steps"] = r.global_step
                metrics["diverged"] = {"step": r.global_step, "node": r.node_id,
                                       "phase": r.phase, "message": r.message}
    timer.cancel()
    metrics["seconds"] = time.perf_counter() - t0
    return metrics


def cmd_train(args: argparse.Namespace) -> int:
    from layerloom.engine import cli_runs
    from layerloom.engine.export.weights import check_weights_path, save_weights
    from layerloom.engine.network import Network
    from layerloom.engine.project import check_fit, fit_graph_to_data

    where = Path(args.graph).name
    project = load_project(args.graph)
    config = training_config(project.training, args, where)
    from layerloom.engine.objective import graph_needs_no_data

    if graph_needs_no_data(project.graph):  # Parameters and an Objective: a step is an update
        from layerloom.engine.cli_objective import cmd_train_objective
        return cmd_train_objective(args, project, config, where)
    if args.save_weights:
        check_weights_path(args.save_weights)
    spec, dataset = load_data_section(project.data, where, args.data, args.val_fraction,
                                      graph_path=args.graph,
                                      allow_outside=args.allow_outside_data)
    for change in fit_graph_to_data(project.graph, dataset):
        print(f"note: {change} (to fit the data)", file=sys.stderr)
    check_fit(project.graph, dataset)
    net = Network(project.graph, seed=config.seed, batch_size=config.batch_size)
    if args.init_weights:
        from layerloom.engine.export.weights import load_weights
        taken = net.load_matching(load_weights(args.init_weights))
        print(f"note: {len(taken)} of {len(net.params)} parameters from {args.init_weights}",
              file=sys.stderr)
    classes = f", {dataset.num_classes} classes" if dataset.task == "classification" else ""
    print(f"training {where} on {spec}: {len(dataset.train):,} train / {len(dataset.val):,} val / "
          f"{len(dataset.test):,} test samples of {fmt_shape(dataset.sample_shape)}{classes}; "
          f"{config.optimizer} lr {config.lr:g}"
          f"{'' if config.schedule == 'constant' else f' ({config.schedule})'}, "
          f"batch {config.batch_size}, "
          f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
          f"{augmenting(dataset)}", file=sys.stderr, flush=True)
    recorder = cli_runs.recorder_from_args(args, project, spec, config)
    # nothing on the command line plots histograms: none are computed (the run keeps its setting)
    metrics = run_training(net, dataset, replace(config, histogram_every=0), recorder)
    diverged = metrics["diverged"]
    if diverged is None:
        exact = metrics.get("test_exact")
        print(f"test loss {_num(metrics['test_loss'])}, test accuracy {_pct(metrics['test_accuracy'])}"
              f"{'' if exact is None else f', exact match {_pct(exact)}'}"
              f" ({len(dataset.test):,} samples); {metrics['steps']:,} steps in "
              f"{metrics['seconds']:.1f} s, {metrics['samples_per_sec']:,.0f} samples/s", flush=True)
    written = bool(args.save_weights) and not (diverged is not None and diverged["step"] == 0)
    if args.save_weights and not written:
        print(f"note: no weights written to {args.save_weights}: training diverged at its first "
              f"step, before any update", file=sys.stderr)
    elif written:
        save_weights(net.params, args.save_weights)  # after a divergence: the last good ones
        print(f"weights written to {args.save_weights}" + (
            "" if diverged is None else f" (the last good ones: {diverged['step']:,} steps, "
            f"before the step where training diverged)"), file=sys.stderr)
        if recorder is not None:
            recorder.store.set_weights_path(recorder.run_id, args.save_weights)
    if recorder is not None and not written:
        recorder.store.keep_weights(recorder.run_id, net.params)  # Restore reopens it as it ended
    if args.metrics_json:
        _write_metrics(args, spec, dataset, config, metrics)
    if diverged is not None:
        print(f"error: training diverged at step {diverged['step'] + 1}: {diverged['message']}",
              file=sys.stderr)
        return 1
    if metrics["stopped"]:
        print("stopped early by Ctrl-C", file=sys.stderr)
        return 130
    return 0


def augmenting(dataset: Dataset) -> str:
    aug = dataset.augment
    return f"; augmenting: {aug.describe()}" if aug is not None and aug.active else ""


def _write_metrics(args, spec: str, dataset: Dataset, config, metrics: dict) -> None:
    out = {"graph": str(args.graph), "data": spec,
           "dataset": {"name": dataset.name, "task": dataset.task, "train": len(dataset.train),
                       "val": len(dataset.val), "test": len(dataset.test),
                       "sample_shape": list(dataset.sample_shape),
                       "classes": dataset.num_classes},
           "config": config.to_dict(), **metrics}
    try:
        atomic_write_bytes(args.metrics_json, (json.dumps(out, indent=1) + "\n").encode())
    except OSError as err:
        raise LayerloomError(f"{args.metrics_json}: cannot write metrics ({err.strerror or err})") from None


if __name__ == "__main__":
    sys.exit(main())
