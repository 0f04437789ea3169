"""The training settings of a project: names, types, ranges and defaults in one place.

A graph file's ``"training"`` section is checked here when the file is loaded, the CLI's flags
when they are applied, and the window's training panel takes its limits from ``SETTINGS``; so a
bad value (``seed: "x"``, ``lr: -1``, ``histogram_every: -1``) is one line naming the setting, never
a ``TypeError`` deep inside training or an export.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from layerloom.engine.optim import OPTIMIZERS, SCHEDULES
from layerloom.engine.spec import LayerloomError

INT_MAX = 2**31 - 1  # what a settings spin box holds; far beyond any real run


class SettingsError(LayerloomError):
    """A training setting of the wrong type or out of range; the message names it."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Whole:
    """A whole number in [low, high]; ``true``/``false`` and 3.0 are not whole numbers here."""

    low: int
    high: int = INT_MAX
    optional: bool = False  # None means "no limit"

    def problem(self, value: Any) -> str | None:
        if value is None and self.optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be a whole number, got {_shown(value)}"
        if value < self.low:
            return f"must be at least {self.low}, got {value}"
        if value > self.high:
            return f"must be at most {self.high}, got {value}"
        return None


@dataclass(frozen=True)
class Real:
    """A finite number above ``low`` (or at it, when ``low_included``) and below ``below``."""

    low: float
    low_included: bool
    below: float = math.inf

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"must be a number, got {_shown(value)}"
        above = value >= self.low if self.low_included else value > self.low
        if not (math.isfinite(value) and above and value < self.below):
            low = f">= {self.low:g}" if self.low_included else f"> {self.low:g}"
            high = f" and < {self.below:g}" if math.isfinite(self.below) else ""
            return f"must be a finite number {low}{high}, got {value!r}"
        return None


@dataclass(frozen=True)
class OneOf:
    choices: tuple

    def problem(self, value: Any) -> str | None:
        if value not in self.choices:  # only strings are among the choices
            return f"must be one of {', '.join(self.choices)}, got {_shown(value)}"
        return None


# What File > New starts with: settings under which a small MLP learns the synthetic sets
# (spirals, moons, circles, xor) in seconds. TrainConfig's own defaults (Adam at 1e-3 for one
# epoch) left spirals unlearnt until tuned.
NEW_PROJECT = {"optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 20, "seed": 0}

SETTINGS = {
    "optimizer": OneOf(OPTIMIZERS),
    "lr": Real(0.0, low_included=False),
    "schedule": OneOf(SCHEDULES),
    "momentum": Real(0.0, low_included=True, below=1.0),
    "weight_decay": Real(0.0, low_included=True),
    "batch_size": Whole(1),
    "epochs": Whole(1),
    "seed": Whole(0),
    "max_steps": Whole(1, optional=True),
    "histogram_every": Whole(0),  # 0: no histograms (quick runs and tests)
}


@dataclass(frozen=True)
class TrainConfig:
    """Stored in the project file under ``"training"`` (settings left out take these defaults).
    Checked on construction: every TrainConfig holds valid settings."""

    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"  # engine.optim.SCHEDULES: how the learning rate moves over a run
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 1
    seed: int = 0
    max_steps: int | None = None  # stop early (tests, "Step" in the GUI uses its own control)
    histogram_every: int = 25  # steps between gradient and weight histograms; 0 never

    def __post_init__(self) -> None:
        check_settings(asdict(self))

    @classmethod
    def from_settings(cls, section: Any, where: str = "training") -> "TrainConfig":
        """A project's training section (a dict), checked: a SettingsError names the first
        problem as ``<where>.<setting>``; unknown settings (typos) are refused, not ignored."""
        check_settings(section, where)
        return cls(**section)

    from_dict = from_settings

    def to_dict(self) -> dict:
        return asdict(self)


def check_settings(section: Any, where: str = "training") -> None:
    """Raise a one-line SettingsError for the first bad entry of a training section."""
    if not isinstance(section, dict):
        raise SettingsError(f"{where}: must be an object of settings, got {_shown(section)}")
    for name, value in section.items():
        rule = SETTINGS.get(name)
        if rule is None:
            raise SettingsError(f"{where}.{name}: unknown training setting "
                                f"(known: {', '.join(SETTINGS)})")
        problem = rule.problem(value)
        if problem is not None:
            raise SettingsError(f"{where}.{name}: {problem}")
