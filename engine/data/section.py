"""What a graph file's data section says beyond the spec: augmentation and stored preprocessing.

``{"spec": "folder:photos?size=32x32", "val_fraction": 0.1, "seed": 0,
"augment": {"flip": true, "crop_padding": 2}, "preprocessing": {"kind": "image", ...}}``.
The preprocessing (image size, channels, per-channel mean and std) is written when the data is
chosen and from then on is what the file's network was trained with: loading the same source
again uses the stored numbers, so training, the Inference tab, ``layerloom predict`` and exports
all normalise alike even after photos were added to the folder.
"""
from __future__ import annotations

from layerloom.engine.data import DataError, Dataset, load_data
from layerloom.engine.data.augment import Augmentation
from layerloom.engine.data.images import ImageArray, ImagePrep


def augmentation(section: dict, where: str = "data") -> Augmentation:
    """The section's training-only augmentation (off when it names none)."""
    return Augmentation.from_dict(section.get("augment"), f"{where}.augment")


def stored_image_prep(section: dict, where: str = "data") -> ImagePrep | None:
    """The stored image preprocessing, checked; None when the section holds none."""
    raw = section.get("preprocessing")
    if not raw or not isinstance(raw, dict) or raw.get("kind") != "image":
        return None
    return ImagePrep.from_dict(raw, f"{where}.preprocessing")


def adopt(dataset: Dataset, section: dict, same_source: bool, where: str = "data") -> Dataset:
    """Attach the section's augmentation to ``dataset`` and, when it is the source the section
    names (``same_source``) and the stored preprocessing fits it, normalise with the stored
    numbers instead of freshly computed ones."""
    dataset.augment = augmentation(section, where)
    if not same_source:
        return dataset
    try:
        stored = stored_image_prep(section, where)
    except DataError:
        return dataset  # a damaged record: the data's own numbers stand (and replace it on save)
    splits = (dataset.train, dataset.val, dataset.test)
    if stored is None or not all(isinstance(s.x, ImageArray) for s in splits):
        return dataset
    own = dataset.train.x.prep
    if (stored.size, stored.channels, stored.fit) != (own.size, own.channels, own.fit):
        return dataset
    for split in splits:
        split.x = ImageArray(split.x.store, split.x.rows, stored)
    dataset.preprocessing = stored.to_dict()
    return dataset


def load_data_section(section: dict, where: str = "data", spec: str | None = None,
                      val_fraction: float | None = None, graph_path=None,
                      allowed: frozenset | set = frozenset(),
                      allow_outside: bool = False, how: str | None = None) -> tuple[str, Dataset]:
    """The data set a project's "data" section names (``{"spec", "val_fraction", "seed",
    "augment", "preprocessing"}``), or ``spec``/``val_fraction`` given instead (the CLI's
    ``--data``/``--val-fraction``); returns the spec used and the data. The split seed is the
    section's, so changing the training seed keeps the split. The CLI and the window both load
    through here. The section's own path is read relative to ``graph_path``'s folder and refused
    outside it (``OutsideDataError``) unless ``allow_outside`` or ``allowed`` (resolved paths the
    person agreed to) let it; a ``spec`` given instead is the person's own choice."""
    from layerloom.engine.data.location import CLI_HOW, source_spec

    spec_used = spec or section.get("spec") or "bundled"
    val = val_fraction if val_fraction is not None else section.get("val_fraction", 0.1)
    seed = section.get("seed", 0)
    if not isinstance(spec_used, str) or not isinstance(seed, int) or isinstance(seed, bool):
        raise DataError(f"{where}: data: spec must be a string and seed an integer")
    if not isinstance(val, (int, float)) or isinstance(val, bool) or not 0 <= val < 1:
        raise DataError(f"{where}: data.val_fraction: must be in [0, 1), got {val!r}")
    spec_used, same = source_spec(section.get("spec") or "bundled", spec, graph_path, allowed,
                                  allow_outside, how or CLI_HOW)  # how: what the message offers
    dataset = load_data(spec_used, val_fraction=float(val), seed=seed)
    return spec_used, adopt(dataset, section, same, f"{where}: data")
