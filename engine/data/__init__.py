"""Data sets: every reader returns a ``Dataset`` of train/validation/test splits as numpy arrays.

``load_data(spec)`` takes the spec strings the CLI and project files use: ``bundled``,
``idx:DIR``, ``npz:FILE``, ``csv:FILE``, or a synthetic set name (``spirals``, ``moons``,
``circles``, ``xor``). Images are float32 in [0, 1] shaped (N, C, H, W); class labels int64.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.spec import LayerloomError


class DataError(LayerloomError):
    """A data source that cannot be read or does not fit (truncated file, bad header, ...)."""


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        return f"Split(x={self.x.shape} {self.x.dtype}, y={self.y.shape} {self.y.dtype})"


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    task: str = "classification"  # or "regression"
    class_names: list = field(default_factory=list)
    description: str = ""

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.train.x.shape[1:])

    @property
    def target_shape(self) -> tuple:
        return tuple(self.train.y.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.train)}, val={len(self.val)}, "
                f"test={len(self.test)}, sample={self.sample_shape}, {self.task})")


def split_off(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[Split, Split]:
    """Shuffle once with ``seed`` and hold out ``fraction`` of the samples."""
    if not 0 <= fraction < 1:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_hold = int(round(len(x) * fraction))
    hold, keep = order[:n_hold], order[n_hold:]
    return Split(x[keep], y[keep]), Split(x[hold], y[hold])
