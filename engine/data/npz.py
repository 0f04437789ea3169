"""NumPy ``.npz`` data sets: ``x``/``y``, or ``x_train``/``y_train`` with optional ``x_test``/``y_test``.

Loaded with ``allow_pickle=False``: an archive holding Python objects is refused, never unpickled.
uint8 arrays are taken as 0..255 images and scaled to [0, 1]; N×H×W images gain a channel axis.
Integer labels make a classification set, real-valued targets a regression set. An optional
``class_names`` array of strings names the classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset, Split, class_ids, holdout, split_off
from layerloom.engine.npzfile import read_npz

KEY_SETS = "x and y, or x_train and y_train (with optional x_test and y_test)"


def _read(path: Path) -> dict:
    return read_npz(path, DataError, text_keys=("class_names",))


def features(x: np.ndarray, where: str) -> np.ndarray:
    """Samples to float32: uint8 -> [0, 1]; N×H×W images -> N×1×H×W."""
    if x.ndim < 2:
        raise DataError(f"{where}: expected one row per sample (N×features or N×H×W), "
                        f"got shape {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255)
        return x[:, None] if x.ndim == 3 else x
    if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
        raise DataError(f"{where}: samples must be numbers, got {x.dtype}")
    return finite(x.astype(np.float32), where)


def finite(values: np.ndarray, where: str) -> np.ndarray:
    """``values`` (float32) when every one is finite: a NaN, or a float64 beyond float32's range,
    would only show up later as a NaN in training, blamed on the learning rate."""
    bad = ~np.isfinite(values)
    if bad.any():
        sample = int(np.argwhere(bad)[0][0])
        raise DataError(f"{where}: sample {sample} holds a NaN or infinite value (or one beyond "
                        f"float32's range)")
    return values


def targets(y: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """(labels, task): integers -> int64 classes; real numbers -> float32 regression targets."""
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        y = y.astype(np.int64)
        if y.size and y.min() < 0:
            raise DataError(f"{where}: class labels must be >= 0, found {y.min()}")
        return y, "classification"
    if np.issubdtype(y.dtype, np.floating):
        y = finite(y.astype(np.float32), where)
        return (y[:, None] if y.ndim == 1 else y), "regression"
    raise DataError(f"{where}: labels must be numbers, got {y.dtype}")


def _pair(arrays: dict, xk: str, yk: str, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    x, (y, task) = features(arrays[xk], f"{path}: {xk}"), targets(arrays[yk], f"{path}: {yk}")
    if len(x) != len(y):
        raise DataError(f"{path}: {xk} has {len(x)} samples but {yk} has {len(y)}")
    return x, y, task


def _classes(arrays: dict, splits: list[Split], path: Path) -> list[str]:
    """Class names for the labels of all splits (relabelled together when they are sparse)."""
    ys, names = class_ids([s.y for s in splits], str(path))
    for split, y in zip(splits, ys):
        split.y = y
    if "class_names" not in arrays:
        return names
    given = arrays["class_names"]
    if given.dtype.kind not in "US" or given.ndim != 1:
        raise DataError(f"{path}: class_names must be a 1-D array of strings, got {given.dtype}")
    if names != [str(i) for i in range(len(names))]:
        raise DataError(f"{path}: class_names name labels 0, 1, 2, …; these labels go up to "
                        f"{names[-1]}")
    if len(given) < len(names):
        raise DataError(f"{path}: class_names has {len(given)} names, the labels use "
                        f"{len(names)} classes")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
            for n in given.tolist()]


def load_npz(path: str | Path, val_fraction: float = 0.1, seed: int = 0, *,
             test_fraction: float = 0.2) -> Dataset:
    """With only ``x``/``y``, ``test_fraction`` of the samples is held out as the test split."""
    path = Path(path)
    arrays = _read(path)
    keys = set(arrays)
    if {"x_train", "y_train"} <= keys:
        x, y, task = _pair(arrays, "x_train", "y_train", path)
        train, val = split_off(x, y, val_fraction, seed)
        if {"x_test", "y_test"} <= keys:
            xt, yt, task_t = _pair(arrays, "x_test", "y_test", path)
            if task_t != task or xt.shape[1:] != x.shape[1:] or yt.shape[1:] != y.shape[1:]:
                raise DataError(f"{path}: x_test/y_test do not match x_train/y_train in shape or type")
            test = Split(xt, yt)
        elif keys & {"x_test", "y_test"}:
            raise DataError(f"{path}: has only one of x_test and y_test")
        else:
            train, val, test = holdout(x, y, val_fraction, seed, test_fraction)
    elif {"x", "y"} <= keys:
        x, y, task = _pair(arrays, "x", "y", path)
        train, val, test = holdout(x, y, val_fraction, seed, test_fraction)
    else:
        found = ", ".join(sorted(keys)) or "nothing"
        raise DataError(f"{path}: expected arrays {KEY_SETS}; found {found}")
    names = _classes(arrays, [train, val, test], path) if task == "classification" else []
    return Dataset(path.stem, train, val, test, task=task, class_names=names,
                   description=f"arrays from {path}")
