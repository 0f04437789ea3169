"""A classifier's decision regions over a 2-D input, as TensorFlow Playground draws them.

For data whose samples are two numbers (spirals, moons, circles, xor, a two-column CSV) the
window shows, while the network trains, which class it gives every point of the plane. ``Grid``
lays an n × n grid over the data with a margin; ``class_map`` gives the class probabilities at
any points, in inference mode. The GUI's worker calls it between training steps on a probe
network whose parameters it refreshes in place. It never runs the training network itself:
that network's saved activations are what its next backward pass reads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerloom.engine.data import Dataset
from layerloom.engine.network import Network
from layerloom.engine.training import Binding

CELLS = 64  # per side: 4,096 points, well under a millisecond for the small nets 2-D data gets


@dataclass(frozen=True)
class Grid:
    """Cell centres, row by row from the bottom (y) and left (x), and the area they cover."""

    points: np.ndarray  # (n·n, 2) float32
    extent: tuple  # (x0, x1, y0, y1)
    n: int


@dataclass(frozen=True)
class BoundaryMap:
    """The class probabilities over a grid: ``probs[row, col, class]``, rows from the bottom."""

    extent: tuple  # (x0, x1, y0, y1)
    probs: np.ndarray  # (n, n, classes)


def two_features(dataset: Dataset | None) -> bool:
    """Samples of two numbers with class labels: data whose decision regions can be drawn."""
    return (dataset is not None and dataset.task == "classification"
            and dataset.sample_shape == (2,))


def applies(dataset: Dataset | None, binding: Binding | None) -> bool:
    """Two-feature classification data, and class scores to read."""
    return two_features(dataset) and binding is not None and binding.logits_ref is not None


def make_grid(x: np.ndarray, n: int = CELLS, margin: float = 0.1) -> Grid:
    """An n × n grid over the samples ``x`` (N × 2), widened by ``margin`` of their span."""
    low, high = x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)
    pad = np.maximum((high - low) * margin, 1e-3)
    low, high = low - pad, high + pad
    step = (high - low) / n
    xs = low[0] + step[0] * (np.arange(n) + 0.5)
    ys = low[1] + step[1] * (np.arange(n) + 0.5)
    gx, gy = np.meshgrid(xs, ys)  # rows: y, columns: x
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    return Grid(points, (low[0], high[0], low[1], high[1]), n)


def boundary_map(net: Network, binding: Binding, grid: Grid) -> BoundaryMap:
    return BoundaryMap(grid.extent, class_map(net, binding, grid.points).reshape(grid.n, grid.n,
                                                                                -1))


def class_map(net: Network, binding: Binding, points: np.ndarray) -> np.ndarray:
    """Class probabilities (N × classes) at ``points`` (N × 2), in inference mode."""
    feeds = {binding.input_id: points}
    if binding.label_id is not None:  # the loss needs labels; any valid class will do
        feeds[binding.label_id] = np.zeros(len(points), dtype=np.int64)
    net.forward(feeds, check=False)
    scores = np.asarray(net.executor.values[binding.logits_ref], dtype=np.float64)
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)
