"""Image folders for tests, drawn with Pillow: each class a colour, so a model can learn them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def picture(colour, size=(20, 24), seed=0, mode="RGB") -> Image.Image:
    """A noisy patch of ``colour`` (height, width = ``size``) in the given Pillow mode."""
    rng = np.random.default_rng(seed)
    h, w = size
    pixels = np.clip(np.array(colour)[None, None] + rng.normal(0, 25, (h, w, 3)), 0, 255)
    img = Image.fromarray(pixels.astype(np.uint8), "RGB")
    return img.convert(mode)


def class_folder(root: Path, per_class: int = 10, classes=("red", "green", "blue"),
                 ext: str = ".png", size=(20, 24)) -> Path:
    """``root/<colour>/<i><ext>``: ``per_class`` images of each colour."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            picture(COLOURS[name], size, seed=100 * c + i).save(root / name / f"{i:03d}{ext}")
    return root
