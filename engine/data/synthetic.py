"""Synthetic classification sets: 2-D points (spirals, moons, circles, xor) and 1-D signals
(sine, square, sawtooth or noise): small, instant, seeded.

Each generator returns ``(samples float32, labels int64 N)`` with the classes as balanced as
``n`` allows (points N×2, signals N×1×length, channels first as Conv1d reads them); the
``load_*`` functions wrap one in a Dataset (80 % train + validation, 20 % test). Options arrive
from spec strings (``spirals?n=500&noise=0.3``), so each is checked here.
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


SIGNAL_CLASSES = ("sine", "square", "sawtooth", "noise")


def signals(n: int = 2000, noise: float = 0.3, seed: int = 0, length: int = 128):
    """Waves of a random frequency (2 to 8 periods), phase and amplitude (0.5 to 1.5), or noise
    of the same amplitude smoothed to the same band; ``noise`` adds white noise to all. The class
    is the shape alone, so a model must look at the waveform, not at its energy or pitch."""
    _check("signals", n, noise)
    if isinstance(length, bool) or not isinstance(length, int) or not 16 <= length <= 65536:
        raise DataError(f"signals: length must be an integer from 16 to 65,536, got {length!r}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(_per_class(n, len(SIGNAL_CLASSES)))
    t = np.arange(length) / length
    cycles = rng.uniform(2.0, 8.0, (n, 1)) * t + rng.uniform(0.0, 1.0, (n, 1))
    frac = cycles % 1.0
    waves = np.stack([np.sin(2 * np.pi * cycles), np.where(frac < 0.5, 1.0, -1.0),
                      2.0 * frac - 1.0, _smooth_noise(rng, n, length)])
    x = waves[y, np.arange(n)] * rng.uniform(0.5, 1.5, (n, 1))
    x = x + rng.normal(0.0, noise, x.shape)
    return x[:, None, :].astype(np.float32), y.astype(np.int64)


def _smooth_noise(rng, n: int, length: int) -> np.ndarray:
    """White noise low-passed by a moving average over a quarter of the shortest period, scaled
    to unit peak."""
    width = max(1, length // 32)
    raw = rng.normal(0.0, 1.0, (n, length + width - 1))
    kernel = np.ones(width) / width
    smooth = np.stack([np.convolve(r, kernel, mode="valid") for r in raw])
    return smooth / np.abs(smooth).max(axis=1, keepdims=True)


GENERATORS = {"spirals": spirals, "moons": moons, "circles": circles, "xor": xor,
              "signals": signals}
CLASS_NAMES = {"signals": SIGNAL_CLASSES}


def load_synthetic(kind: str, val_fraction: float = 0.1, seed: int = 0, **options) -> Dataset:
    """Points from one generator, seeded by ``seed`` (which also seeds the split)."""
    x, y = GENERATORS[kind](seed=seed, **options)
    train, val, test = holdout(x, y, val_fraction, seed)
    k = int(y.max()) + 1
    names = list(CLASS_NAMES.get(kind, [f"class {i}" for i in range(k)]))
    described = ", ".join(f"{key}={value}" for key, value in options.items())
    what = "1-D signals" if kind == "signals" else f"2-D {kind}"
    return Dataset(kind, train, val, test, class_names=names,
                   description=f"synthetic {what}" + (f" ({described})" if described else ""))


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


def load_signals(val_fraction: float = 0.1, seed: int = 0, *, n: int = 2000, noise: float = 0.3,
                 length: int = 128) -> Dataset:
    return load_synthetic("signals", val_fraction, seed, n=n, noise=noise, length=length)
