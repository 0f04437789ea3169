"""Forward and reverse-mode backward over a Plan.

Gradients are summed where a tensor feeds several layers. Non-finite values are looked for lazily:
the hot path only checks the graph's final outputs and the parameter gradients; when one is bad,
a second look walks the saved values in order to name the first node that produced it.

The executor runs the plan's schedule: fused steps by default (``Plan.schedule``). A fused step
keeps only its last node's output; ``member_values`` recomputes the inner nodes' outputs from the
step's input with the unfused layers when someone asks (the GUI's activation view, and the search
for the first non-finite node, which then names a node inside the fused chain).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.dense import finite as _finite
from layerloom.engine.kernels.sums import add
from layerloom.engine.plan import Plan
from layerloom.engine.spec import Ctx, LayerloomError, fmt_shape
from layerloom.engine.threads import run_row_parts, size_parts


class NonFiniteError(LayerloomError):
    """NaN or inf appeared; ``node_id`` and ``phase`` ("forward"/"backward") say where first."""

    def __init__(self, node_id: str, layer_type: str, phase: str):
        self.node_id, self.layer_type, self.phase = node_id, layer_type, phase
        what = "output" if phase == "forward" else "gradient"
        super().__init__(f"non-finite {what} (NaN or inf) first appeared at {layer_type} "
                         f"{node_id!r} in the {phase} pass")


class InputError(LayerloomError):
    """A batch fed to a source node does not match its declared shape or type."""


def step_params(s, params: dict) -> dict:
    """What a step's layer reads as ``p``: its parameters by their own names ("weight"), or the
    network's whole dict when it reads by full key (``Step.by_full_key``)."""
    if s.by_full_key:
        return params
    return {n: params[k] for n, k in zip(s.param_names, s.param_keys)} if s.param_keys else {}


def run_step(s, params: dict, values: dict, training: bool, rng) -> Ctx:
    """One (non-source) step's forward: reads its inputs from ``values``, adds its outputs keyed
    (node_id, port) and returns its Ctx. Shared by the executor's forward and the partial runs of
    ``engine.seq2seq_parts``, so a value comes out bit for bit the same either way."""
    # Written for a few µs per node: an MLP answering one query spends as long here as in its
    # matrix products. One input (the usual case) is passed without building a list.
    inputs = s.inputs
    ctx = Ctx(training, rng, s.needs_input_grad)
    if len(inputs) == 1 and inputs[0] is not None:
        out = s.layer.forward(s.attrs, step_params(s, params), ctx, values[inputs[0]])
    else:
        out = s.layer.forward(s.attrs, step_params(s, params), ctx,
                              *[values[r] if r is not None else None for r in inputs])
    if len(s.outputs) == 1:
        values[(s.node_id, s.outputs[0])] = out
    else:
        for port, y in zip(s.outputs, out):
            values[(s.node_id, port)] = y
    return ctx


class Executor:
    """Runs one Plan; holds the values and contexts of the last forward for the backward."""

    def __init__(self, plan: Plan, dtype=np.float32, fuse: bool = True):
        self.plan, self.dtype, self.fuse = plan, np.dtype(dtype), fuse
        self.record_grads: dict | None = None  # a dict to fill: node id -> (dL/dY…, dL/dX…)
        self.values: dict = {}
        self.ctxs: dict = {}
        self.schedule: tuple = plan.schedule((), fuse)
        self._ran: tuple = self.schedule  # the schedule of the last forward
        self._wanted = {s.node_id: (s.layer.infer(s.attrs), np.issubdtype(
            np.dtype(s.layer.feed_dtype(s.attrs)), np.floating)) for s in plan.steps if s.layer.is_source}
        self._terminal = tuple(ref for s in plan.steps for ref in ((s.node_id, p) for p in s.outputs)
                               if ref not in plan.consumers)

    def feed(self, step, batch) -> np.ndarray:
        """Cast and check one source batch against the node's declared shape."""
        want, float_like = self._wanted[step.node_id]
        if float_like:  # a batch that already fits is used as is (no numpy call at batch 1)
            fits = (type(batch) is np.ndarray and batch.dtype is self.dtype
                    and batch.flags.c_contiguous)
            if fits and batch.shape[1:] == want[1:]:  # every size fixed and met: nothing to check
                return batch
            arr = batch if fits else np.ascontiguousarray(batch, dtype=self.dtype)
        else:
            arr = np.asarray(batch)
            if not np.issubdtype(arr.dtype, np.integer):
                if arr.size and not np.all(np.mod(arr, 1) == 0):
                    raise InputError(f"{step.node_id!r} expects integer values, got {arr.dtype}")
                arr = arr.astype(np.int64)
        if arr.ndim != len(want) or any(w is not None and w != s for w, s in zip(want, arr.shape)):
            raise InputError(f"{step.node_id!r} expects batches of {fmt_shape(want)}, "
                             f"got {fmt_shape((None,) + arr.shape[1:])}")
        return arr

    def forward(self, params: dict, feeds: dict, training: bool = False,
                rng: np.random.Generator | None = None, check: bool = True, keep=None) -> dict:
        """Returns every computed output port's value keyed (node_id, port).

        ``keep``: node ids whose outputs must be computed and kept (no fusion hides them).
        """
        schedule = self.schedule if not keep else self.plan.schedule(keep, self.fuse)
        return self._forward(schedule, params, feeds, training, rng, check)

    # Non-finite values are found and named by the check instead of numpy's warnings. As a
    # decorator np.errstate costs half of a ``with`` block (0.4 against 0.9 µs a pass).
    @np.errstate(all="ignore")
    def _forward(self, schedule, params, feeds, training, rng, check) -> dict:
        rng = rng if rng is not None else np.random.default_rng(0)
        values, ctxs = {}, {}
        for s in schedule:
            if s.layer.is_source:
                if s.node_id not in feeds:
                    raise InputError(f"no data fed to {s.layer.type_id} {s.node_id!r}")
                values[(s.node_id, s.outputs[0])] = self.feed(s, feeds[s.node_id])
                continue
            ctxs[s.node_id] = run_step(s, params, values, training, rng)
        self.values, self.ctxs, self._ran = values, ctxs, schedule
        if check:
            for ref in self._terminal:
                if ref in values and not _finite(values[ref]):
                    self._raise_first_nonfinite_forward(params)
        return values

    def member_values(self, step, params: dict, values: dict | None = None) -> dict:
        """{node_id: output} of every node a fused step stands for, recomputed unfused from the
        step's input in ``values`` (default: the last forward's; these layers are deterministic)."""
        values = self.values if values is None else values
        replay = getattr(step.layer, "member_outputs", None)  # e.g. BatchNorm's batch statistics
        if replay is not None and values is self.values and step.node_id in self.ctxs:
            outs = replay(step.attrs, step_params(step, params), self.ctxs[step.node_id])
            if outs is not None:
                return {m.node_id: y for m, y in zip(step.members, outs)}
        out, prev = {}, None  # a member reads the one before it, and any other input (a
        with np.errstate(all="ignore"):  # residual Add's shortcut) from ``values``
            for m in step.members:
                xs = [out[prev] if r is not None and r[0] == prev else
                      (values[r] if r is not None else None) for r in m.inputs]
                p = step_params(m, params)
                out[m.node_id] = m.layer.forward(m.attrs, p, Ctx(False, None, m.needs_input_grad),
                                                 *xs)
                prev = m.node_id
        return out

    def _raise_first_nonfinite_forward(self, params: dict) -> None:
        for s in self._ran:
            outs = (self.member_values(s, params) if s.members else
                    {s.node_id: self.values[(s.node_id, p)] for p in s.outputs})
            for node_id, y in outs.items():
                if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
                    step = self.plan.step(node_id)
                    raise NonFiniteError(node_id, step.layer.type_id, "forward")

    def backward(self, params: dict, check: bool = True) -> dict:
        """Seed every loss with 1 and return ``{param_key: grad}`` for the trainable parameters."""
        return self._backward(params, check, trace=False)

    @np.errstate(all="ignore")
    def _backward(self, params: dict, check: bool, trace: bool) -> dict:
        grads: dict = {}
        pending: dict = {}
        for node_id in self.plan.losses:
            ref = (node_id, self.plan.step(node_id).outputs[0])
            pending[ref] = np.ones_like(self.values[ref])
        for s in reversed(self._ran):
            if s.layer.is_source or not s.requires_grad:
                continue
            dys = [pending.pop((s.node_id, port), None) for port in s.outputs]
            if all(d is None for d in dys):
                continue
            dys = [np.zeros_like(self.values[(s.node_id, port)]) if d is None else d
                   for d, port in zip(dys, s.outputs)]
            p = step_params(s, params)
            in_grads, p_grads = s.layer.backward(s.attrs, p, self.ctxs[s.node_id], *dys)
            if self.record_grads is not None:  # the Explain tab's dL/dY and dL/dX per node
                self.record_grads[s.node_id] = (tuple(dys), tuple(in_grads))
            if s.trainable:
                for key, name in zip(s.param_keys, s.param_names):
                    if key in s.grad_keys:
                        grads[key] = p_grads[name]
            if trace:
                self._trace(s, p, dys, in_grads, p_grads)
            for ref, g, need in zip(s.inputs, in_grads, s.needs_input_grad):
                if need and g is not None:
                    pending[ref] = add(pending[ref], g) if ref in pending else g
        if check and not all_finite(list(grads.values())):
            self._backward(params, check=False, trace=True)
        return grads

    def _trace(self, s, p, dys, in_grads, p_grads) -> None:
        """Name the node whose backward first made a non-finite gradient. A fused step names its
        last node when the gradient arrived non-finite (the unfused path would stop there too);
        a Dense chain replays its members' backward to find the one; a convolution chain names its
        first node, where the parameters are."""
        if not _bad(in_grads, p_grads, s.trainable):
            return
        node = s
        if s.members:
            node = s.members[-1] if not all(np.isfinite(d).all() for d in dys) else s.members[0]
            replay = getattr(s.layer, "members_backward", None)
            if node is s.members[0] and replay is not None:
                node = next(s.members[pos] for pos, g, g_params
                            in replay(s.attrs, p, self.ctxs[s.node_id], *dys)
                            if _bad((g,), g_params, s.trainable))
        raise NonFiniteError(node.node_id, node.layer.type_id, "backward")


def all_finite(arrays: list) -> bool:
    """No NaN or ±inf in any of the arrays, runs of them of about equal size checked on the
    cores at once (``size_parts``): on one core the check over a 6-block GPT's 4.8 M gradient
    values took 2.3 ms a step beside kernels that used two."""
    return all(run_row_parts(lambda lo, hi: all(_finite(a) for a in arrays[lo:hi]),
                             size_parts([a.size for a in arrays])))  # one part: on this thread


def _bad(in_grads, p_grads: dict, trainable: bool) -> bool:
    """Some input gradient, or (when they are used) some parameter gradient, is non-finite."""
    return (any(g is not None and not np.isfinite(g).all() for g in in_grads)
            or (trainable and not all(np.isfinite(g).all() for g in p_grads.values())))
