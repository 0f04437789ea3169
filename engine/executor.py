"""Forward and reverse-mode backward over a Plan.

Gradients are summed where a tensor feeds several layers. Non-finite values are looked for lazily:
the hot path only checks the graph's final outputs and the parameter gradients; when one is bad,
a second look walks the saved values in order to name the first node that produced it.
"""
from __future__ import annotations

import numpy as np

from engine.plan import Plan
from engine.spec import Ctx, LayerloomError, fmt_shape


class NonFiniteError(LayerloomError):
    """NaN or inf appeared; ``node_id`` and ``phase`` ("forward"/"backward") say where first."""

    def __init__(self, node_id: str, layer_type: str, phase: str):
        self.node_id, self.layer_type, self.phase = node_id, layer_type, phase
        what = "output" if phase == "forward" else "gradient"
        super().__init__(f"non-finite {what} (NaN or inf) first appeared at {layer_type} "
                         f"{node_id!r} in the {phase} pass")


class InputError(LayerloomError):
    """A batch fed to a source node does not match its declared shape or type."""


def _finite(a: np.ndarray) -> bool:
    # A sum is one pass and propagates NaN/inf; far cheaper than isfinite().all() on big tensors.
    # An overflow of the sum itself (finite values summing to inf) needs the exact check.
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(a.sum())) or bool(np.isfinite(a).all())


class Executor:
    """Runs one Plan; holds the values and contexts of the last forward for the backward."""

    def __init__(self, plan: Plan, dtype=np.float32):
        self.plan, self.dtype = plan, np.dtype(dtype)
        self.values: dict = {}
        self.ctxs: dict = {}
        self._last: tuple = ()  # terminal port refs: checked for non-finite values

    def feed(self, step, batch) -> np.ndarray:
        """Cast and check one source batch against the node's declared shape."""
        arr = np.asarray(batch)
        want = step.layer.infer(step.attrs)
        float_like = np.issubdtype(np.dtype(step.layer.feed_dtype(step.attrs)), np.floating)
        if float_like:
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
        elif not np.issubdtype(arr.dtype, np.integer):
            if arr.size and not np.all(np.mod(arr, 1) == 0):
                raise InputError(f"{step.node_id!r} expects integer values, got {arr.dtype}")
            arr = arr.astype(np.int64)
        if arr.ndim != len(want) or any(w is not None and w != s for w, s in zip(want, arr.shape)):
            raise InputError(f"{step.node_id!r} expects batches of {fmt_shape(want)}, "
                             f"got {fmt_shape((None,) + arr.shape[1:])}")
        return arr

    def forward(self, params: dict, feeds: dict, training: bool = False,
                rng: np.random.Generator | None = None, check: bool = True) -> dict:
        """Returns every output port's value keyed (node_id, port)."""
        with np.errstate(all="ignore"):  # non-finite values are found and named below instead
            return self._forward(params, feeds, training, rng, check)

    def _forward(self, params, feeds, training, rng, check) -> dict:
        rng = rng if rng is not None else np.random.default_rng(0)
        values, ctxs = {}, {}
        for s in self.plan.steps:
            if s.layer.is_source:
                if s.node_id not in feeds:
                    raise InputError(f"no data fed to {s.layer.type_id} {s.node_id!r}")
                values[(s.node_id, s.outputs[0])] = self.feed(s, feeds[s.node_id])
                continue
            xs = [values[r] if r is not None else None for r in s.inputs]
            p = {k[len(s.node_id) + 1:]: params[k] for k in s.param_keys}
            ctx = Ctx(training, rng, s.needs_input_grad)
            out = s.layer.forward(s.attrs, p, ctx, *xs)
            ctxs[s.node_id] = ctx
            outs = (out,) if len(s.outputs) == 1 else out
            for port, y in zip(s.outputs, outs):
                values[(s.node_id, port)] = y
        self.values, self.ctxs = values, ctxs
        if check:
            terminal = [ref for ref in values if ref not in self.plan.consumers]
            if not all(_finite(values[r]) for r in terminal):
                self._raise_first_nonfinite_forward()
        return values

    def _raise_first_nonfinite_forward(self) -> None:
        for s in self.plan.steps:
            for port in s.outputs:
                y = self.values[(s.node_id, port)]
                if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
                    raise NonFiniteError(s.node_id, s.layer.type_id, "forward")

    def backward(self, params: dict, check: bool = True) -> dict:
        """Seed every loss with 1 and return ``{param_key: grad}`` for the trainable parameters."""
        with np.errstate(all="ignore"):
            return self._backward(params, check, trace=False)

    def _backward(self, params: dict, check: bool, trace: bool) -> dict:
        grads: dict = {}
        pending: dict = {}
        for node_id in self.plan.losses:
            step = self.plan.step(node_id)
            y = self.values[(node_id, step.outputs[0])]
            pending[(node_id, step.outputs[0])] = np.ones_like(y)
        for s in reversed(self.plan.steps):
            if s.layer.is_source or not s.requires_grad:
                continue
            dys = [pending.pop((s.node_id, port), None) for port in s.outputs]
            if all(d is None for d in dys):
                continue
            dys = [np.zeros_like(self.values[(s.node_id, port)]) if d is None else d
                   for d, port in zip(dys, s.outputs)]
            p = {k[len(s.node_id) + 1:]: params[k] for k in s.param_keys}
            in_grads, p_grads = s.layer.backward(s.attrs, p, self.ctxs[s.node_id], *dys)
            if s.trainable:
                for key in s.grad_keys:
                    grads[key] = p_grads[key[len(s.node_id) + 1:]]
            for ref, g, need in zip(s.inputs, in_grads, s.needs_input_grad):
                if need and g is not None:
                    pending[ref] = pending[ref] + g if ref in pending else g
                    if trace and not np.isfinite(g).all():
                        raise NonFiniteError(s.node_id, s.layer.type_id, "backward")
            if trace and s.trainable and not all(np.isfinite(p_grads[k]).all() for k in p_grads):
                raise NonFiniteError(s.node_id, s.layer.type_id, "backward")
        if check and not all(_finite(g) for g in grads.values()):
            self._backward(params, check=False, trace=True)
        return grads
