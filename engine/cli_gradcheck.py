"""``layerloom gradcheck GRAPH [--node ID …]``: every node's (or the named nodes') backward
against central finite differences, at the inputs a real batch gives it and the graph's current
weights, in float64; one line per input and parameter, and exit code 1 when any fails."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("gradcheck", help="check each node's gradients against finite "
                              "differences at real inputs")
    p.add_argument("graph", help="a layerloom-graph JSON file")
    p.add_argument("--node", action="append", metavar="ID", help="only this node (repeatable)")
    p.add_argument("--data", metavar="SPEC", help="the data whose first batch feeds the graph")
    p.add_argument("--weights", metavar="FILE", help="check at these weights (default: fresh)")
    p.add_argument("--batch", type=int, default=4, help="samples in the batch (default 4)")
    p.set_defaults(run=cmd_gradcheck)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from layerloom.engine.data.section import load_data_section
    from layerloom.engine.export.weights import load_weights
    from layerloom.engine.network import Network
    from layerloom.engine.node_check import check_nodes
    from layerloom.engine.project import check_fit, fit_graph_to_data
    from layerloom.engine.serialize import load_project
    from layerloom.engine.spec import LayerloomError
    from layerloom.engine.training import bind

    where = Path(args.graph).name
    project = load_project(args.graph)
    _, data = load_data_section(project.data, where, args.data)
    fit_graph_to_data(project.graph, data)
    check_fit(project.graph, data)
    if args.batch < 1:
        raise LayerloomError("--batch must be at least 1")
    binding = bind(Network(project.graph))
    n = min(args.batch, len(data.train))
    feeds = {binding.input_id: data.train.x[:n], binding.label_id: data.train.y[:n]}
    params = load_weights(args.weights) if args.weights else None
    checks = check_nodes(project.graph, feeds, params, args.node, seed=0)
    failed = [c for c in checks if not c.passed]
    for check in checks:
        for line in check.lines():
            print(line)
    print(f"{len(checks) - len(failed)} of {len(checks)} nodes pass"
          + (f"; failing: {', '.join(c.node_id for c in failed)}" if failed else ""))
    return 1 if failed else 0
