"""Image folders: one sub-folder per class, as torchvision's ImageFolder and MATLAB's imageDatastore.

``folder:DIR`` reads ``DIR/<class>/**/<image>`` (files in nested folders belong to their top
class folder), or ``DIR/train|val|test/<class>/…`` when a ``train`` folder sits beside a
``val`` or ``test`` one; a missing validation or test split is carved from the training images,
stratified by class and seeded. Every image is decoded once into the user's cache folder
(``engine.data.cache``) and fitted to ``size`` (default 32×32): ``fit=crop`` scales the short side
to fit and cuts the centre (the default, keeps proportions), ``fit=stretch`` squashes the whole
picture. ``channels=3`` (default) or ``1``. Per-channel mean and standard deviation come from the
training split only and go into the data set's preprocessing, which the graph file stores.

Files that are not images by name are ignored and counted; images that fail to decode are
skipped, counted and the first few named in the description, never a crash.
"""
from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset, Split
from layerloom.engine.data.cache import (RowStore, RowWriter, cache_paths, fingerprint,
                                         remove_stale)
from layerloom.engine.data.images import FITS, DecodeError, ImageArray, ImagePrep, decode, parse_size

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
DECODE_BLOCK = 64  # files handed to the decoding threads at a time (bounds memory, keeps order)
SHOW_SKIPPED = 3  # file names named in the summary


@dataclass
class Listing:
    """What a folder holds, in a fixed order: the cache rows follow ``files``."""

    files: list = field(default_factory=list)  # (relative path, size, mtime_ns)
    labels: list = field(default_factory=list)  # class index per file
    splits: list = field(default_factory=list)  # "train", "val", "test" or "" (to be split) per file
    classes: list = field(default_factory=list)
    ignored: int = 0  # files that are not images by name, or lie outside any class folder
    empty: list = field(default_factory=list)  # class folders without a single image


def _images_under(root: Path) -> tuple[list[tuple[str, int, int]], int]:
    found, ignored = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                ignored += 1
                continue
            try:
                st = path.stat()
            except OSError:
                ignored += 1
                continue
            if not stat.S_ISREG(st.st_mode):  # a FIFO or device named .png would block a read
                ignored += 1
                continue
            found.append((str(path), st.st_size, st.st_mtime_ns))
    return found, ignored


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as err:
        raise DataError(f"{folder}: cannot list the folder ({err.strerror or err})") from None


def _loose_files(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def scan(folder: Path) -> Listing:
    """Find the classes and their images (and the split folders, when there are some)."""
    top = _subdirs(folder)
    by_split = {SPLIT_NAMES[p.name.lower()]: p for p in top if p.name.lower() in SPLIT_NAMES}
    split_layout = "train" in by_split and len(by_split) > 1
    roots = list(by_split.items()) if split_layout else [("", folder)]
    per_class: dict[str, list] = {}
    listing = Listing()
    for split, root in roots:
        listing.ignored += _loose_files(root)
        for class_dir in _subdirs(root):
            found, ignored = _images_under(class_dir)
            listing.ignored += ignored
            per_class.setdefault(class_dir.name, [])
            per_class[class_dir.name] += [(split, f) for f in found]
    listing.classes = sorted(c for c, files in per_class.items() if files)
    listing.empty = sorted(c for c, files in per_class.items() if not files)
    for k, name in enumerate(listing.classes):
        for split, (path, size, mtime) in per_class[name]:
            listing.files.append((os.path.relpath(path, folder), size, mtime))
            listing.labels.append(k)
            listing.splits.append(split)
    return listing


def _decode_all(folder: Path, listing: Listing, npy: Path, meta: Path,
                size: tuple[int, int], channels: int, fit: str) -> None:
    """Decode every listed file into the cache (threads: Pillow decodes without the GIL)."""
    n = len(listing.files)
    writer = RowWriter(npy, (n, channels, *size))
    ok = np.zeros(n, dtype=bool)
    stats = np.zeros((n, channels, 2), dtype=np.float64)  # per image: mean, mean of squares
    skipped = []

    def one(i: int):
        try:
            return decode(folder / listing.files[i][0], size, channels, fit)
        except DecodeError as err:
            return str(err)
        except OSError as err:  # vanished or unreadable since the scan
            return err.strerror or str(err)

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            for start in range(0, n, DECODE_BLOCK):
                block = range(start, min(n, start + DECODE_BLOCK))
                for i, result in zip(block, pool.map(one, block)):
                    if isinstance(result, str):
                        skipped.append([listing.files[i][0], result])
                        continue
                    writer.write(i, result)
                    flat = result.reshape(channels, -1).astype(np.float64) / 255.0
                    stats[i, :, 0], stats[i, :, 1] = flat.mean(1), (flat * flat).mean(1)
                    ok[i] = True
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    np.save(meta.with_suffix(".stats.npy"), np.concatenate([stats.reshape(n, -1),
                                                            ok[:, None]], axis=1))
    from layerloom.engine.serialize import atomic_write_bytes

    atomic_write_bytes(meta, json.dumps({"folder": str(folder), "skipped": skipped}).encode())


def _cached(folder: Path, listing: Listing, size, channels: int, fit: str):
    """(RowStore, ok mask, per-image stats, skipped [(name, reason)]) — decoding only when needed."""
    options = {"size": list(size), "channels": channels, "fit": fit}
    npy, meta, prefix = cache_paths(folder, fingerprint(listing.files, options))
    if not (meta.is_file() and npy.is_file()):
        _decode_all(folder, listing, npy, meta, size, channels, fit)
        remove_stale(npy, prefix)
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        table = np.load(meta.with_suffix(".stats.npy"), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{meta}: unreadable image cache ({err}); delete it to decode again") from None
    store = RowStore(npy)
    n = len(listing.files)
    if store.shape != (n, channels, *size) or table.shape != (n, 2 * channels + 1):
        raise DataError(f"{npy}: image cache does not match the folder; delete it to decode again")
    return store, table[:, -1] > 0, table[:, :-1].reshape(n, channels, 2), info["skipped"]


def _stratified(labels: np.ndarray, pool: np.ndarray, fraction: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split ``pool`` (indices) into (keep, hold) with ``fraction`` of every class held out."""
    keep, hold = [], []
    for c in np.unique(labels[pool]):
        members = rng.permutation(pool[labels[pool] == c])
        n_hold = int(round(len(members) * fraction))
        hold.append(members[:n_hold])
        keep.append(members[n_hold:])
    empty = np.zeros(0, dtype=np.int64)
    return (np.sort(np.concatenate(keep)) if keep else empty,
            np.sort(np.concatenate(hold)) if hold else empty)


def split_rows(listing: Listing, ok: np.ndarray, val_fraction: float, test_fraction: float,
               seed: int) -> dict[str, np.ndarray]:
    """Row indices of train/val/test: the folders' own splits, the missing ones carved from train."""
    labels = np.asarray(listing.labels, dtype=np.int64)
    splits = np.asarray(listing.splits or [""] * len(labels))
    rows = {s: np.flatnonzero(ok & (splits == s)) for s in ("train", "val", "test")}
    rng = np.random.default_rng(seed)
    if not (splits != "").any():
        rows["train"] = np.flatnonzero(ok)
    if not len(rows["test"]):
        rows["train"], rows["test"] = _stratified(labels, rows["train"], test_fraction, rng)
    if not len(rows["val"]):
        rows["train"], rows["val"] = _stratified(labels, rows["train"], val_fraction, rng)
    # validation and test in a seeded mixed order: the Inference tab browses them by index
    return {s: (r if s == "train" else rng.permutation(r)) for s, r in rows.items()}


def _prep(stats: np.ndarray, train: np.ndarray, size, channels: int, fit: str,
          normalize: bool) -> ImagePrep:
    if not normalize:
        return ImagePrep(tuple(size), channels, fit, (0.0,) * channels, (1.0,) * channels)
    mean = stats[train, :, 0].mean(axis=0)
    var = np.maximum(stats[train, :, 1].mean(axis=0) - mean * mean, 0.0)
    std = np.maximum(np.sqrt(var), 1 / 255)  # a constant channel must not divide by zero
    return ImagePrep(tuple(size), channels, fit, tuple(round(float(m), 6) for m in mean),
                     tuple(round(float(s), 6) for s in std))


def _check_options(where: str, size, channels, fit, test_fraction) -> tuple[int, int]:
    hw = parse_size(size, where)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(f"{where}: channels must be 1 or 3, got {channels!r}")
    if fit not in FITS:
        raise DataError(f"{where}: fit must be one of {', '.join(FITS)}, got {fit!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0 <= test_fraction < 1:
        raise DataError(f"{where}: test_fraction must be in [0, 1), got {test_fraction!r}")
    return hw


def _describe(folder: Path, listing: Listing, skipped: list, prep: ImagePrep) -> str:
    h, w = prep.size
    fit = "centre-cropped" if prep.fit == "crop" else "stretched"
    colour = "RGB" if prep.channels == 3 else "grey"
    parts = [f"{len(listing.files) - len(skipped):,} images in {len(listing.classes)} classes "
             f"from {folder} ({h}×{w} {colour}, {fit})"]
    if skipped:
        names = ", ".join(f"{name} ({why})" for name, why in skipped[:SHOW_SKIPPED])
        more = "…" if len(skipped) > SHOW_SKIPPED else ""
        parts.append(f"{len(skipped)} unreadable image{'s' * (len(skipped) != 1)} skipped: "
                     f"{names}{more}")
    if listing.ignored:
        parts.append(f"{listing.ignored} non-image file{'s' * (listing.ignored != 1)} ignored")
    if listing.empty:
        parts.append(f"empty class folder{'s' * (len(listing.empty) != 1)} left out: "
                     f"{', '.join(listing.empty[:SHOW_SKIPPED])}")
    return "; ".join(parts)


def load_folder(path: str | Path, val_fraction: float = 0.1, seed: int = 0, *,
                size="32x32", channels: int = 3, fit: str = "crop",
                test_fraction: float = 0.2, normalize: bool = True) -> Dataset:
    """A folder of images sorted into one sub-folder per class (see the module docstring)."""
    folder = Path(path)
    where = f"folder:{folder}"
    hw = _check_options(where, size, channels, fit, test_fraction)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected one sub-folder of images per class)")
    listing = scan(folder)
    if len(listing.classes) < 1:
        raise DataError(f"{folder}: no class folders with images in them (expected "
                        f"{folder.name}/<class name>/<image files>)")
    store, ok, stats, skipped = _cached(folder, listing, hw, channels, fit)
    rows = split_rows(listing, ok, val_fraction, test_fraction, seed)
    if not len(rows["train"]):
        raise DataError(f"{folder}: no readable training images ({len(skipped)} could not be decoded)")
    prep = _prep(stats, rows["train"], hw, channels, fit, normalize)
    labels = np.asarray(listing.labels, dtype=np.int64)
    train, val, test = (Split(ImageArray(store, rows[s], prep), labels[rows[s]])
                        for s in ("train", "val", "test"))
    return Dataset(folder.resolve().name, train, val, test, class_names=list(listing.classes),
                   description=_describe(folder, listing, skipped, prep),
                   preprocessing=prep.to_dict())
