"""The bundled default image set: a stratified Fashion-MNIST subset shipped in ``resources/``.

So the app and the CLI train with no download. It is stored as ordinary gzip IDX files, read by
the same reader as any MNIST-format folder. ``make_subset`` rebuilds it from the full data set:

    python -m engine.data.bundled /usr/share/datasets/fashion-mnist
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset
from layerloom.engine.data.idx import find_idx_file, load_idx_dir, read_idx, write_idx
from layerloom.engine.paths import RESOURCES

BUNDLED_DIR = RESOURCES / "fashion-mnist-subset"
TRAIN_PER_CLASS, TEST_PER_CLASS = 600, 100


def load_bundled(val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """6,000 training and 1,000 test images of Fashion-MNIST's 10 classes, 1×28×28."""
    if not BUNDLED_DIR.is_dir():
        raise DataError(f"{BUNDLED_DIR}: the bundled data set is missing from this installation")
    data = load_idx_dir(BUNDLED_DIR, val_fraction, seed, name="bundled")
    data.description = "stratified Fashion-MNIST subset bundled with Layerloom (MIT, Zalando SE)"
    return data


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of every class, kept in the source's order (classes mixed)."""
    picks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise DataError(f"class {c} has only {len(members)} samples, {per_class} wanted")
        picks.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(picks))


def make_subset(source: str | Path, target: str | Path = BUNDLED_DIR,
                train_per_class: int = TRAIN_PER_CLASS, test_per_class: int = TEST_PER_CLASS,
                seed: int = 0) -> list[Path]:
    """Write the subset as gzip IDX files (byte-for-byte reproducible for the same source)."""
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for stem, per_class in (("train", train_per_class), ("t10k", test_per_class)):
        images = read_idx(find_idx_file(source, stem, "images", 3))
        labels = read_idx(find_idx_file(source, stem, "labels", 1))
        keep = stratified_indices(labels, per_class, rng)
        for kind, array in (("images-idx3", images[keep]), ("labels-idx1", labels[keep])):
            path = target / f"{stem}-{kind}-ubyte.gz"
            write_idx(path, array.astype(np.uint8))
            written.append(path)
    return written


if __name__ == "__main__":
    out = make_subset(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
    for p in out:
        print(f"{p}  {p.stat().st_size:,} bytes")
