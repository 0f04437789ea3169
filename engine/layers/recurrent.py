"""Recurrent layers as ``torch.nn.RNN``/``LSTM``/``GRU`` (one layer, ``batch_first=True``).

Each has two outputs: ``seq``, the hidden state at every step (N×T×H, or N×T×2H with the reverse
direction concatenated after the forward one, as PyTorch's ``output``), and ``last``, the final
hidden state of each direction (N×H or N×2H: the forward direction's state after step T-1 beside
the reverse direction's after step 0, i.e. ``h_n`` transposed to batch first and flattened).
The initial state is zero. Parameters are named and laid out as PyTorch's (``weight_ih_l0``
G·H×D, ``weight_hh_l0`` G·H×H, ``bias_ih_l0``, ``bias_hh_l0``, and ``*_reverse``), so a node's
weights load into ``nn.LSTM(D, H, batch_first=True, bidirectional=...)`` unchanged.

Work is arranged for products over all steps: the input projection and, in backprop through time
(which keeps every step's pre-activation gradient), the weight gradients; float32 runs each
direction's whole time loop compiled (``kernels.recurrent_loop``, the per-step products against
a weight packed once, ``kernels.packed``). Arrays inside are time-major (T×N×·).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.dense import matmul, weight_first
from layerloom.engine.kernels.packed import PANEL, packed
from layerloom.engine.kernels.recurrent_loop import (gru_backward_loop, gru_forward_loop,
                                                    lstm_backward_loop, lstm_forward_loop,
                                                    rnn_backward_loop, rnn_forward_loop)
from layerloom.engine.kernels.recurrent import gru_gates, gru_output, lstm_gates
from layerloom.engine.registry import register
from layerloom.engine.threads import row_parts, run_row_parts
from layerloom.engine.spec import Bool, Example, Int, Layer, ShapeError, TorchCode, fmt_shape, uniform_fan_in

# The recurrent layers' two outputs in exported PyTorch code
TORCH_RECURRENT = '''
def recurrent(module, x):
    """(every step's output, the last hidden state with both directions side by side), as
    Layerloom's recurrent layers give them."""
    seq, h_n = module(x)
    if isinstance(h_n, tuple):  # an LSTM's (h_n, c_n)
        h_n = h_n[0]
    return seq, h_n.transpose(0, 1).reshape(len(x), -1)
'''


def _order(steps: int, reverse: bool) -> range:
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _project(x_tm: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """All steps' ``x @ wᵀ + b`` at once: (T, N, D) -> (T, N, G)."""
    t, n, d = x_tm.shape
    return matmul(x_tm.reshape(t * n, d), w.T, b).reshape(t, n, w.shape[0])


def _prev(seq: np.ndarray, t: int, reverse: bool, zeros: np.ndarray) -> np.ndarray:
    """The state the step at time ``t`` started from (zeros for the first step processed)."""
    s = t + 1 if reverse else t - 1
    return seq[s] if 0 <= s < len(seq) else zeros


def _part_grads(dxg: np.ndarray, dhg: np.ndarray, x_tm: np.ndarray, hs: np.ndarray,
                reverse: bool, bias: bool) -> list[np.ndarray]:
    """A batch part's dW_ih over all steps, its dW_hh pairing each step with the state it
    started from, and with ``bias`` the biases' (sums over all steps as one BLAS product: 3×
    numpy's sum here; an LSTM's and RNN's two are the same array, dxg is dhg)."""
    g, d, h = dxg.shape[2], x_tm.shape[2], hs.shape[2]
    dw_ih = matmul(dxg.reshape(-1, g).T, x_tm.reshape(-1, d))
    later, earlier = (dhg[:-1], hs[1:]) if reverse else (dhg[1:], hs[:-1])
    out = [dw_ih, matmul(later.reshape(-1, g).T, earlier.reshape(-1, h))]
    if bias:
        ones = np.ones(dxg.shape[0] * dxg.shape[1], dxg.dtype)
        db = ones @ dxg.reshape(len(ones), -1)
        out += [db, db.copy() if dhg is dxg else ones @ dhg.reshape(len(ones), -1)]
    return out


# -------------------------------------------------------------------- one direction per cell
def _sigmoid_scale(hsz: int, kinds: str, dtype) -> np.ndarray:
    """½ on the rows of sigmoid gates ("s"), 1 on tanh gates ("t"): σ(v) = ½·tanh(v/2) + ½."""
    return np.repeat(np.array([0.5 if k == "s" else 1.0 for k in kinds], dtype=dtype), hsz)


RECURRENT_MIN_ROWS, RECURRENT_MAX_ROWS = 4, 64


class _Recurrence:
    """float64's ``h @ wᵀ`` for every step of one direction, arranged for the BLAS
    (``weight_first``; float32's runs against a weight packed once, ``kernels.packed``)."""

    def __init__(self, w: np.ndarray, rows: int):
        self.transposed = weight_first(rows, w.T, RECURRENT_MAX_ROWS, RECURRENT_MIN_ROWS)
        self.w = np.ascontiguousarray(w if self.transposed else w.T)  # w.T as a view: 1.4× slower
        self.shape = (len(w), rows) if self.transposed else (rows, len(w))
        self.out: np.ndarray | None = None  # made on the first call

    def __call__(self, h: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The product (rows, G) into ``out``, or a view of a buffer the next call overwrites."""
        if self.out is None:
            self.out = np.empty(self.shape, self.w.dtype)
        if not self.transposed:
            return np.matmul(h, self.w, out=self.out if out is None else out)
        t = np.matmul(self.w, h.T, out=self.out).T
        if out is None:
            return t
        np.copyto(out, t)
        return out


def _rnn_run(x_tm, w_ih, w_hh, b_ih, b_hh, reverse):
    hs = _project(x_tm, w_ih, None if b_ih is None else b_ih + b_hh)  # becomes h in place
    if hs.dtype == np.float32:  # the whole loop compiled, without the GIL (kernels.recurrent_loop)
        rnn_forward_loop(hs, packed(w_hh.T), reverse)
        return hs, ()
    recurrence = _Recurrence(w_hh, hs.shape[1])
    for k, s in enumerate(_order(len(hs), reverse)):
        if k:
            hs[s] += recurrence(hs[s + 1 if reverse else s - 1])
        np.tanh(hs[s], out=hs[s])
    return hs, ()


def _loop_args(dhs, dlast, w_hh, dtype) -> tuple:
    """The backward loops' operands: dhs and W_hh contiguous in the layer's dtype, a copy of
    dlast that the loop turns into each step's recurrent gradient in place, and W_hh packed for
    float32's products (``kernels.packed``; none for float64, whose products stay numpy's)."""
    w_hh = np.ascontiguousarray(w_hh, dtype)
    panels = packed(w_hh) if dtype == np.float32 else np.empty((0, 0, PANEL), np.float32)
    return np.ascontiguousarray(dhs), np.array(dlast, dtype=dtype, order="C"), w_hh, panels


def _rnn_grad(dhs, dlast, hs, saved, x_tm, w_ih, w_hh, reverse):
    dhs, drec, w_hh, panels = _loop_args(dhs, dlast, w_hh, hs.dtype)
    dpre = np.empty_like(hs)
    rnn_backward_loop(dhs, drec, hs, w_hh, panels, reverse, dpre, hs.dtype.type(1))
    return dpre, dpre


def _lstm_run(x_tm, w_ih, w_hh, b_ih, b_hh, reverse):
    g4, dtype = w_ih.shape[0], x_tm.dtype
    hsz, scale = g4 // 4, _sigmoid_scale(g4 // 4, "ssts", dtype)
    bias = None if b_ih is None else (b_ih + b_hh) * scale
    gates = _project(x_tm, w_ih * scale[:, None], bias)  # each step adds h @ W_hhᵀ in place
    t, n, _ = gates.shape
    hs, cs, tcs = (np.empty((t, n, hsz), dtype) for _ in range(3))
    if dtype == np.float32:  # the whole loop compiled, without the GIL (kernels.recurrent_loop)
        lstm_forward_loop(gates, packed((w_hh * scale[:, None]).T), hs, cs, tcs, reverse)
        return hs, (gates, cs, tcs)
    recurrence = _Recurrence(w_hh * scale[:, None], n)
    zeros, one = np.zeros((n, hsz), dtype), dtype.type(1)
    for k, s in enumerate(_order(t, reverse)):
        g = gates[s]
        if k:
            g += recurrence(_prev(hs, s, reverse, zeros))
        np.tanh(g, out=g)
        lstm_gates(g, _prev(cs, s, reverse, zeros), cs[s], one)
        np.tanh(cs[s], out=tcs[s])
        np.multiply(g[:, 3 * hsz:], tcs[s], out=hs[s])
    return hs, (gates, cs, tcs)


def _lstm_grad(dhs, dlast, hs, saved, x_tm, w_ih, w_hh, reverse):
    gates, cs, tcs = saved
    dhs, drec, w_hh, panels = _loop_args(dhs, dlast, w_hh, hs.dtype)
    dpre = np.empty_like(gates)
    lstm_backward_loop(dhs, drec, gates, cs, tcs, w_hh, panels, reverse, dpre,
                       hs.dtype.type(1))
    return dpre, dpre


def _gru_run(x_tm, w_ih, w_hh, b_ih, b_hh, reverse):
    g3, dtype = w_ih.shape[0], x_tm.dtype
    hsz, scale = g3 // 3, _sigmoid_scale(g3 // 3, "sst", dtype)
    xg = _project(x_tm, w_ih * scale[:, None], None if b_ih is None else b_ih * scale)
    b_hh = None if b_hh is None else b_hh * scale
    t, n, _ = xg.shape
    hs, hns, gates = np.empty((t, n, hsz), dtype), np.empty((t, n, hsz), dtype), np.empty_like(xg)
    if dtype == np.float32:  # the whole loop compiled, without the GIL (kernels.recurrent_loop)
        gru_forward_loop(xg, packed((w_hh * scale[:, None]).T),
                         np.zeros(0, dtype) if b_hh is None else b_hh, hs, hns, gates, reverse)
        return hs, (gates, hns)
    recurrence = _Recurrence(w_hh * scale[:, None], n)
    hg, zeros, one = np.empty((n, g3), dtype), np.zeros((n, hsz), dtype), dtype.type(1)
    rz = slice(0, 2 * hsz)
    for s in _order(t, reverse):
        h_prev, g = _prev(hs, s, reverse, zeros), gates[s]
        recurrence(h_prev, out=hg)
        if b_hh is not None:
            hg += b_hh
        np.add(xg[s][:, rz], hg[:, rz], out=g[:, rz])
        np.tanh(g[:, rz], out=g[:, rz])
        gru_gates(g, xg[s], hg, hns[s], one)  # n's pre-activation needs r: a second tanh
        np.tanh(g[:, 2 * hsz:], out=g[:, 2 * hsz:])
        gru_output(g, h_prev, hs[s], one)
    return hs, (gates, hns)


def _gru_grad(dhs, dlast, hs, saved, x_tm, w_ih, w_hh, reverse):
    gates, hns = saved
    dhs, drec, w_hh, panels = _loop_args(dhs, dlast, w_hh, hs.dtype)
    dxg, dhg = np.empty_like(gates), np.empty_like(gates)
    gru_backward_loop(dhs, drec, gates, hns, hs, w_hh, panels, reverse, dxg, dhg,
                      hs.dtype.type(1))
    return dxg, dhg


CELLS = {"SimpleRNN": (1, _rnn_run, _rnn_grad), "LSTM": (4, _lstm_run, _lstm_grad),
         "GRU": (3, _gru_run, _gru_grad)}


# ----------------------------------------------------------------------------- the layers
class _Recurrent(Layer):
    category = "Recurrent"
    outputs = ("seq", "last")
    # its batch's rows split over the engine's cores (run_row_parts), each part with a one-thread
    # BLAS; the big products split the same way (dense.matmul). The char-LSTM at h 256 trained
    # a step in 45 ms so at two cores, in 65 ms with the cores given to OpenBLAS instead.
    parallel_kernels = True
    attrs = {
        "hidden_size": Int(64, "size of the hidden state h", min=1, max=100_000),
        "bidirectional": Bool(False, "also run a second layer from the last step to the first "
                                     "and concatenate both"),
        "bias": Bool(True, "learn the biases b_ih and b_hh"),
    }

    @classmethod
    def label(cls, a) -> str:
        return f"{a['hidden_size']}" + (" ⇄" if a["bidirectional"] else "")

    @staticmethod
    def _suffixes(a) -> tuple:
        return ("_l0", "_l0_reverse") if a.bidirectional else ("_l0",)

    @classmethod
    def infer(cls, a, x):
        if len(x) != 3:
            raise ShapeError(f"expects sequences (N, steps, features), got {fmt_shape(x)}")
        width = a.hidden_size * (2 if a.bidirectional else 1)
        return (x[0], x[1], width), (x[0], width)

    @classmethod
    def param_shapes(cls, a, in_shapes):
        gates, hsz = CELLS[cls.__name__][0], a.hidden_size
        sizes = {"weight_ih": (gates * hsz, in_shapes[0][-1]), "weight_hh": (gates * hsz, hsz)}
        if a.bias:
            sizes.update(bias_ih=(gates * hsz,), bias_hh=(gates * hsz,))
        return {name + sfx: shape for sfx in cls._suffixes(a) for name, shape in sizes.items()}

    @classmethod
    def init(cls, a, in_shapes, rng):
        # Every weight and bias ~ U(-1/√H, 1/√H), as torch.nn.RNNBase.reset_parameters.
        return {name: uniform_fan_in(rng, shape, a.hidden_size)
                for name, shape in cls.param_shapes(a, in_shapes).items()}

    @classmethod
    def forward(cls, a, p, ctx, x):
        _, run, _ = CELLS[cls.__name__]
        x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))
        parts = row_parts(len(x))

        def run_part(lo, hi):  # every direction over the batch rows lo:hi (see engine.threads)
            xp = x_tm if hi - lo == len(x) else np.ascontiguousarray(x_tm[:, lo:hi])
            return [run(xp, p["weight_ih" + sfx], p["weight_hh" + sfx], p.get("bias_ih" + sfx),
                        p.get("bias_hh" + sfx), reverse=k == 1)
                    for k, sfx in enumerate(cls._suffixes(a))]
        runs = run_row_parts(run_part, parts)
        ctx.save(x_tm, parts, runs)
        hsz, seq = a.hidden_size, np.empty(x.shape[:2] + (cls.infer(a, x.shape)[1][1],), x.dtype)
        last = np.empty((len(x), seq.shape[2]), x.dtype)
        for (lo, hi), directions in zip(parts, runs):
            for k, (hs, _) in enumerate(directions):
                seq[lo:hi, :, k * hsz:(k + 1) * hsz] = hs.transpose(1, 0, 2)
                last[lo:hi, k * hsz:(k + 1) * hsz] = hs[0 if k else -1]
        return seq, last

    @classmethod
    def backward(cls, a, p, ctx, dseq, dlast):
        _, _, grad = CELLS[cls.__name__]
        x_tm, parts, runs = ctx.saved
        hsz = a.hidden_size
        dseq_tm = np.ascontiguousarray(dseq.transpose(1, 0, 2))
        wants_dx, grads = ctx.needs_input_grad[0], {}
        dx = np.zeros((len(dseq), len(x_tm), x_tm.shape[2]), x_tm.dtype) if wants_dx else None
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if a.bias else ())
        for k, sfx in enumerate(cls._suffixes(a)):
            cols = slice(k * hsz, (k + 1) * hsz)
            w_ih, w_hh = p["weight_ih" + sfx], p["weight_hh" + sfx]

            def grad_part(lo, hi, k=k, cols=cols, w_ih=w_ih, w_hh=w_hh):
                """This part's share of every gradient: no joining of the parts' 8 MB (LSTM
                h 256, b32, s64) and no second hand-over per product."""
                hs, saved = runs[parts.index((lo, hi))][k]
                xp = x_tm if hi - lo == len(x_tm[0]) else np.ascontiguousarray(x_tm[:, lo:hi])
                dxg, dhg = grad(np.ascontiguousarray(dseq_tm[:, lo:hi, cols]), dlast[lo:hi, cols],
                                hs, saved, xp, w_ih, w_hh, reverse=k == 1)
                if wants_dx:  # rows of its own
                    dx[lo:hi] += _project(dxg, w_ih.T, None).transpose(1, 0, 2)
                return _part_grads(dxg, dhg, xp, hs, k == 1, a.bias)
            shares = run_row_parts(grad_part, parts)
            for name, values in zip(names, zip(*shares)):
                total = values[0]
                for more in values[1:]:
                    total += more
                grads[name + sfx] = total
        return (dx,), grads

    @classmethod
    def to_torch(cls, a, in_shapes):
        module = {"SimpleRNN": "RNN"}.get(cls.__name__, cls.__name__)
        return TorchCode("recurrent({m}, {x})",
                         f"nn.{module}({in_shapes[0][-1]}, {a.hidden_size}, batch_first=True, "
                         f"bias={a.bias}, bidirectional={a.bidirectional})", (TORCH_RECURRENT,))

    @classmethod
    def to_onnx(cls, a, in_shapes, g, x):
        """ONNX's RNN/LSTM/GRU run time-major with their own gate order (LSTM i o f c, GRU z r
        h): the weights are restacked per direction, the outputs put back batch-first."""
        hsz, dirs = a.hidden_size, 2 if a.bidirectional else 1
        op, order = {"SimpleRNN": ("RNN", [0]), "LSTM": ("LSTM", [0, 3, 1, 2]),
                     "GRU": ("GRU", [1, 0, 2])}[cls.__name__]

        def gates(name):  # per direction, PyTorch's gate blocks in ONNX's order
            return np.stack([np.concatenate([g.value(name + sfx)[k * hsz:(k + 1) * hsz]
                                             for k in order]) for sfx in cls._suffixes(a)])
        bias = (g.const(np.concatenate([gates("bias_ih"), gates("bias_hh")], axis=1))
                if a.bias else "")
        extra = {"linear_before_reset": 1} if op == "GRU" else {}  # PyTorch's GRU
        seq, last = g.op(op, g.op("Transpose", x, perm=[1, 0, 2]), g.const(gates("weight_ih")),
                         g.const(gates("weight_hh")), bias, outputs=2, hidden_size=hsz,
                         direction="bidirectional" if a.bidirectional else "forward", **extra)
        width = g.const([0, 0, dirs * hsz], np.int64)  # (T, dirs, N, H) -> (N, T, dirs·H)
        seq = g.op("Reshape", g.op("Transpose", seq, perm=[2, 0, 1, 3]), width)
        last = g.op("Reshape", g.op("Transpose", last, perm=[1, 0, 2]),
                    g.const([0, dirs * hsz], np.int64))
        return seq, last


_EXAMPLES = (Example({"hidden_size": 4}, ((3, 5, 2),)),
             Example({"hidden_size": 3, "bidirectional": True}, ((2, 4, 3),)),
             Example({"hidden_size": 3, "bias": False}, ((2, 3, 2),)))


# The Explain tab's shared parts: the outputs, and the weight gradients summed over the steps
_OUTPUTS = ("{hidden_size} units; seq = (h<sub>1</sub>, …, h<sub>T</sub>), last = h<sub>T</sub>; "
            "bidirectional = {bidirectional} (if True, a second pass from the last step is "
            "concatenated)")
_WEIGHT_GRADS = ("dL/dx<sub>t</sub> = W<sub>ih</sub><sup>T</sup>·da<sub>t</sub>, dL/dW<sub>ih</sub>"
                 " = Σ<sub>t</sub> da<sub>t</sub>·x<sub>t</sub><sup>T</sup>, dL/dW<sub>hh</sub> = "
                 "Σ<sub>t</sub> da<sub>t</sub>·h<sub>t−1</sub><sup>T</sup>, dL/db = Σ<sub>t</sub> "
                 "da<sub>t</sub>")


@register
class SimpleRNN(_Recurrent):
    """Elman recurrent layer: h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh), as nn.RNN."""

    formula = ("h<sub>t</sub> = tanh(W<sub>ih</sub>·x<sub>t</sub> + b<sub>ih</sub> + "
               "W<sub>hh</sub>·h<sub>t−1</sub> + b<sub>hh</sub>), h<sub>0</sub> = 0; " + _OUTPUTS)
    backward_formula = ("through time, last step first: dL/dh<sub>t</sub> = dL/dseq<sub>t</sub> + "
                        "W<sub>hh</sub><sup>T</sup>·da<sub>t+1</sub>, da<sub>t</sub> = "
                        "dL/dh<sub>t</sub>·(1 − h<sub>t</sub><sup>2</sup>); " + _WEIGHT_GRADS)
    examples = _EXAMPLES


@register
class LSTM(_Recurrent):
    """Long short-term memory: gated cell state that carries information across many steps."""

    formula = ("i, f, g, o = σ, σ, tanh, σ of W<sub>ih</sub>·x<sub>t</sub> + b<sub>ih</sub> + "
               "W<sub>hh</sub>·h<sub>t−1</sub> + b<sub>hh</sub>; c<sub>t</sub> = f·c<sub>t−1</sub>"
               " + i·g, h<sub>t</sub> = o·tanh(c<sub>t</sub>); " + _OUTPUTS)
    backward_formula = ("through time, last step first: dL/dc<sub>t</sub> = dL/dh<sub>t</sub>·o·(1"
                        " − tanh<sup>2</sup>c<sub>t</sub>) + dL/dc<sub>t+1</sub>·f<sub>t+1</sub>; "
                        "dL/di = dL/dc<sub>t</sub>·g, dL/df = dL/dc<sub>t</sub>·c<sub>t−1</sub>, "
                        "dL/dg = dL/dc<sub>t</sub>·i, dL/do = "
                        "dL/dh<sub>t</sub>·tanh(c<sub>t</sub>), each times its gate's derivative "
                        "to give da<sub>t</sub>; "
                        + _WEIGHT_GRADS)
    examples = _EXAMPLES


@register
class GRU(_Recurrent):
    """Gated recurrent unit: a lighter LSTM with reset and update gates, as nn.GRU."""

    formula = ("r, z = σ(W<sub>i</sub>·x<sub>t</sub> + b<sub>i</sub> + "
               "W<sub>h</sub>·h<sub>t−1</sub> + b<sub>h</sub>), n = "
               "tanh(W<sub>in</sub>·x<sub>t</sub> + b<sub>in</sub> + "
               "r·(W<sub>hn</sub>·h<sub>t−1</sub> + b<sub>hn</sub>)), h<sub>t</sub> = (1 − z)·n + "
               "z·h<sub>t−1</sub>; " + _OUTPUTS)
    backward_formula = ("through time, last step first: dL/dn = dL/dh<sub>t</sub>·(1 − z), dL/dz ="
                        " dL/dh<sub>t</sub>·(h<sub>t−1</sub> − n), dL/dr = dL/dn·(1 − "
                        "n<sup>2</sup>)·(W<sub>hn</sub>·h<sub>t−1</sub> + b<sub>hn</sub>), each "
                        "times its gate's derivative to give da<sub>t</sub>; dL/dh<sub>t−1</sub> ="
                        " dL/dh<sub>t</sub>·z + W<sub>hh</sub><sup>T</sup>·da<sub>t</sub>; "
                        + _WEIGHT_GRADS)
    examples = _EXAMPLES
