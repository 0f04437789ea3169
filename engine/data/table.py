"""Table columns to features, the same way for training and for rows a person predicts on.

A ``TablePrep`` lists, per feature column, how its text cells become numbers: a numeric column is
filled where a value is missing (with the training split's mean or median, or zero) and then
standardised with the training split's mean and standard deviation; a categorical column becomes
one-hot over the levels seen in the training split (a level never seen, or a missing cell when
the training split had none, is all zeros). It is stored in the graph file's data section, so
``layerloom predict`` prepares a CSV row exactly as training did.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from layerloom.engine.data import DataError

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})
FILLS = ("mean", "median", "zero", "drop")  # drop: rows with a missing feature are left out
MISSING_LEVEL = "(missing)"


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def number(cell: str) -> float | None:
    """A finite number, or None (missing or text)."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


@dataclass(frozen=True)
class Column:
    """One feature column: ``kind`` "numeric" (fill, mean, std) or "categorical" (levels)."""

    name: str
    kind: str
    fill: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    levels: tuple = ()

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.levels)

    def feature_names(self) -> list[str]:
        return [self.name] if self.kind == "numeric" else [f"{self.name}={v}" for v in self.levels]

    def encode(self, cells: list[str], where: str) -> np.ndarray:
        """Cells of this column -> float32 rows × width."""
        if self.kind == "numeric":
            out = np.empty(len(cells), dtype=np.float64)
            for i, cell in enumerate(cells):
                value = self.fill if is_missing(cell) else number(cell)
                if value is None:
                    raise DataError(f"{where}: row {i + 1}, column {self.name!r}: not a number")
                out[i] = value
            return ((out - self.mean) / self.std).astype(np.float32)[:, None]
        index = {v: k for k, v in enumerate(self.levels)}
        out = np.zeros((len(cells), len(self.levels)), dtype=np.float32)
        for i, cell in enumerate(cells):
            k = index.get(MISSING_LEVEL if is_missing(cell) else cell.strip())
            if k is not None:
                out[i, k] = 1.0
        return out

    @classmethod
    def fitted(cls, name: str, kind: str, train_cells: list[str], fill: str) -> "Column":
        """This column's numbers from the training split's cells."""
        if kind == "categorical":
            levels = {MISSING_LEVEL if is_missing(c) else c.strip() for c in train_cells}
            return cls(name, kind, levels=tuple(sorted(levels)))
        values = np.array([v for c in train_cells if not is_missing(c)
                           for v in [number(c)] if v is not None], dtype=np.float64)
        if not len(values):
            raise DataError(f"column {name!r} has no values in the training split")
        filler = {"mean": values.mean, "median": lambda: np.median(values)}.get(fill, lambda: 0.0)()
        filled = np.array([filler if is_missing(c) else number(c) for c in train_cells])
        std = float(filled.std())
        return cls(name, kind, fill=float(filler), mean=float(filled.mean()),
                   std=std if std > 1e-12 else 1.0)  # a constant column is centred, not divided


@dataclass(frozen=True)
class TablePrep:
    """The columns a table-trained network expects, in the file's order, and its target."""

    columns: tuple  # every column name of the file, in order
    target: str
    features: tuple = field(default_factory=tuple)  # Column, in column order

    @property
    def feature_names(self) -> list[str]:
        return [n for c in self.features for n in c.feature_names()]

    def transform(self, header: list[str], rows: list[list[str]], where: str) -> np.ndarray:
        """Rows of cells (with these column names) -> float32 N × features."""
        position = {name: j for j, name in enumerate(header)}
        absent = [c.name for c in self.features if c.name not in position]
        if absent:
            raise DataError(f"{where}: no column {absent[0]!r} (the network was trained on "
                            f"{', '.join(c.name for c in self.features)})")
        blocks = [c.encode([r[position[c.name]] for r in rows], where) for c in self.features]
        if not blocks:
            return np.zeros((len(rows), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1)

    def to_dict(self) -> dict:
        cols = []
        for c in self.features:
            d = {"column": c.name, "kind": c.kind}
            d.update({"fill": c.fill, "mean": c.mean, "std": c.std} if c.kind == "numeric"
                     else {"levels": list(c.levels)})
            cols.append(d)
        return {"kind": "table", "columns": list(self.columns), "target": self.target,
                "features": cols}

    @classmethod
    def from_dict(cls, d: dict, where: str = "data.preprocessing") -> "TablePrep":
        """Checked: a hand-edited file gets a one-line error naming the entry."""
        if not isinstance(d, dict) or d.get("kind") != "table":
            raise DataError(f"{where}: not a table preprocessing section")
        columns, target, raw = d.get("columns"), d.get("target"), d.get("features")
        if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)
                and isinstance(target, str) and isinstance(raw, list)):
            raise DataError(f"{where}: needs columns (names), target (a name) and features")
        features = []
        for i, f in enumerate(raw):
            at = f"{where}.features[{i}]"
            if not isinstance(f, dict) or not isinstance(f.get("column"), str):
                raise DataError(f"{at}: must be an object naming its column")
            if f.get("kind") == "numeric":
                nums = [f.get(k) for k in ("fill", "mean", "std")]
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and np.isfinite(v) for v in nums) or nums[2] <= 0:
                    raise DataError(f"{at}: fill, mean and std must be finite numbers, std > 0")
                features.append(Column(f["column"], "numeric", *map(float, nums)))
            elif f.get("kind") == "categorical":
                levels = f.get("levels")
                if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
                    raise DataError(f"{at}.levels: must be a list of strings")
                features.append(Column(f["column"], "categorical", levels=tuple(levels)))
            else:
                raise DataError(f"{at}.kind: must be numeric or categorical")
        return cls(tuple(columns), target, tuple(features))
