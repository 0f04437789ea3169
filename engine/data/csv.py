"""Numeric CSV data sets: one sample per row, the last column is the label or target.

A first row that does not parse as numbers is a header (its last cell names the target). Integer
labels with few distinct values make a classification set (``task=regression`` in the spec
overrides), anything else a regression set with N×1 float targets. Commas, semicolons or tabs.
"""
from __future__ import annotations

import csv
from array import array
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset, class_ids, holdout
from layerloom.engine.files import read_regular

MAX_CLASSES = 256  # more distinct integer labels than this reads as a regression target
DELIMITERS = ",;\t"
MAX_BYTES = 256 << 20  # larger tables belong in an .npz (read without parsing text)


def _numbers(row: list[str]) -> list[float] | None:
    try:
        return [float(cell) for cell in row]
    except ValueError:
        return None


def _text(path: Path) -> str:
    raw = read_regular(path, DataError, MAX_BYTES)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start} cannot be decoded)") from None


def _rows(path: Path) -> tuple[list[str] | None, np.ndarray]:
    lines = _text(path).splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    delimiter = max(DELIMITERS, key=first.count)
    header, values, width = None, array("d"), None  # 8 bytes a value, not a Python float each
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            nums = _numbers(row)
            if nums is None:
                if width is None and header is None:
                    header = [cell.strip() for cell in row]
                    width = len(row)
                    continue
                column = next(j for j, c in enumerate(row) if _numbers([c]) is None) + 1
                # never the cell itself: error messages do not quote a file's contents
                raise DataError(f"{path}: line {reader.line_num}, column {column}: not a number")
            if width is not None and len(nums) != width:
                raise DataError(f"{path}: line {reader.line_num}: has {len(nums)} columns, "
                                f"expected {width}")
            width = len(nums)
            values.extend(nums)
    except csv.Error as err:  # a cell over csv's field limit, a NUL byte, a stray quote
        raise DataError(f"{path}: line {reader.line_num}: not valid CSV ({err})") from None
    if not values:
        raise DataError(f"{path}: no rows of numbers")
    if width < 2:
        raise DataError(f"{path}: needs at least two columns (features, then the label)")
    table = np.frombuffer(values, dtype=np.float64).reshape(-1, width)
    if not np.isfinite(table).all():
        row = int(np.argwhere(~np.isfinite(table))[0][0])
        raise DataError(f"{path}: data row {row + 1} holds a NaN or infinite value")
    return header, table


def _classes(labels: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Labels 0..k-1 stay as they are; otherwise classes are the sorted distinct values."""
    (ids,), names = class_ids([labels.astype(np.int64)], where)
    return ids, names


def load_csv(path: str | Path, val_fraction: float = 0.1, seed: int = 0, *,
             task: str | None = None, test_fraction: float = 0.2) -> Dataset:
    """Read a CSV; ``task`` ("classification"/"regression") overrides the guess from the labels."""
    path = Path(path)
    if task not in (None, "classification", "regression"):
        raise DataError(f"{path}: task must be classification or regression, got {task!r}")
    header, table = _rows(path)
    x, labels = table[:, :-1].astype(np.float32), table[:, -1]
    # whole numbers a float64 holds exactly (|v| <= 2**53), so int64 holds them too
    integral = bool(np.all(labels == np.round(labels)) and np.all(np.abs(labels) <= 2.0**53))
    if task is None:
        task = ("classification" if integral and len(np.unique(labels)) <= MAX_CLASSES
                else "regression")
    if task == "classification":
        if not integral:
            raise DataError(f"{path}: classification needs integer labels in the last column")
        y, names = _classes(labels, str(path))
    else:
        y, names = labels.astype(np.float32)[:, None], []
    train, val, test = holdout(x, y, val_fraction, seed, test_fraction)
    target = f" (target {header[-1]!r})" if header else ""
    return Dataset(path.stem, train, val, test, task=task, class_names=names,
                   description=f"{len(x)} rows of {x.shape[1]} features from {path}{target}")
