"""CSV tables: one sample per row; a header row names the columns; the target is one column.

Options in the spec (``csv:FILE?target=price&categorical=colour,size&fill=median``):

- ``target``: the column to predict (default the last). Text targets, or whole numbers with few
  distinct values (at most 256, each seen three times on average), make a classification set
  (``task=regression|classification`` overrides).
- ``categorical``: columns to one-hot encode; columns where most cells are text are categorical
  anyway. Every other column is numeric, standardised with the training split's mean and std.
- ``ignore``: columns to leave out (an id, a free-text note).
- ``fill``: what a missing value (empty, NA, N/A, NaN, null, none, ?, -) becomes in a numeric
  column: the training split's ``mean`` (default) or ``median``, ``zero``, or ``drop`` the row.
  A categorical column gets a "(missing)" level. Rows without a target are always left out.
  The count of missing values per column is in the description.
- ``header=true|false``: whether the first row names the columns (default: guessed — it does
  when it is text above a column of numbers, or when every row is text).

Commas, semicolons or tabs. The fitted preprocessing (``engine.data.table.TablePrep``) is kept
with the data set, so the graph file stores it and ``layerloom predict`` reads rows alike.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from layerloom.engine.data import MAX_CLASSES as MAX_TARGET_CLASSES
from layerloom.engine.data import DataError, Dataset, Split, class_ids, holdout
from layerloom.engine.data.table import FILLS, Column, TablePrep, is_missing, number
from layerloom.engine.files import read_regular

MAX_CLASSES = 256  # more distinct integer labels than this reads as a regression target
MAX_LEVELS = 1000  # a categorical column with more levels is an id or free text: ignore it
DELIMITERS = ",;\t"
# Every cell is kept as a Python string while the table is fitted (~20 bytes of memory per byte of
# a numeric CSV): 64 MB of text is already ~1.3 GB. Larger tables belong in an .npz.
MAX_BYTES = 64 << 20


def _text(path: Path) -> str:
    raw = read_regular(path, DataError, MAX_BYTES)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start} cannot be decoded)") from None


def read_table(path: Path, min_columns: int = 2) -> tuple[list[list[str]], list[int]]:
    """The non-blank rows as stripped cells, with their line numbers; all rows equally wide."""
    lines = io.StringIO(_text(path), newline="")  # line by line, not a list of every line
    first = next((ln for ln in lines if ln.strip()), "")
    lines.seek(0)
    reader = csv.reader(lines, delimiter=max(DELIMITERS, key=first.count))
    rows, line_numbers, width = [], [], None
    try:
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if width is not None and len(row) != width:
                raise DataError(f"{path}: line {reader.line_num}: has {len(row)} columns, "
                                f"expected {width}")
            width = len(row)
            rows.append([cell.strip() for cell in row])
            line_numbers.append(reader.line_num)
    except csv.Error as err:  # a cell over csv's field limit, a NUL byte, a stray quote
        raise DataError(f"{path}: line {reader.line_num}: not valid CSV ({err})") from None
    if not rows:
        raise DataError(f"{path}: no rows")
    if width < min_columns:
        raise DataError(f"{path}: needs at least two columns (features, then the target)")
    return rows, line_numbers


def has_header(rows: list[list[str]]) -> bool:
    first, rest = rows[0], rows[1:]
    if any(number(c) is not None for c in first):
        return False
    if not rest:
        return True
    numeric_below = any(all(number(r[j]) is not None or is_missing(r[j]) for r in rest)
                        for j in range(len(first)))
    all_text = all(number(c) is None for r in rest for c in r)
    return numeric_below or all_text


def _names(option, header: list[str], what: str, where: str) -> list[str]:
    """``"a,b"`` (or one name) -> column names, each checked to exist."""
    if option is None or option == "":
        return []
    names = [s.strip() for s in str(option).split(",") if s.strip()]
    for name in names:
        if name not in header:
            raise DataError(f"{where}: {what} names no column {name!r} (columns: "
                            f"{', '.join(header[:12])}{'…' if len(header) > 12 else ''})")
    return names


def _kind(j: int, name: str, cells: list[str], lines: list[int], forced: bool, where: str) -> str:
    """categorical when asked, or when fewer than half the present cells are numbers; else
    numeric, and a text cell in it is an error naming its line (a typo, not a category)."""
    if forced:
        return "categorical"
    present = [(c, ln) for c, ln in zip(cells, lines) if not is_missing(c)]
    for c, ln in present:
        if number(c) is None and _is_float(c):
            raise DataError(f"{where}: line {ln}, column {j + 1}: an infinite value")
    numbers = sum(number(c) is not None for c, _ in present)
    if present and numbers * 2 < len(present):
        return "categorical"
    for c, ln in present:
        if number(c) is None:
            raise DataError(f"{where}: line {ln}, column {j + 1}: not a number (column {name!r} "
                            f"is numeric; add it to categorical= to treat it as categories)")
    return "numeric"


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _target(cells: list[str], task: str | None, where: str):
    """(y, class names, task) from the target column's cells (no missing cells left)."""
    values = [number(c) for c in cells]
    text = any(v is None for v in values)
    if text:
        if task == "regression":
            raise DataError(f"{where}: regression needs numbers in the target column")
        names = sorted(set(cells))
        if len(names) > MAX_TARGET_CLASSES:
            raise DataError(f"{where}: {len(names):,} different targets; a classification set "
                            f"has at most {MAX_TARGET_CLASSES:,} classes")
        index = {n: k for k, n in enumerate(names)}
        return np.array([index[c] for c in cells], dtype=np.int64), names, "classification"
    labels = np.array(values, dtype=np.float64)
    integral = bool(np.all(labels == np.round(labels)) and np.all(np.abs(labels) <= 2.0**53))
    if task is None:
        distinct = len(np.unique(labels))  # few whole numbers, each seen more than twice: codes
        task = ("classification" if integral and distinct <= MAX_CLASSES
                and 3 * distinct <= len(labels) else "regression")
    if task == "regression":
        if np.abs(labels).max(initial=0) > np.finfo(np.float32).max:  # would train on inf
            raise DataError(f"{where}: a target lies beyond float32's range (±3.4e38)")
        return labels.astype(np.float32)[:, None], [], task
    if not integral:
        raise DataError(f"{where}: classification needs whole numbers or names in the target column")
    (ids,), names = class_ids([labels.astype(np.int64)], where)
    return ids, names, task


def _check(where: str, task, fill, header) -> None:
    if task not in (None, "classification", "regression"):
        raise DataError(f"{where}: task must be classification or regression, got {task!r}")
    if fill not in FILLS:
        raise DataError(f"{where}: fill must be one of {', '.join(FILLS)}, got {fill!r}")
    if header not in (None, True, False):
        raise DataError(f"{where}: header must be true or false, got {header!r}")


def load_csv(path: str | Path, val_fraction: float = 0.1, seed: int = 0, *,
             task: str | None = None, test_fraction: float = 0.2, target=None,
             categorical=None, ignore=None, fill: str = "mean", header=None) -> Dataset:
    """Read a CSV table (see the module docstring for the options)."""
    path = Path(path)
    where = str(path)
    _check(where, task, fill, header)
    rows, lines = read_table(path)
    headed = has_header(rows) if header is None else header
    names = rows[0] if headed else [f"column {j + 1}" for j in range(len(rows[0]))]
    if headed:
        rows, lines = rows[1:], lines[1:]
    if not rows:
        raise DataError(f"{where}: no data rows under the header")
    if len(set(names)) != len(names):
        raise DataError(f"{where}: two columns share a name; column names must differ")
    target_name = str(target) if target is not None else names[-1]
    _names(target_name, names, "target", where)
    dropped = set(_names(ignore, names, "ignore", where)) | {target_name}
    forced = set(_names(categorical, names, "categorical", where))
    t = names.index(target_name)
    missing = {n: sum(is_missing(r[j]) for r in rows) for j, n in enumerate(names)}
    keep = [i for i, r in enumerate(rows) if not is_missing(r[t])]
    feature_cols = [j for j, n in enumerate(names) if n not in dropped]
    kinds = {j: _kind(j, names[j], [r[j] for r in rows], lines, names[j] in forced, where)
             for j in feature_cols}
    if fill == "drop":
        keep = [i for i in keep if not any(is_missing(rows[i][j]) for j in feature_cols)]
    if not keep:
        every = " and every feature" if fill == "drop" else ""
        raise DataError(f"{where}: no rows left with a target{every}")
    rows = [rows[i] for i in keep]
    y, classes, task = _target([r[t] for r in rows], task, where)
    train, val, test = holdout(np.arange(len(rows)), y, val_fraction, seed, test_fraction)
    columns = []
    for j in feature_cols:
        col = Column.fitted(names[j], kinds[j], [rows[i][j] for i in train.x], fill)
        if col.kind == "categorical" and col.width > MAX_LEVELS:
            raise DataError(f"{where}: column {names[j]!r} has {col.width} different values: "
                            f"an id or free text? leave it out with ignore={names[j]}")
        columns.append(col)
    prep = TablePrep(tuple(names), target_name, tuple(columns))
    splits = [Split(prep.transform(names, [rows[i] for i in s.x], where), s.y)
              for s in (train, val, test)]
    return Dataset(path.stem, *splits, task=task, class_names=classes,
                   description=_describe(path, len(rows), prep, task, missing, fill,
                                         len(lines) - len(rows)),
                   preprocessing=prep.to_dict())


def _describe(path: Path, n: int, prep: TablePrep, task: str, missing: dict, fill: str,
              left_out: int) -> str:
    cats = [c.name for c in prep.features if c.kind == "categorical"]
    text = (f"{n:,} rows from {path}: {len(prep.features)} columns -> "
            f"{len(prep.feature_names)} features, target {prep.target!r} ({task})")
    if cats:
        text += f"; one-hot: {', '.join(cats)}"
    counted = {k: v for k, v in missing.items() if v}
    if counted:
        rule = {"mean": "training mean", "median": "training median", "zero": "zero",
                "drop": "rows dropped"}[fill]
        text += ("; missing values: " + ", ".join(f"{k} {v}" for k, v in counted.items())
                 + f" ({rule}; categories get a (missing) level)")
    if left_out:
        text += f"; {left_out} row{'s' * (left_out != 1)} left out"
    return text


def columns(path: str | Path) -> list[tuple[str, str]]:
    """(name, guessed kind) of every column, for a form that lets a person choose the target and
    the categorical columns before loading: "categorical" where most cells are text."""
    rows, _ = read_table(Path(path))
    names = rows[0] if has_header(rows) else [f"column {j + 1}" for j in range(len(rows[0]))]
    body = rows[1:] if has_header(rows) else rows
    kinds = []
    for j in range(len(names)):
        present = [r[j] for r in body if not is_missing(r[j])]
        text = sum(number(c) is None for c in present)
        kinds.append("categorical" if present and text * 2 > len(present) else "numeric")
    return list(zip(names, kinds))
