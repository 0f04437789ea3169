"""What training yields and how it is steered: the frozen reports ``engine.training.train`` (and
``engine.objective``'s data-free runs) give their consumers, the thread-safe ``Control`` and the
shared rules for a run that blows up. Apart from ``training`` so both runs share them without
importing each other.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


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
    # a data-free run's scalar variables: key -> (value the gradient was taken at, gradient)
    variables: dict | None = None


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


def divergence_hint(phase: str, node_type: str, losses: list, lr: float) -> str:
    if phase == "update" or (len(losses) >= 2 and losses[-1] > 2 * losses[0]) or lr >= 0.5:
        return f"the learning rate ({lr:g}) is probably too high"
    if node_type in ("CrossEntropyLoss", "Log", "Softmax"):
        return "likely a log of zero or an overflow in the exponent"
    return "likely an overflow: lower the learning rate or add normalisation"


def restore_params(net, saved: dict) -> None:
    for k, v in saved.items():
        np.copyto(net.params[k], v)
