"""Training as a generator of frozen reports: the CLI prints them, the GUI plots them.

``train(net, data, config, control)`` yields a ``StepReport`` per mini-batch, an ``EpochReport``
after each epoch's validation, and ends with a ``DoneReport`` (test metrics) or a ``Diverged``
report (the first non-finite value, named by node; parameters rolled back to the last good step).
A loss that runs away while staying finite yields an ``Exploding`` warning and training goes on.
A ``Control`` lets another thread pause, resume or stop between steps.
"""
from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from layerloom.engine.budget import memory_budget
from layerloom.engine.data import DataError, Dataset, Split
from layerloom.engine.data.loader import BatchLoader, capped_batch
from layerloom.engine.executor import NonFiniteError
from layerloom.engine.kernels.histogram import histogram
from layerloom.engine.network import Network
from layerloom.engine.objective import needs_no_data, train_objective
from layerloom.engine.optim import lr_factor, make_optimizer, update_kept
from layerloom.engine.spec import LayerloomError
from layerloom.engine.threads import blas_only, engine_threads
from layerloom.engine.train_reports import (  # noqa: F401 (callers import them from here)
    EXPLODE_FACTOR, GROWTH_STEPS, Control, Diverged, DoneReport, EpochReport, Exploding,
    RegressionFit, StepReport, explosion)
from layerloom.engine.train_reports import divergence_hint as _hint
from layerloom.engine.train_reports import restore_params as _restore
from layerloom.engine.training_config import TrainConfig  # also imported from here by callers


def check_data(data: Dataset) -> None:
    """A data set training can use, or a one-line DataError (an empty one divides by zero)."""
    if len(data.train) == 0:
        raise DataError(f"data {data.name!r} has no training samples: choose a larger data set "
                        f"or a smaller validation fraction")


@dataclass
class Binding:
    """Which source node gets the samples and which the targets, and where accuracy is read."""

    input_id: str
    label_id: str | None  # None: a graph without a Label, bound for predictions only
    logits_ref: tuple | None  # the port feeding CrossEntropyLoss's input, for accuracy
    values_ref: tuple | None = None  # the port feeding MSELoss's input: regression predictions


def bind(net: Network) -> Binding:
    steps = {s.node_id: s for s in net.plan.steps}
    inputs = [n for n in net.plan.sources if steps[n].layer.type_id == "Input"]
    labels = [n for n in net.plan.sources if steps[n].layer.type_id == "Label"]
    if len(inputs) != 1 or len(labels) != 1:
        raise LayerloomError(f"training needs exactly one Input and one Label node, "
                             f"found {len(inputs)} and {len(labels)}")
    if not net.plan.losses:
        raise LayerloomError("the graph has no loss node: add CrossEntropyLoss or MSELoss")
    fed = {t: [n for n in net.plan.losses if steps[n].layer.type_id == t
               and steps[n].inputs[1] == (labels[0], "y")] for t in ("CrossEntropyLoss", "MSELoss")}
    ce, mse = fed["CrossEntropyLoss"], fed["MSELoss"]
    return Binding(inputs[0], labels[0], steps[ce[0]].inputs[0] if ce else None,
                   steps[mse[0]].inputs[0] if mse else None)


def bind_for_predictions(net: Network) -> Binding:
    """As ``bind``; for a graph that cannot train yet (no Label or no loss, as an imported model
    comes): its one Input, no label, and its first output as the class scores."""
    try:
        return bind(net)
    except LayerloomError:
        pass
    from layerloom.engine.export.outputs import model_outputs

    inputs = [n for n in net.plan.sources if net.plan.step(n).layer.type_id == "Input"]
    if len(inputs) != 1:
        raise LayerloomError(f"predictions need exactly one Input node, found {len(inputs)}")
    outputs = model_outputs(net.plan)
    return Binding(inputs[0], None, outputs[0] if outputs else None)


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def scored(pred: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """(right, counted) predictions: a negative target is a position the loss ignores
    (``ignore_index``: padding, an unmasked token of a masked-LM), so it counts neither way."""
    counted = y >= 0
    return int(((pred == y) & counted).sum()), int(counted.sum())


def exact_match(pred: np.ndarray | None, data: Dataset, split: Split) -> float | None:
    """Paired sequences: the share of samples whose every target position (up to the end token)
    is predicted right. Under teacher forcing this equals greedy decoding's exact match: while
    every step is right, the decoder is fed what teacher forcing feeds it."""
    if pred is None or (data.preprocessing or {}).get("kind") != "pairs" or not len(split):
        return None
    return float(((pred == split.y) | (split.y < 0)).all(axis=1).mean())


def evaluate(net: Network, split: Split, batch_size: int = 256, binding: Binding | None = None):
    """(mean loss, accuracy or None, predictions or None) over a split, in inference mode; the
    predictions are classes for a classifier, values for a regression model (MSELoss)."""
    binding = binding or bind(net)
    if len(split) == 0:
        return None, None, None
    # the budget was checked at the training batch: a larger one here must still fit it
    batch_size = max(1, min(batch_size, memory_budget() // max(net.plan.sample_bytes, 1)))
    total, correct, counted, preds = 0.0, 0, 0, []
    with BatchLoader(split, np.arange(len(split)), capped_batch(split, batch_size)) as loader:
        for batch in loader:
            net.forward({binding.input_id: batch.x, binding.label_id: batch.y})
            total += net.loss() * len(batch.index)
            if binding.logits_ref is not None:
                p = net.executor.values[binding.logits_ref].argmax(axis=-1)
                preds.append(p)
                hits, n = scored(p, batch.y)
                correct, counted = correct + hits, counted + n
            elif binding.values_ref is not None:
                preds.append(np.array(net.executor.values[binding.values_ref]))
    acc = correct / max(counted, 1) if binding.logits_ref is not None else None
    return total / len(split), acc, (np.concatenate(preds) if preds else None)


def _bad_samples(net: Network, binding: Binding, node_id: str, idx, x, y) -> str | None:
    """When the first non-finite value is in the data itself: which samples, as a hint that
    blames the data (not the learning rate); None for any other node."""
    if node_id not in (binding.input_id, binding.label_id):
        return None
    arr = np.asarray(x if node_id == binding.input_id else y, dtype=np.float64)
    rows = idx[~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)] if arr.size else idx[:0]
    which = ", ".join(str(int(r)) for r in sorted(rows)[:5]) + (", …" if len(rows) > 5 else "")
    return (f"the data holds NaN or inf (training sample{'s' if len(rows) != 1 else ''} "
            f"{which}): bad data, not the learning rate; clean or drop those samples")


def train(net: Network, data: Dataset | None, config: TrainConfig,
          control: Control | None = None) -> Iterator:
    """Train ``net`` in place; see the module docstring for what it yields.

    Runs under ``engine_threads``: numba's kernels on the configured cores, the BLAS on one (or
    the BLAS on the cores when no layer of the graph has numba-parallel kernels). A graph with a
    loss and no Input or Label needs no ``data``: ``engine.objective`` trains it, a step each.
    """
    if needs_no_data(net):
        yield from train_objective(net, config, control)
        return
    if data is None:
        raise DataError("training this graph needs a data set: choose one in the Data panel")
    blas = blas_only(s.layer for s in net.plan.steps)
    # the loaders' threads end with the run, however it ends (a consumer may just drop it)
    with engine_threads(blas), ExitStack() as loaders:
        yield from _train(net, data, config, control, loaders)


def _train(net: Network, data: Dataset, config: TrainConfig, control: Control | None,
           loaders: ExitStack) -> Iterator:
    check_data(data)
    binding, control = bind(net), control or Control()
    opt = make_optimizer(config.optimizer, config.lr, config.momentum, config.weight_decay)
    rng = np.random.default_rng(config.seed)
    net.rng = np.random.default_rng(config.seed + 1)  # dropout masks, reproducible per run
    keys = net.trainable_keys
    steps_per_epoch = -(-len(data.train) // config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    # Every parameter and buffer as it was before the latest update: what a diverged run keeps.
    last_good = {k: v.copy() for k, v in net.params.items()}
    t0, seen, gstep, losses, warned = time.perf_counter(), 0, 0, [], set()
    for epoch in range(config.epochs):
        ep_loss, ep_correct, ep_n, ep_counted = 0.0, 0, 0, 0
        # the order batches(n, batch_size, rng) gives; augmentation only for the training split
        loader = loaders.enter_context(BatchLoader(
            data.train, rng.permutation(len(data.train)), config.batch_size,
            data.augment, seed=config.seed, epoch=epoch))
        for i, batch in enumerate(loader):
            if gstep >= total or control.wait():
                yield _done(net, data, binding, gstep, seen, t0, stopped=gstep < total)
                return
            idx, x, y = batch.index, batch.x, batch.y
            try:
                net.forward({binding.input_id: x, binding.label_id: y}, training=True)
                loss = net.loss()
                grads = net.backward()
            except NonFiniteError as err:
                # The weights that just went non-finite (or overflowed) are not "good": roll back
                # to those before the update that led here, as the update check below does.
                _restore(net, last_good)
                hint = (_bad_samples(net, binding, err.node_id, idx, x, y)
                        or _hint(err.phase, err.layer_type, losses, config.lr))
                yield Diverged(gstep, err.node_id, err.phase, f"{err}: {hint}")
                return
            opt.lr = config.lr * lr_factor(config.schedule, gstep / total)
            norms, bad = update_kept(opt, net.params, grads, last_good, keys)
            if bad is not None:
                _restore(net, last_good)
                node = bad.split(".")[0]
                yield Diverged(gstep, node, "update", f"the update made {bad!r} non-finite: "
                               f"{_hint('update', '', losses, config.lr)}")
                return
            acc = None
            if binding.logits_ref is not None:
                pred = net.executor.values[binding.logits_ref].argmax(axis=-1)
                hits, counted = scored(pred, y)
                acc = hits / max(counted, 1)
                ep_correct, ep_counted = ep_correct + hits, ep_counted + counted
            seen += len(idx)
            ep_loss += loss * len(idx)
            ep_n += len(idx)
            losses.append(loss)
            hist = None
            if config.histogram_every and gstep % config.histogram_every == 0:
                hist = {k: {"grad": histogram(grads[k], 30), "weight": histogram(net.params[k], 30)}
                        for k in keys}
            elapsed = time.perf_counter() - t0
            yield StepReport(epoch, i, gstep, steps_per_epoch, total, loss, acc, norms,
                             seen / max(elapsed, 1e-9), elapsed, hist, opt.lr, batch.waited)
            why = explosion(losses, config.lr)
            if why is not None and why[:12] not in warned:  # once per kind of warning
                warned.add(why[:12])
                yield Exploding(gstep, loss, why)
            gstep += 1
        val_loss, val_acc, val_preds = evaluate(net, data.val, binding=binding)
        train_acc = ep_correct / max(ep_counted, 1) if binding.logits_ref else None
        yield EpochReport(epoch, ep_loss / max(ep_n, 1), train_acc, val_loss, val_acc,
                          exact_match(val_preds, data, data.val))
    yield _done(net, data, binding, gstep, seen, t0, stopped=False)


def _done(net, data, binding, steps, seen, t0, stopped) -> DoneReport:
    rate = seen / max(time.perf_counter() - t0, 1e-9)
    test_loss, test_acc, preds = evaluate(net, data.test, binding=binding)
    confusion = None
    if preds is not None and data.class_names and data.test.y.ndim == 1:
        k = len(data.class_names)
        confusion = np.zeros((k, k), dtype=np.int64)
        # a head wider than the class count can predict a class the data does not have: such a
        # prediction is wrong (the accuracy counts it so) and has no column to go in
        inside = (preds >= 0) & (preds < k) & (data.test.y >= 0)  # < 0: an ignored target
        np.add.at(confusion, (data.test.y[inside], preds[inside]), 1)
    fit = None
    if preds is not None and binding.logits_ref is None and data.task == "regression":
        fit = RegressionFit.of(data.test.y, preds)
    return DoneReport(steps, test_loss, test_acc, confusion, rate, stopped, fit,
                      exact_match(preds, data, data.test))
