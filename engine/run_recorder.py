"""The one writer of runs, shared by the CLI and the window: ``RunRecorder`` consumes
``engine.training.train``'s reports and writes them to the run store in batches (one transaction
per batch of steps), and ``recorded`` passes a report stream through it so that a run that ends
without its final report (an exception, Ctrl-C) is still closed with how it ended.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from layerloom.engine.runs import RunMeta, RunStore
from layerloom.engine.spec import LayerloomError


@dataclass
class RunRecorder:
    """Consumes ``engine.training.train``'s reports and writes them in batches: the one writer
    shared by the CLI and the window (each opens its own store, in the thread that records)."""

    store: RunStore
    meta: RunMeta
    flush_steps: int = 50
    flush_seconds: float = 2.0
    run_id: int = 0
    _steps: list = field(default_factory=list)
    _epochs: list = field(default_factory=list)
    _norms: dict = field(default_factory=dict)
    _last_flush: float = 0.0
    _done: bool = False

    def __post_init__(self) -> None:
        self.run_id = self.store.begin_run(self.meta)
        self._last_flush = time.monotonic()

    def consume(self, report) -> None:
        from layerloom.engine.training import Diverged, DoneReport, EpochReport, StepReport

        if isinstance(report, StepReport):
            self._steps.append((report.global_step, report.epoch, report.loss, report.accuracy,
                                report.lr))
            for key, norm in report.grad_norms.items():
                count, mean, high, _ = self._norms.get(key, (0, 0.0, 0.0, 0.0))
                self._norms[key] = (count + 1, mean + (norm - mean) / (count + 1),
                                    max(high, norm), norm)
            if (len(self._steps) >= self.flush_steps
                    or time.monotonic() - self._last_flush >= self.flush_seconds):
                self.flush()
        elif isinstance(report, EpochReport):
            self._epochs.append((report.epoch, report.train_loss, report.train_accuracy,
                                 report.val_loss, report.val_accuracy))
            self.flush()
        elif isinstance(report, DoneReport):
            self.finish("stopped" if report.stopped else "finished",
                        "stopped before the last step" if report.stopped else None,
                        report.test_loss, report.test_accuracy)
        elif isinstance(report, Diverged):
            self.finish("diverged", f"diverged at node {report.node_id} ({report.phase}, step "
                        f"{report.global_step + 1}): {report.message}")

    def flush(self) -> None:
        self.store.write_batch(self.run_id, self._steps, self._epochs, self._norms)
        self._steps, self._epochs = [], []
        self._last_flush = time.monotonic()

    def finish(self, status: str, reason: str | None = None, test_loss: float | None = None,
               test_accuracy: float | None = None) -> None:
        if self._done:
            return
        self.flush()
        self.store.end_run(self.run_id, status, reason, test_loss, test_accuracy)
        self._done = True

    @property
    def done(self) -> bool:
        return self._done


def recorded(reports: Iterable, recorder: RunRecorder | None) -> Iterator:
    """Pass ``reports`` through unchanged while ``recorder`` writes them; a run that ends
    without a final report (an exception, Ctrl-C, the consumer stopping) is closed as failed or
    stopped, so only a killed process leaves a run "running" (then marked "interrupted")."""
    if recorder is None:
        yield from reports
        return
    try:
        for report in reports:
            recorder.consume(report)
            yield report
    except (KeyboardInterrupt, GeneratorExit):
        recorder.finish("stopped", "interrupted by the person")
        raise
    except BaseException as err:
        recorder.finish("failed", str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise
    finally:
        if not recorder.done:
            recorder.finish("stopped", "the run ended before its last report")


def open_store_or_warn(path: str | os.PathLike | None, warn: Callable[[str], None]) -> RunStore | None:
    """A run that cannot be recorded still trains: the problem is said once, in one line."""
    try:
        return RunStore(path)
    except LayerloomError as err:
        warn(f"runs are not recorded: {err}")
        return None
