"""Optimisers over a ``{key: array}`` dict, updating in place: θ ← θ − γ·step(∇θ).

Formulas follow ``torch.optim.SGD`` and ``torch.optim.Adam``/``AdamW`` so results match PyTorch.
"""
from __future__ import annotations

import math

import numpy as np

from layerloom.engine.kernels.optim import adam_update, adam_update_kept
from layerloom.engine.spec import LayerloomError
from layerloom.engine.threads import run_row_parts, size_parts

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


def lr_factor(schedule: str, progress: float) -> float:
    """The share of the base learning rate at ``progress`` through a run (0 at its first step,
    towards 1 at its last): "constant" keeps it; "cosine" lowers it from 1 to 0 along half a
    cosine; "step" divides it by 10 at half the run and again at three quarters (the classic
    recipe, by share of the run rather than by epoch, so it fits runs of any length)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    raise LayerloomError(f"unknown learning-rate schedule {schedule!r}: choose one of "
                         f"{', '.join(SCHEDULES)}")


class Optimizer:
    def __init__(self, lr: float, weight_decay: float = 0.0):
        if not lr > 0:
            raise LayerloomError(f"learning rate must be > 0, got {lr}")
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.state: dict[str, dict] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr}, weight_decay={self.weight_decay})"

    def step(self, params: dict, grads: dict) -> None:
        for key, g in grads.items():
            self.update(key, params[key], g)

    def step_kept(self, params: dict, grads: dict, kept: dict) -> tuple[dict, set]:
        """``step``, first keeping each updated parameter's value in ``kept`` (what a run that
        diverges rolls back to); returns ({key: ‖gradient‖₂}, the keys whose update left a
        non-finite value). A training run needs all three every step; Adam takes them from
        its update's own call, the others from passes of their own (this)."""
        norms = {k: float(np.sqrt(np.vdot(g, g))) for k, g in grads.items()}
        for key in grads:
            np.copyto(kept[key], params[key])
        self.step(params, grads)  # under update_kept's errstate: an overflow is named, not warned
        return norms, {k for k in grads if not np.isfinite(params[k]).all()}

    def update(self, key: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Plain SGD, or with (Nesterov) momentum: v ← μv + g; θ ← θ − γv (PyTorch's form)."""

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.momentum, self.nesterov = float(momentum), nesterov

    def update(self, key, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            st = self.state.get(key)
            if st is None:
                v = g.copy()
                self.state[key] = {"v": v}
            else:
                v = st["v"]
                v *= self.momentum
                v += g
            g = g + self.momentum * v if self.nesterov else v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam with bias correction; ``decoupled=True`` is AdamW (decay applied to θ directly)."""

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(lr, weight_decay)
        self.b1, self.b2 = betas
        self.eps, self.decoupled = eps, decoupled
        self._made: tuple = (None, None)  # (what _scalars' array was made for, the array)

    def step(self, params: dict, grads: dict) -> None:
        """The parameters split over the cores in runs of about equal size (``size_parts``),
        one hand-over a step: Adam's pass ran on one core beside kernels that used two (1.3 ms
        of a 4-block GPT's 77 ms step). Each element's update is the same whatever the split."""
        items = list(grads.items())
        run_row_parts(lambda lo, hi: [self.update(k, params[k], g) for k, g in items[lo:hi]],
                      size_parts([g.size for _, g in items]))  # one part: on this thread

    def step_kept(self, params: dict, grads: dict, kept: dict) -> tuple[dict, set]:
        """``Optimizer.step_kept`` in one compiled call a parameter (``adam_update_kept``), split
        over the cores as ``step``; with weight decay (which changes θ before the update),
        or a parameter the kernel does not take, the passes of ``Optimizer.step_kept``."""
        items = list(grads.items())
        if self.weight_decay or not all(_flat(params[k], g) for k, g in items):
            return super().step_kept(params, grads, kept)

        def part(lo, hi):
            return [self._update_kept(k, params[k], g, kept[k]) for k, g in items[lo:hi]]
        done = [r for rs in run_row_parts(part, size_parts([g.size for _, g in items])) for r in rs]
        return ({k: norm for (k, _), (norm, _) in zip(items, done)},
                {k for (k, _), (_, finite) in zip(items, done) if not finite})

    def _state(self, key, p) -> dict:
        """``key``'s moments m and v (the two rows of one array, "mv": ``adam_update_kept``
        takes them as one argument) and update count t, counting this update."""
        st = self.state.get(key)
        if st is None:
            mv = np.zeros((2, *p.shape), p.dtype)
            st = self.state[key] = {"t": 0, "m": mv[0], "v": mv[1], "mv": mv.reshape(2, -1)}
        st["t"] += 1
        return st

    def _scalars(self, dtype, t: int) -> np.ndarray:
        """The kernels' scalars (b1, 1 − b1, b2, 1 − b2, step, bias correction 2, eps, tiny)
        in the parameter's dtype (float32 stays float32); the same for every parameter of a
        step, so made once a step."""
        key, made = (dtype, t, self.lr, self.b1, self.b2, self.eps), self._made
        if made[0] != key:  # (read once: the cores' parts may ask at the same time)
            f = dtype.type
            made = self._made = (key, np.array(
                [f(self.b1), f(1 - self.b1), f(self.b2), f(1 - self.b2),
                 f(self.lr / (1 - self.b1 ** t)), f(1 - self.b2 ** t), f(self.eps),
                 np.finfo(dtype).tiny], dtype))
        return made[1]

    def _update_kept(self, key, p, g, kept) -> tuple[float, bool]:
        st = self._state(key, p)
        norm, finite = adam_update_kept(p.reshape(-1), g.reshape(-1), st["mv"],
                                        self._scalars(p.dtype, st["t"]), kept.reshape(-1))
        return float(norm), bool(finite)

    def update(self, key, p, g):
        st = self._state(key, p)
        if self.weight_decay and self.decoupled:
            p *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m, v, t = st["m"], st["v"], st["t"]
        if p.flags.c_contiguous and p.dtype.kind == "f":  # one pass (engine/kernels/optim.py)
            adam_update(p.reshape(-1), np.ascontiguousarray(g, p.dtype).reshape(-1), m.reshape(-1),
                        v.reshape(-1), *self._scalars(p.dtype, t))
            return
        m *= self.b1
        m += (1 - self.b1) * g
        v *= self.b2
        v += (1 - self.b2) * (g * g)
        step = self.lr / (1 - self.b1 ** t)
        denom = np.sqrt(v / (1 - self.b2 ** t))
        denom += self.eps
        p -= step * (m / denom)


def update_kept(opt: Optimizer, params: dict, grads: dict, kept: dict,
                keys) -> tuple[dict, str | None]:
    """A training step's update with what the run reports and checks: every parameter first
    kept in ``kept`` (the buffers a forward changed too: what a diverged run rolls back to),
    then ``opt.step_kept``. Returns ({key of ``keys`` with a gradient: its norm}, the first of
    ``keys`` whose update left a non-finite value, or None)."""
    for key in params.keys() - grads.keys():
        np.copyto(kept[key], params[key])
    with np.errstate(all="ignore"):  # an overflow is named (the key returned), not warned of
        norms, overflowed = opt.step_kept(params, grads, kept)
    return ({k: norms[k] for k in keys if k in norms},
            next((k for k in keys if k in overflowed), None))


def _flat(p: np.ndarray, g: np.ndarray) -> bool:
    """The compiled update takes p and g as they are: both C-contiguous, one float type."""
    return (p.dtype.kind == "f" and g.dtype == p.dtype and p.flags.c_contiguous
            and g.flags.c_contiguous)


def make_optimizer(name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> Optimizer:
    if name == "sgd":
        return SGD(lr, weight_decay=weight_decay)
    if name == "momentum":
        return SGD(lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(lr, weight_decay=weight_decay)
    if name == "adamw":
        return Adam(lr, weight_decay=weight_decay, decoupled=True)
    raise LayerloomError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
