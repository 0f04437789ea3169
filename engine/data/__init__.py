"""Data sets: every reader returns a ``Dataset`` of train/validation/test splits as numpy arrays.

``load_data(spec)`` takes the spec strings the CLI and project files use: ``bundled``,
``idx:DIR``, ``folder:DIR`` (one sub-folder of images per class), ``npz:FILE``, ``csv:FILE``,
``pairs:TASK`` or ``pairs:FILE.tsv`` (source/target sequences, ``engine.data.pairs``), or a synthetic set name (``spirals``, ``moons``,
``circles``, ``xor``, ``signals``), each optionally followed by options (``spirals?n=500&noise=0.2``).
Images are float32 shaped (N, C, H, W), in [0, 1] or normalised as ``preprocessing`` says; a
split's ``x`` may be an array-like read on demand (``folder.ImageArray``); class labels int64.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from layerloom.engine.spec import LayerloomError


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
    # what inference needs to prepare new inputs as the training ones were (image size,
    # channels, per-channel mean and std...); stored in the graph file's data section
    preprocessing: dict = field(default_factory=dict)
    # training-only random changes (engine.data.augment.Augmentation), or None
    augment: object = None

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


MAX_CLASSES = 100_000  # more distinct labels than GPT-2's 50,257 tokens is no classification set


def class_ids(labels: list[np.ndarray], where: str) -> tuple[list[np.ndarray], list[str]]:
    """Class ids and names for integer label arrays (the splits of one data set, mapped together).

    Labels 0..k-1 with k <= MAX_CLASSES keep their values (class k-1 exists even when no sample
    of it is present, as a known label set expects). Larger or negative labels become the index
    of their value among the distinct labels present, so one label of 10**12 makes one class, not
    10**12 of them; more than MAX_CLASSES distinct labels is refused."""
    present = [y for y in labels if y.size]
    if not present:
        return list(labels), []
    low, high = min(int(y.min()) for y in present), max(int(y.max()) for y in present)
    if low >= 0 and high < MAX_CLASSES:
        return list(labels), [str(i) for i in range(high + 1)]
    values = np.unique(np.concatenate([y.ravel() for y in present]))
    if len(values) > MAX_CLASSES:
        raise DataError(f"{where}: {len(values):,} distinct labels; a classification set has at "
                        f"most {MAX_CLASSES:,} classes (real-valued targets make a regression set)")
    mapped = [np.searchsorted(values, y).astype(np.int64) for y in labels]
    return mapped, [str(v) for v in values.tolist()]


def split_off(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[Split, Split]:
    """Shuffle once with ``seed`` and hold out ``fraction`` of the samples."""
    keep, hold = split_order(len(x), fraction, seed)
    return Split(x[keep], y[keep]), Split(x[hold], y[hold])


def split_order(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept rows, held-out rows) of ``split_off``: for splits that keep their rows' indices."""
    if not 0 <= fraction < 1:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_hold = int(round(n * fraction))
    return order[n_hold:], order[:n_hold]


def holdout(x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int,
            test_fraction: float = 0.2) -> tuple[Split, Split, Split]:
    """Train/validation/test from one pool of samples (for files that carry no test split)."""
    rest, test = split_off(x, y, test_fraction, seed)
    train, val = split_off(rest.x, rest.y, val_fraction, seed + 1)
    return train, val, test


# ------------------------------------------------------------------------------------ specs
# "kind:PATH" specs and bare-name specs -> "module:function". A reader is called as
# fn([path,] val_fraction, seed, **options); its keyword-only parameters are the options it takes.
PATH_READERS = {"idx": "layerloom.engine.data.idx:load_idx_dir",
                "folder": "layerloom.engine.data.folder:load_folder",
                "npz": "layerloom.engine.data.npz:load_npz",
                "csv": "layerloom.engine.data.csv:load_csv", "text": "layerloom.engine.data.text:load_text_file",
                "seq": "layerloom.engine.data.sequences:load_sequence_task",
                "pairs": "layerloom.engine.data.pairs:load_pairs"}
NAMED_READERS = {"bundled": "layerloom.engine.data.bundled:load_bundled",
                 "text": "layerloom.engine.data.text:load_default_text",
                 "shapes": "layerloom.engine.data.shapes:load_shapes",
                 "colour_shapes": "layerloom.engine.data.colour_shapes:load_colour_shapes",
                 **{k: f"layerloom.engine.data.synthetic:load_{k}"
                    for k in ("spirals", "moons", "circles", "xor", "signals")}}
COMMON_OPTIONS = ("seed", "val_fraction")  # any spec may override load_data's own arguments


def spec_forms() -> str:
    """The accepted spec forms, for error messages and help texts."""
    named = list(NAMED_READERS)
    paths = [f"{k}:{ {'idx': 'DIR', 'folder': 'DIR', 'seq': 'TASK', 'pairs': 'TASK|FILE.tsv'}.get(k, 'FILE')}" for k in PATH_READERS]
    return ", ".join(named[:1] + paths + named[1:])


def _option_value(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_spec(spec: str) -> tuple[str, str | None, dict]:
    """``"spirals?n=500&noise=0.2"`` -> ``("spirals", None, {"n": 500, "noise": 0.2})``;
    ``"idx:/data/mnist"`` -> ``("idx", "/data/mnist", {})``. Values become int, float, bool or str."""
    from urllib.parse import parse_qsl

    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"empty data spec: use one of {spec_forms()}")
    spec = spec.strip()
    base, _, query = spec.partition("?")
    try:
        pairs = parse_qsl(query, strict_parsing=True) if query else []
    except ValueError:
        raise DataError(f"data spec {spec!r}: options must look like ?name=value&name=value") from None
    options = {k: _option_value(v) for k, v in pairs}
    kind, sep, arg = base.partition(":")
    if sep and kind in PATH_READERS:
        if not arg:
            raise DataError(f"data spec {spec!r}: give a path after {kind}:")
        return kind, arg, options
    if not sep and base in NAMED_READERS:
        return base, None, options
    raise DataError(f"unknown data spec {spec!r}: use one of {spec_forms()}")


def _reader(kind: str, has_path: bool):
    import importlib

    module, _, name = (PATH_READERS if has_path else NAMED_READERS)[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def load_data(spec: str, val_fraction: float = 0.1, seed: int = 0, **options) -> Dataset:
    """Read the data set a spec string names; options in the spec win over keywords."""
    import inspect

    kind, arg, parsed = parse_spec(spec)
    options = {**options, **parsed}
    seed = options.pop("seed", seed)
    val_fraction = options.pop("val_fraction", val_fraction)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"data spec {spec!r}: seed must be an integer, got {seed!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise DataError(f"data spec {spec!r}: val_fraction must be a number, got {val_fraction!r}")
    reader = _reader(kind, arg is not None)
    accepted = sorted(p.name for p in inspect.signature(reader).parameters.values()
                      if p.kind is p.KEYWORD_ONLY)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted + list(COMMON_OPTIONS))
        raise DataError(f"data spec {spec!r}: unknown option {unknown[0]!r} (options: {allowed})")
    args = (arg,) if arg is not None else ()
    return checked(reader(*args, val_fraction, seed, **options), arg or kind)


def checked(dataset: Dataset, where: str) -> Dataset:
    """Refuse a data set training cannot use: no training samples (an empty file, or too few
    samples for the splits) or samples without values."""
    total = len(dataset.train) + len(dataset.val) + len(dataset.test)
    if total == 0:
        raise DataError(f"{where}: the data set holds no samples")
    if len(dataset.train) == 0:
        raise DataError(f"{where}: {total} samples leave none for training after the "
                        f"validation and test splits; use more samples or a smaller validation "
                        f"split")
    if 0 in dataset.sample_shape:
        raise DataError(f"{where}: samples of shape {dataset.sample_shape} hold no values")
    return dataset
