"""Training without data: a graph whose only sources are Parameter nodes minimises its objective.

The founding example, ``f(x, y, z) = 2x² + y³ + z`` with x, y, z as Parameters, has nothing to
read from a data set: each step is one forward pass (f at the current variables), one backward
pass (∇f) and one update ``θ ← θ − γ∇θ f``. An "epoch" of such a graph is that one step, so the
training section's ``epochs`` counts the steps (``max_steps``, when set, counts them instead). Every step report carries the
scalar variables' values and gradients, so the window can plot the walk downhill and write the
update out with the real γ.
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from layerloom.engine.executor import NonFiniteError
from layerloom.engine.graph import Graph
from layerloom.engine.network import Network
from layerloom.engine.optim import lr_factor, make_optimizer, update_kept
from layerloom.engine.train_reports import (Control, Diverged, DoneReport, EpochReport,
                                            Exploding, StepReport, divergence_hint, explosion,
                                            restore_params)
from layerloom.engine.training_config import TrainConfig

NO_DATA_NEEDED = ("✓ No data is needed: this graph's Parameter nodes are its variables and its "
                  "Objective is what training minimises. Train runs without a data set, each "
                  "step one forward pass, one backward pass and one update θ ← θ − γ∇θ f.")
DATA_SPEC = "none (the graph's own Parameters)"  # what a run store records as a run's data
MAX_VARIABLES = 16  # scalar variables reported (and plotted) per step; more are not a lesson

UPDATE_RULES = {
    "sgd": "θ ← θ − γ·∇<sub>θ</sub>f(θ)",
    "momentum": "v ← μ·v + ∇<sub>θ</sub>f(θ);  θ ← θ − γ·v",
    "adam": "m ← β<sub>1</sub>m + (1−β<sub>1</sub>)∇f;  v ← β<sub>2</sub>v + (1−β<sub>2</sub>)"
            "(∇f)<sup>2</sup>;  θ ← θ − γ·m̂ / (√v̂ + ε)",
    "adamw": "θ ← θ − γ·(m̂ / (√v̂ + ε) + λθ), with Adam's m and v",
}


def update_rule(optimizer: str) -> str:
    """The optimizer's update in the seed's notation (Qt rich text)."""
    return UPDATE_RULES.get(optimizer, UPDATE_RULES["sgd"])


def graph_needs_no_data(graph: Graph) -> bool:
    """True for a graph with a loss and no Input or Label: it trains on its Parameters alone."""
    nodes = list(graph.nodes)
    return (any(graph.layer(n).is_loss for n in nodes)
            and not any(graph.layer(n).is_source for n in nodes))


def needs_no_data(net: Network) -> bool:
    """As ``graph_needs_no_data``, on the compiled plan (blocks flattened)."""
    return bool(net.plan.losses) and not net.plan.sources


def run_steps(config: TrainConfig) -> int:
    """How many steps a data-free run makes: ``max_steps`` when set, else ``epochs``."""
    return config.epochs if config.max_steps is None else config.max_steps


def scalar_variables(net: Network) -> tuple:
    """The trainable parameters holding one number each (the founding example's x, y, z)."""
    return tuple(k for k in net.trainable_keys if net.params[k].size == 1)[:MAX_VARIABLES]


def train_objective(net: Network, config: TrainConfig,
                    control: Control | None = None) -> Iterator:
    """Minimise the graph's loss over its parameters, one update per step; reports as ``train``.

    Each ``StepReport.variables`` maps every scalar variable's key to (its value where the
    gradient was taken, that gradient): the update the step made is ``value − lr·gradient`` for
    plain SGD.
    """
    control = control or Control()
    opt = make_optimizer(config.optimizer, config.lr, config.momentum, config.weight_decay)
    net.rng = np.random.default_rng(config.seed + 1)
    keys, scalars = net.trainable_keys, scalar_variables(net)
    total = run_steps(config)
    last_good = {k: v.copy() for k, v in net.params.items()}
    t0, losses, warned = time.perf_counter(), [], set()
    for step in range(total):
        if control.wait():
            yield _done(step, t0, stopped=True)
            return
        try:
            net.forward({}, training=True)
            loss = net.loss()
            grads = net.backward()
        except NonFiniteError as err:
            restore_params(net, last_good)
            yield Diverged(step, err.node_id, err.phase,
                           f"{err}: {divergence_hint(err.phase, err.layer_type, losses, config.lr)}")
            return
        variables = {k: (float(net.params[k].reshape(-1)[0]), float(grads[k].reshape(-1)[0]))
                     for k in scalars if k in grads}
        opt.lr = config.lr * lr_factor(config.schedule, step / total)
        norms, bad = update_kept(opt, net.params, grads, last_good, keys)
        if bad is not None:
            restore_params(net, last_good)
            yield Diverged(step, bad.split(".")[0], "update", f"the update made {bad!r} "
                           f"non-finite: {divergence_hint('update', '', losses, config.lr)}")
            return
        losses.append(loss)
        elapsed = time.perf_counter() - t0
        yield StepReport(step, 0, step, 1, total, loss, None, norms, (step + 1) / max(elapsed, 1e-9),
                         elapsed, None, opt.lr, 0.0, variables)
        why = explosion(losses, config.lr)
        if why is not None and why[:12] not in warned:
            warned.add(why[:12])
            yield Exploding(step, loss, why)
        yield EpochReport(step, loss, None, None, None)
    yield _done(total, t0, stopped=False)


def _done(steps: int, t0: float, stopped: bool) -> DoneReport:
    rate = steps / max(time.perf_counter() - t0, 1e-9)
    return DoneReport(steps, None, None, None, rate, stopped)
