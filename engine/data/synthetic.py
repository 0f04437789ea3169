"""Synthetic 2-D classification sets (spirals, moons, circles, xor): small, instant, seeded.

Each generator returns ``(points float32 N×2, labels int64 N)`` with the classes as balanced as
``n`` allows; the ``load_*`` functions wrap one in a Dataset (80 % train + validation, 20 % test).
Options arrive from spec strings (``spirals?n=500&noise=0.3``), so each is checked here.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.data import DataError, Dataset, holdout

MAX_POINTS = 10_000_000


def _check(kind: str, n, noise, classes: int | None = None) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 4 <= n <= MAX_POINTS:
        raise DataError(f"{kind}: n must be an integer from 4 to {MAX_POINTS:,}, got {n!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 10:
        raise DataError(f"{kind}: noise must be a number from 0 to 10, got {noise!r}")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int)
                                or not 2 <= classes <= 20):
        raise DataError(f"{kind}: classes must be an integer from 2 to 20, got {classes!r}")


def _per_class(n: int, k: int) -> np.ndarray:
    """Class index of each of ``n`` points, as even as possible: 0,0,..,1,1,..."""
    return np.repeat(np.arange(k), [n // k + (i < n % k) for i in range(k)])


def spirals(n: int = 1000, noise: float = 0.2, classes: int = 3, seed: int = 0):
    """Interleaved arms r·(sin t, cos t), the CS231n classic; ``noise`` jitters the angle."""
    _check("spirals", n, noise, classes)
    rng = np.random.default_rng(seed)
    y = _per_class(n, classes)
    r = np.empty(n)
    for c in range(classes):
        m = int((y == c).sum())
        r[y == c] = np.linspace(0.0, 1.0, m)
    t = 4.0 * (y + r) + rng.normal(0.0, noise, n)  # each arm sweeps 4 radians, offset per class
    x = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
    return x.astype(np.float32), y.astype(np.int64)


def moons(n: int = 1000, noise: float = 0.1, seed: int = 0):
    """Two interleaving half circles (as sklearn's make_moons)."""
    _check("moons", n, noise)
    rng = np.random.default_rng(seed)
    y = _per_class(n, 2)
    t = rng.uniform(0.0, np.pi, n)
    x = np.where(y[:, None] == 0, np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], 1))
    x = x + rng.normal(0.0, noise, x.shape)
    return x.astype(np.float32), y.astype(np.int64)


def circles(n: int = 1000, noise: float = 0.05, seed: int = 0, factor: float = 0.5):
    """A ring (class 0) around a smaller ring of radius ``factor`` (class 1)."""
    _check("circles", n, noise)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
        raise DataError(f"circles: factor must be between 0 and 1, got {factor!r}")
    rng = np.random.default_rng(seed)
    y = _per_class(n, 2)
    t = rng.uniform(0.0, 2 * np.pi, n)
    r = np.where(y == 0, 1.0, factor)
    x = np.stack([r * np.cos(t), r * np.sin(t)], 1) + rng.normal(0.0, noise, (n, 2))
    return x.astype(np.float32), y.astype(np.int64)


def xor(n: int = 1000, noise: float = 0.1, seed: int = 0):
    """Points in [-1, 1]²; class 1 where x and y have opposite signs (labels from the clean points)."""
    _check("xor", n, noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2))
    y = (x[:, 0] * x[:, 1] < 0).astype(np.int64)
    x = x + rng.normal(0.0, noise, x.shape)
    return x.astype(np.float32), y


GENERATORS = {"spirals": spirals, "moons": moons, "circles": circles, "xor": xor}


def load_synthetic(kind: str, val_fraction: float = 0.1, seed: int = 0, **options) -> Dataset:
    """Points from one generator, seeded by ``seed`` (which also seeds the split)."""
    x, y = GENERATORS[kind](seed=seed, **options)
    train, val, test = holdout(x, y, val_fraction, seed)
    k = int(y.max()) + 1
    described = ", ".join(f"{key}={value}" for key, value in options.items())
    return Dataset(kind, train, val, test, class_names=[f"class {i}" for i in range(k)],
                   description=f"synthetic 2-D {kind}" + (f" ({described})" if described else ""))


def load_spirals(val_fraction: float = 0.1, seed: int = 0, *, n: int = 1000, noise: float = 0.2,
                 classes: int = 3) -> Dataset:
    return load_synthetic("spirals", val_fraction, seed, n=n, noise=noise, classes=classes)


def load_moons(val_fraction: float = 0.1, seed: int = 0, *, n: int = 1000,
               noise: float = 0.1) -> Dataset:
    return load_synthetic("moons", val_fraction, seed, n=n, noise=noise)


def load_circles(val_fraction: float = 0.1, seed: int = 0, *, n: int = 1000, noise: float = 0.05,
                 factor: float = 0.5) -> Dataset:
    return load_synthetic("circles", val_fraction, seed, n=n, noise=noise, factor=factor)


def load_xor(val_fraction: float = 0.1, seed: int = 0, *, n: int = 1000,
             noise: float = 0.1) -> Dataset:
    return load_synthetic("xor", val_fraction, seed, n=n, noise=noise)
