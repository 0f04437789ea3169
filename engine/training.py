"""Training as a generator of frozen reports: the CLI prints them, the GUI plots them.

``train(net, data, config, control)`` yields a ``StepReport`` per mini-batch, an ``EpochReport``
after each epoch's validation, and ends with a ``DoneReport`` (test metrics) or a ``Diverged``
report (the first non-finite value, named by node; parameters rolled back to the last good step).
A loss that runs away while staying finite yields an ``Exploding`` warning and training goes on.
A ``Control`` lets another thread pause, resume or stop between steps.
"""
from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from layerloom.engine.budget import memory_budget
from layerloom.engine.data import DataError, Dataset, Split
from layerloom.engine.data.loader import BatchLoader, capped_batch
from layerloom.engine.executor import NonFiniteError
from layerloom.engine.network import Network
from layerloom.engine.optim import lr_factor, make_optimizer
from layerloom.engine.spec import LayerloomError
from layerloom.engine.threads import blas_only, engine_threads
from layerloom.engine.training_config import TrainConfig  # also imported from here by callers


@dataclass(frozen=True)
class StepReport:
    epoch: int
    step: int  # within the epoch, from 0
    global_step: int  # from 0
    steps_per_epoch: int
    total_steps: int
    loss: float
    accuracy: float | None  # of this batch; None for regression
    grad_norms: dict  # param key -> L2 norm of its gradient
    samples_per_sec: float
    elapsed: float
    histograms: dict | None = None  # key -> {"grad": (counts, edges), "weight": (counts, edges)}
    lr: float | None = None  # the learning rate this step's update used (schedules change it)
    data_wait: float = 0.0  # seconds this step waited for its batch (engine.data.loader)


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    train_loss: float
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    val_exact: float | None = None  # paired sequences: the share of targets right in full


@dataclass(frozen=True)
class DoneReport:
    steps: int
    test_loss: float | None
    test_accuracy: float | None
    confusion: np.ndarray | None  # [true, predicted] counts
    samples_per_sec: float
    stopped: bool  # True when stopped early by the Control
    regression: "RegressionFit | None" = None  # a regression run's test predictions
    test_exact: float | None = None  # paired sequences: the share of targets right in full


@dataclass(frozen=True)
class RegressionFit:
    """A regression model's test predictions against the truth (for a predicted-vs-true plot)."""

    true: np.ndarray  # N×k targets (at most MAX_POINTS of them)
    predicted: np.ndarray  # N×k
    r2: float | None  # coefficient of determination over all test targets; None when constant
    mse: float

    MAX_POINTS = 5000

    @classmethod
    def of(cls, true: np.ndarray, predicted: np.ndarray) -> "RegressionFit":
        t = np.asarray(true, np.float64).reshape(len(true), -1)
        p = np.asarray(predicted, np.float64).reshape(len(predicted), -1)
        resid, spread = ((t - p) ** 2).sum(), ((t - t.mean(axis=0)) ** 2).sum()
        r2 = float(1 - resid / spread) if spread > 0 else None
        keep = slice(0, cls.MAX_POINTS)
        return cls(t[keep], p[keep], r2, float(resid / t.size))


@dataclass(frozen=True)
class Diverged:
    global_step: int
    node_id: str
    phase: str  # "forward" or "backward" or "update"
    message: str


@dataclass(frozen=True)
class Exploding:
    """A warning: the loss is finite but running away (the learning rate, most often)."""

    global_step: int
    loss: float
    message: str


# A loss above this multiple of its first value, or rising for this many steps in a row to at
# least twice where it started, is running away (noise alone almost never rises 10 times running).
EXPLODE_FACTOR = 1e6
GROWTH_STEPS = 10


def explosion(losses: list, lr: float) -> str | None:
    """Why ``losses`` (oldest first, all finite) look like a blow-up, in one line, or None."""
    first, last = losses[0], losses[-1]
    fix = f"the learning rate ({lr:g}) is probably too high"
    if first > 0 and last > EXPLODE_FACTOR * first:
        return f"the loss is {last:.3g}, over a million times its first value {first:.3g}: {fix}"
    recent = losses[-GROWTH_STEPS - 1:]
    if (len(recent) > GROWTH_STEPS and all(a < b for a, b in zip(recent, recent[1:]))
            and recent[-1] >= 2 * recent[0] > 0):
        return (f"the loss rose for {GROWTH_STEPS} steps in a row, from {recent[0]:.3g} to "
                f"{last:.3g}: {fix}")
    return None


def check_data(data: Dataset) -> None:
    """A data set training can use, or a one-line DataError (an empty one divides by zero)."""
    if len(data.train) == 0:
        raise DataError(f"data {data.name!r} has no training samples: choose a larger data set "
                        f"or a smaller validation fraction")


class Control:
    """Thread-safe pause/resume/stop, checked by ``train`` between steps."""

    def __init__(self) -> None:
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()

    def pause(self) -> None:
        self._run.clear()

    def resume(self) -> None:
        self._run.set()

    def stop(self) -> None:
        self._stop.set()
        self._run.set()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self) -> bool:
        """Block while paused; True when training should stop."""
        self._run.wait()
        return self._stop.is_set()


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


def hits(pred: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """(correct, counted) class predictions; a negative label is the loss's ignore_index (a
    padded position of paired sequences) and is not counted."""
    valid = y >= 0
    return int(((pred == y) & valid).sum()), int(valid.sum())


def exact_match(pred: np.ndarray | None, data: Dataset, split: Split) -> float | None:
    """Paired sequences: the share of samples whose every target position (up to the end token)
    is predicted right. Under teacher forcing this equals greedy decoding's exact match: while
    every step is right, the decoder is fed what teacher forcing feeds it."""
    if pred is None or (data.preprocessing or {}).get("kind") != "pairs" or not len(split):
        return None
    return float(((pred == split.y) | (split.y < 0)).all(axis=1).mean())


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


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
                right, seen = hits(p, batch.y)
                correct, counted = correct + right, counted + seen
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


def _hint(phase: str, node_type: str, losses: list, lr: float) -> str:
    if phase == "update" or (len(losses) >= 2 and losses[-1] > 2 * losses[0]) or lr >= 0.5:
        return f"the learning rate ({lr:g}) is probably too high"
    if node_type in ("CrossEntropyLoss", "Log", "Softmax"):
        return "likely a log of zero or an overflow in the exponent"
    return "likely an overflow: lower the learning rate or add normalisation"


def _restore(net, saved: dict) -> None:
    for k, v in saved.items():
        np.copyto(net.params[k], v)


def train(net: Network, data: Dataset, config: TrainConfig,
          control: Control | None = None) -> Iterator:
    """Train ``net`` in place; see the module docstring for what it yields.

    Runs under ``engine_threads``: numba's kernels on the configured cores, the BLAS on one (or
    the BLAS on the cores when no layer of the graph has numba-parallel kernels).
    """
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
            norms = {k: float(np.sqrt(np.vdot(grads[k], grads[k]))) for k in keys}
            for k, v in net.params.items():
                np.copyto(last_good[k], v)
            opt.lr = config.lr * lr_factor(config.schedule, gstep / total)
            with np.errstate(all="ignore"):  # an overflow is found and named just below
                opt.step(net.params, grads)
                bad = next((k for k in keys if not np.isfinite(net.params[k].sum())), None)
            if bad is not None:
                _restore(net, last_good)
                node = bad.split(".")[0]
                yield Diverged(gstep, node, "update", f"the update made {bad!r} non-finite: "
                               f"{_hint('update', '', losses, config.lr)}")
                return
            acc = None
            if binding.logits_ref is not None:
                pred = net.executor.values[binding.logits_ref].argmax(axis=-1)
                right, counted = hits(pred, y)
                acc = right / max(counted, 1)
                ep_correct, ep_counted = ep_correct + right, ep_counted + counted
            seen += len(idx)
            ep_loss += loss * len(idx)
            ep_n += len(idx)
            losses.append(loss)
            hist = None
            if config.histogram_every and gstep % config.histogram_every == 0:
                hist = {k: {"grad": np.histogram(grads[k], bins=30),
                            "weight": np.histogram(net.params[k], bins=30)} for k in keys}
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
        inside = (preds >= 0) & (preds < k)
        np.add.at(confusion, (data.test.y[inside], preds[inside]), 1)
    fit = None
    if preds is not None and binding.logits_ref is None and data.task == "regression":
        fit = RegressionFit.of(data.test.y, preds)
    return DoneReport(steps, test_loss, test_acc, confusion, rate, stopped, fit,
                      exact_match(preds, data, data.test))
