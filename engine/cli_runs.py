"""``layerloom runs list|show|compare|export|delete`` and ``layerloom lr-find GRAPH``.

The run store (``engine.runs``) is written by every ``layerloom train`` and by the window; these
commands read it, so a person can compare runs from a terminal as from the Runs panel.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

from layerloom.engine.runs import Run, RunStore
from layerloom.engine.spec import LayerloomError

SETTINGS_SHOWN = ("optimizer", "lr", "batch_size", "epochs", "schedule", "seed")


def add_parser(subparsers) -> None:
    runs = subparsers.add_parser("runs", help="list, show, compare or export recorded runs")
    runs.add_argument("--db", metavar="FILE", help="the run database (default: the user's)")
    actions = runs.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per run")
    listing.add_argument("--sweep", metavar="ID", help="only the runs of this sweep")
    show = actions.add_parser("show", help="a run's settings, epochs and test result")
    show.add_argument("run_id", type=int)
    compare = actions.add_parser("compare", help="what differs between two runs")
    compare.add_argument("a", type=int)
    compare.add_argument("b", type=int)
    export = actions.add_parser("export", help="per-step and per-epoch metrics as CSV")
    export.add_argument("runs", type=int, nargs="+")
    export.add_argument("--out", metavar="FILE.csv", required=True)
    imported = actions.add_parser("import", help="record a run an exported project trained "
                                  "elsewhere (its folder, or its out/ folder)")
    imported.add_argument("folder")
    imported.add_argument("--name", help="the run's name (default: the project folder's)")
    delete = actions.add_parser("delete", help="remove runs for good")
    delete.add_argument("runs", type=int, nargs="+")
    runs.set_defaults(run=cmd_runs)

    finder = subparsers.add_parser("lr-find", help="the learning-rate range test: loss against "
                                   "an exponentially growing rate, with a suggested rate")
    finder.add_argument("graph", help="a layerloom-graph JSON file")
    finder.add_argument("--data", metavar="SPEC")
    finder.add_argument("--allow-outside-data", action="store_true",
                        help="read the data the graph file names even outside its folder")
    finder.add_argument("--steps", type=int, default=100)
    finder.add_argument("--start", type=float, default=1e-6)
    finder.add_argument("--end", type=float, default=1.0)
    finder.add_argument("--weights", metavar="FILE", help="start from these weights")
    finder.set_defaults(run=cmd_lr_find, val_fraction=None)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def run_line(r: Run) -> str:
    s = r.settings
    dur = "-" if r.duration is None else f"{r.duration:.0f}s"
    return (f"{r.id:>4}  {_when(r.started)}  {r.name[:32]:<32}  {r.status:<11}  "
            f"{s.get('optimizer', '?')} lr {s.get('lr', 0):g} b{s.get('batch_size', '?')} "
            f"e{s.get('epochs', '?')}  val {_pct(r.best_val_accuracy)}  test "
            f"{_pct(r.test_accuracy)}  {dur}")


def settings_diff(a: Run, b: Run) -> list[tuple[str, object, object]]:
    """(what, in a, in b) for every setting and run field that differs."""
    rows = []
    for key in sorted(set(a.settings) | set(b.settings)):
        if a.settings.get(key) != b.settings.get(key):
            rows.append((f"training.{key}", a.settings.get(key), b.settings.get(key)))
    for name in ("data_spec", "graph_hash", "seed", "threads", "machine"):
        if getattr(a, name) != getattr(b, name):
            rows.append((name, getattr(a, name), getattr(b, name)))
    return rows


def cmd_runs(args: argparse.Namespace) -> int:
    from layerloom.engine.graph_diff import diff_graph_json

    store = RunStore(args.db)
    if args.action == "list":
        runs = store.runs(sweep_id=args.sweep)
        if not runs:
            print(f"no runs recorded in {store.path}")
        for r in runs:
            print(run_line(r))
    elif args.action == "show":
        r = store.run(args.run_id)
        print(run_line(r))
        print(f"graph {r.graph_path or '(unsaved)'} [{r.graph_hash}], data {r.data_spec}, "
              f"machine {r.machine}, threads {r.threads}")
        print("settings " + json.dumps(r.settings, sort_keys=True))
        if r.stop_reason:
            print(f"ended: {r.stop_reason}")
        for e in store.epochs(r.id):
            print(f"epoch {e[0] + 1}: train loss {e[1]:.4g}, val loss "
                  f"{'-' if e[3] is None else f'{e[3]:.4g}'}, val accuracy {_pct(e[4])}")
        if r.weights_path:
            print(f"weights {r.weights_path}")
    elif args.action == "compare":
        a, b = store.run(args.a), store.run(args.b)
        rows = settings_diff(a, b)
        for what, x, y in rows:
            print(f"{what}: {x!r} -> {y!r}")
        for line in diff_graph_json(store.graph_json(a.id), store.graph_json(b.id)).lines():
            print(f"graph: {line}")
        print(f"test accuracy: {_pct(a.test_accuracy)} -> {_pct(b.test_accuracy)}")
    elif args.action == "export":
        _export_csv(store, args.runs, Path(args.out))
        print(f"{len(args.runs)} run(s) written to {args.out}")
    elif args.action == "import":
        from layerloom.engine.runs_import import import_run

        run_id = import_run(args.folder, store, args.name)
        print(run_line(store.run(run_id)))
    elif args.action == "delete":
        for rid in args.runs:
            store.run(rid)
            store.set_deleted(rid)
        store.purge()
        print(f"deleted {len(args.runs)} run(s)")
    return 0


def _export_csv(store: RunStore, ids: list[int], out: Path) -> None:
    from layerloom.engine.serialize import atomic_write_bytes

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run", "name", "kind", "step_or_epoch", "epoch", "loss", "accuracy", "lr",
                     "val_loss", "val_accuracy"])
    for rid in ids:
        r = store.run(rid)
        for step, epoch, loss, acc, lr in store.steps(rid):
            writer.writerow([rid, r.name, "step", step, epoch, loss, acc, lr, "", ""])
        for epoch, tl, ta, vl, va in store.epochs(rid):
            writer.writerow([rid, r.name, "epoch", epoch, epoch, tl, ta, "", vl, va])
    try:
        atomic_write_bytes(out, buf.getvalue().encode())
    except OSError as err:
        raise LayerloomError(f"{out}: cannot write ({err.strerror or err})") from None


def recorder_from_args(args: argparse.Namespace, project, spec: str, config):
    """A recorder of this run in the run store, or None (``--no-record``, or a store that cannot
    open: said in one line, and the run trains anyway)."""
    if getattr(args, "no_record", False):
        return None
    from layerloom.engine.run_recorder import RunRecorder, open_store_or_warn
    from layerloom.engine.runs import RunMeta
    from layerloom.engine.serialize import project_to_dict
    from layerloom.engine.threads import get_threads

    store = open_store_or_warn(args.runs_db, lambda text: print(f"note: {text}", file=sys.stderr))
    if store is None:
        return None
    meta = RunMeta(name=args.run_name or Path(args.graph).stem,
                   graph_json=json.dumps(project_to_dict(project), sort_keys=True),
                   settings=config.to_dict(), source="sweep" if args.sweep_id else "cli",
                   graph_path=str(Path(args.graph).resolve()), data_spec=spec, seed=config.seed,
                   threads=get_threads(), sweep_id=args.sweep_id, tags=args.run_tags)
    return RunRecorder(store, meta)


def cmd_lr_find(args: argparse.Namespace) -> int:
    from layerloom.engine.data.section import load_data_section
    from layerloom.engine.export.weights import load_weights
    from layerloom.engine.lr_finder import LRRange, lr_range_test
    from layerloom.engine.network import Network
    from layerloom.engine.project import check_fit, fit_graph_to_data
    from layerloom.engine.serialize import load_project
    from layerloom.engine.training_config import TrainConfig

    where = Path(args.graph).name
    project = load_project(args.graph)
    config = TrainConfig.from_settings(project.training, f"{where}: training")
    spec, dataset = load_data_section(project.data, where, args.data, args.val_fraction,
                                      graph_path=args.graph,
                                      allow_outside=args.allow_outside_data)
    fit_graph_to_data(project.graph, dataset)
    check_fit(project.graph, dataset)
    net = Network(project.graph, seed=config.seed)
    if args.weights:
        net.load_params(load_weights(args.weights))
    result = None
    for report in lr_range_test(net, dataset, config.optimizer, config.batch_size, args.start,
                                args.end, args.steps, config.seed, config.momentum,
                                config.weight_decay):
        if isinstance(report, LRRange):
            result = report
        elif report.step % max(1, report.steps // 20) == 0:
            print(f"lr {report.lr:10.3g}  loss {report.loss:10.4g}  smoothed "
                  f"{report.smoothed:10.4g}", flush=True)
    if result.stopped_early:
        print(f"the loss exploded at lr {result.lrs[-1]:.3g}: stopped there", file=sys.stderr)
    if result.suggestion is None:
        print(f"no suggestion: the loss did not fall between {args.start:g} and {args.end:g}")
        return 1
    print(f"suggested learning rate: {result.suggestion:.3g} ({config.optimizer}; "
          f"the file has {config.lr:g})")
    return 0
