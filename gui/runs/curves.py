"""Ticked runs overlaid: smoothed training loss per step on top, validation accuracy (or loss,
for regression) per epoch below, one colour and one legend entry per run; and, for a sweep, a
scatter of one setting against the best validation result."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QTabWidget, QVBoxLayout, QWidget

from layerloom.engine.runs import Run, RunStore
from layerloom.gui.plots.empty_hint import EmptyHint
from layerloom.gui.plots.style import legend_style, make_view, node_color, style_plot


def smoothed(values: np.ndarray, beta: float = 0.9) -> np.ndarray:
    """The bias-corrected running mean the Plots panel draws, so curves look alike."""
    out, avg = np.empty(len(values)), 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


class RunCurves(QWidget):
    """Overlay and sweep views; ``show_runs`` redraws from the store (never per step)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tabs = QTabWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.view = make_view()
        self.loss_item = self.view.addPlot(row=0, col=0)
        self.metric_item = self.view.addPlot(row=1, col=0)
        style_plot(self.loss_item, left="loss (smoothed)")
        style_plot(self.metric_item, left="validation", bottom="step")
        self.metric_item.setXLink(self.loss_item)
        self.legend = self.loss_item.addLegend(offset=(-10, 10), **legend_style())
        self.hint = EmptyHint(self.view, "Tick runs in the table to compare their curves here.")
        self.tabs.addTab(self.view, "Curves")
        self.tabs.addTab(self._build_sweep_tab(), "Sweep")
        self.curves: dict[int, tuple] = {}

    def _build_sweep_tab(self) -> QWidget:
        page = QWidget()
        bar = QHBoxLayout()
        self.sweep_box, self.setting_box = QComboBox(), QComboBox()
        self.sweep_box.setToolTip("Which sweep")
        self.setting_box.setToolTip("The setting on the horizontal axis")
        for label, box in (("Sweep", self.sweep_box), ("Setting", self.setting_box)):
            bar.addWidget(QLabel(label))
            bar.addWidget(box, 1)
        self.sweep_view = make_view()
        self.sweep_item = self.sweep_view.addPlot()
        style_plot(self.sweep_item, left="best validation", bottom="setting")
        self.scatter = pg.ScatterPlotItem(size=10)
        self.sweep_item.addItem(self.scatter)
        self.sweep_hint = EmptyHint(self.sweep_view, "Run a sweep (Sweep… above, or layerloom "
                                                     "sweep) to see each setting against its "
                                                     "result.")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.sweep_view, 1)
        self.sweep_box.currentIndexChanged.connect(lambda _i: self._draw_sweep())
        self.setting_box.currentIndexChanged.connect(lambda _i: self._draw_sweep())
        self._store: RunStore | None = None
        return page

    # ------------------------------------------------------------------ overlay
    def show_runs(self, store: RunStore, runs: list[Run]) -> None:
        self.loss_item.clear()
        self.metric_item.clear()
        self.legend.clear()
        self.curves = {}
        for i, run in enumerate(runs):
            color = node_color(str(run.id), i, max(len(runs), 6))
            steps = store.steps(run.id)
            x = np.array([s[0] for s in steps], dtype=float)
            loss = np.array([s[2] if s[2] is not None else np.nan for s in steps], dtype=float)
            label = f"#{run.id} {run.name}"
            curve = self.loss_item.plot(x, smoothed(loss) if len(loss) else loss,
                                        pen=pg.mkPen(color, width=2), name=label)
            epochs = store.epochs(run.id)
            per_epoch = max(1, run.steps // max(len(epochs), 1))
            ex = np.array([(e[0] + 1) * per_epoch for e in epochs], dtype=float)
            accuracy = [e[4] for e in epochs]
            ey = np.array([(a if a is not None else e[3]) if (a is not None or e[3] is not None)
                           else np.nan for a, e in zip(accuracy, epochs)], dtype=float)
            marks = self.metric_item.plot(ex, ey, pen=pg.mkPen(color, width=2), symbol="o",
                                          symbolSize=6, symbolBrush=color)
            self.curves[run.id] = (curve, marks)
        self.hint.setVisible(not runs)

    # ------------------------------------------------------------------ sweeps
    def set_sweeps(self, store: RunStore, sweep_ids: list[str]) -> None:
        self._store = store
        current = self.sweep_box.currentText()
        self.sweep_box.blockSignals(True)
        self.sweep_box.clear()
        self.sweep_box.addItems(sweep_ids)
        if current in sweep_ids:
            self.sweep_box.setCurrentText(current)
        elif sweep_ids:
            self.sweep_box.setCurrentIndex(len(sweep_ids) - 1)
        self.sweep_box.blockSignals(False)
        self._draw_sweep()

    def _draw_sweep(self) -> None:
        store, sweep = self._store, self.sweep_box.currentText()
        runs = store.runs(sweep_id=sweep) if store is not None and sweep else []
        varied = sorted({k for r in runs for k in r.settings
                         if len({json_key(x.settings.get(k)) for x in runs}) > 1})
        if varied != [self.setting_box.itemText(i) for i in range(self.setting_box.count())]:
            self.setting_box.blockSignals(True)
            self.setting_box.clear()
            self.setting_box.addItems(varied)
            self.setting_box.blockSignals(False)
        setting = self.setting_box.currentText()
        points = [(r.settings.get(setting), metric(r)) for r in runs]
        points = [(x, y) for x, y in points if isinstance(x, (int, float)) and y is not None]
        log = setting in ("lr", "weight_decay") and all(x > 0 for x, _ in points)
        xs = [math.log10(x) if log else x for x, _ in points]  # rates span decades
        self.scatter.setData(xs, [y for _, y in points], brush=pg.mkBrush(node_color("sweep")))
        bottom = f"log10 {setting}" if log else (setting or "setting")
        style_plot(self.sweep_item, left=metric_name(runs), bottom=bottom)
        self.sweep_hint.setVisible(not points)
        self.sweep_points = points


def json_key(value) -> str:
    return repr(value)


def metric(run: Run) -> float | None:
    """Best validation accuracy, or (regression) best validation loss."""
    return run.best_val_accuracy if run.best_val_accuracy is not None else run.best_val_loss


def metric_name(runs: list[Run]) -> str:
    return "best validation accuracy" if any(r.best_val_accuracy is not None for r in runs) \
        else "best validation loss"
