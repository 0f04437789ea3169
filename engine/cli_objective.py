"""``layerloom train GRAPH`` for a graph that needs no data (Parameters and an Objective).

``cli.cmd_train`` hands such a graph here: no data section is read, every step is printed with f
and the scalar variables (a short run is the lesson: the walk downhill, number by number), and the
end says where the variables arrived. ``--save-weights``, ``--metrics-json`` and the run store
work as for any run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from layerloom.engine.serialize import atomic_write_bytes
from layerloom.engine.network import Network
from layerloom.engine.objective import DATA_SPEC, run_steps, scalar_variables, update_rule
from layerloom.engine.spec import LayerloomError

PRINT_EVERY_STEP = 200  # runs up to this long print every step; longer ones every tenth


def _plain(rule: str) -> str:
    """The rich-text update rule as terminal text."""
    for tag, repl in (("<sub>", "_"), ("</sub>", ""), ("<sup>", "^"), ("</sup>", "")):
        rule = rule.replace(tag, repl)
    return rule


def _variables(report) -> str:
    out = []
    for key, (value, grad) in (report.variables or {}).items():
        name = key.removesuffix(".value")
        out.append(f"{name} = {value:.6g} (∂f/∂{name} = {grad:.6g})")
    return ", ".join(out)


def cmd_train_objective(args: argparse.Namespace, project, config, where: str) -> int:
    from layerloom.engine import cli_runs
    from layerloom.engine.export.weights import check_weights_path, save_weights
    from layerloom.engine.run_recorder import recorded
    from layerloom.engine.training import Diverged, DoneReport, StepReport, train

    if args.data:
        raise LayerloomError(f"{where} has no Input or Label: it trains without data, drop --data")
    if args.save_weights:
        check_weights_path(args.save_weights)
    net = Network(project.graph, seed=config.seed, batch_size=1)
    steps = run_steps(config)
    names = ", ".join(k.removesuffix(".value") for k in scalar_variables(net)) or "its parameters"
    print(f"training {where} without data: minimising its objective over {names}; "
          f"{config.optimizer} lr {config.lr:g}, {steps} steps, update {_plain(update_rule(config.optimizer))}",
          file=sys.stderr, flush=True)
    recorder = cli_runs.recorder_from_args(args, project, DATA_SPEC, config)
    metrics = {"step_losses": [], "variables": [], "steps": 0, "diverged": None}
    every = 1 if steps <= PRINT_EVERY_STEP else max(1, steps // 10)
    t0 = time.perf_counter()
    for r in recorded(train(net, None, config), recorder):
        if isinstance(r, StepReport):
            metrics["step_losses"].append(r.loss)
            metrics["variables"].append({k: v for k, (v, _g) in (r.variables or {}).items()})
            if r.global_step % every == 0 or r.global_step + 1 == steps:
                print(f"step {r.global_step + 1}/{steps}: f = {r.loss:.6g}; {_variables(r)}",
                      flush=True)
        elif isinstance(r, DoneReport):
            metrics["steps"] = r.steps
        elif isinstance(r, Diverged):
            metrics["diverged"] = {"step": r.global_step, "node": r.node_id, "message": r.message}
    net.forward({})
    final = net.loss()
    ends = ", ".join(f"{k.removesuffix('.value')} = {float(net.params[k].reshape(-1)[0]):.6g}"
                     for k in scalar_variables(net))
    print(f"f = {final:.6g} after {metrics['steps']:,} steps ({time.perf_counter() - t0:.1f} s)"
          + (f"; {ends}" if ends else ""), flush=True)
    metrics["final_loss"] = final
    if args.save_weights:
        save_weights(net.params, args.save_weights)
        print(f"weights written to {args.save_weights}", file=sys.stderr)
    if args.metrics_json:
        out = {"graph": str(args.graph), "data": DATA_SPEC, "config": config.to_dict(), **metrics}
        try:
            atomic_write_bytes(args.metrics_json, (json.dumps(out, indent=1) + "\n").encode())
        except OSError as err:
            raise LayerloomError(f"{args.metrics_json}: cannot write metrics "
                                 f"({err.strerror or err})") from None
    if metrics["diverged"] is not None:
        d = metrics["diverged"]
        print(f"error: training diverged at step {d['step'] + 1}: {d['message']}", file=sys.stderr)
        return 1
    return 0
