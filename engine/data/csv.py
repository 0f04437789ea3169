"""Numeric CSV data sets: one sample per row, the last column is the label or target.

A first row that does not parse as numbers is a header (its last cell names the target). Integer
labels with few distinct values make a classification set (``task=regression`` in the spec
overrides), anything else a regression set with N×1 float targets. Commas, semicolons or tabs.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset, holdout

MAX_CLASSES = 256  # more distinct integer labels than this reads as a regression target
DELIMITERS = ",;\t"


def _numbers(row: list[str]) -> list[float] | None:
    try:
        return [float(cell) for cell in row]
    except ValueError:
        return None


def _rows(path: Path) -> tuple[list[str] | None, np.ndarray]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read as text ({err})") from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    delimiter = max(DELIMITERS, key=first.count)
    header, values, width = None, [], None
    for lineno, row in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        nums = _numbers(row)
        if nums is None:
            if width is None and header is None:
                header = [cell.strip() for cell in row]
                width = len(row)
                continue
            bad = next(c for c in row if _numbers([c]) is None)
            raise DataError(f"{path}: line {lineno}: {bad.strip()!r} is not a number")
        if width is not None and len(nums) != width:
            raise DataError(f"{path}: line {lineno}: has {len(nums)} columns, expected {width}")
        width = len(nums)
        values.append(nums)
    if not values:
        raise DataError(f"{path}: no rows of numbers")
    if width < 2:
        raise DataError(f"{path}: needs at least two columns (features, then the label)")
    table = np.array(values, dtype=np.float64)
    if not np.isfinite(table).all():
        row = int(np.argwhere(~np.isfinite(table))[0][0])
        raise DataError(f"{path}: data row {row + 1} holds a NaN or infinite value")
    return header, table


def _classes(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Non-negative integers stay as they are; otherwise classes are the sorted distinct values."""
    ints = labels.astype(np.int64)
    if ints.min() >= 0:
        return ints, [str(i) for i in range(int(ints.max()) + 1)]
    values, index = np.unique(ints, return_inverse=True)
    return index.astype(np.int64), [str(v) for v in values]


def load_csv(path: str | Path, val_fraction: float = 0.1, seed: int = 0, *,
             task: str | None = None, test_fraction: float = 0.2) -> Dataset:
    """Read a CSV; ``task`` ("classification"/"regression") overrides the guess from the labels."""
    path = Path(path)
    if task not in (None, "classification", "regression"):
        raise DataError(f"{path}: task must be classification or regression, got {task!r}")
    header, table = _rows(path)
    x, labels = table[:, :-1].astype(np.float32), table[:, -1]
    integral = bool(np.all(labels == np.round(labels)))
    if task is None:
        task = ("classification" if integral and len(np.unique(labels)) <= MAX_CLASSES
                else "regression")
    if task == "classification":
        if not integral:
            raise DataError(f"{path}: classification needs integer labels in the last column")
        y, names = _classes(labels)
    else:
        y, names = labels.astype(np.float32)[:, None], []
    train, val, test = holdout(x, y, val_fraction, seed, test_fraction)
    target = f" (target {header[-1]!r})" if header else ""
    return Dataset(path.stem, train, val, test, task=task, class_names=names,
                   description=f"{len(x)} rows of {x.shape[1]} features from {path}{target}")
