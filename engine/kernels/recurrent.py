"""One time step of the SimpleRNN, LSTM and GRU cells, fused, beside the numpy twins that define them.

The big matrix products (the input projection of every step at once, ``h @ W_hhᵀ`` per step, and
the weight gradients over all steps) go to numpy's BLAS in ``engine/layers/recurrent.py``; what is
left per step is element-wise (gate non-linearities, state updates and their derivatives), and
that is fused here into one pass that writes into preallocated arrays. Gate order is PyTorch's:
LSTM (i, f, g, o), GRU (r, z, n). ``xg`` is a step's input projection (biases folded in, except
the GRU's ``b_hh``, which sits in ``hg`` because the n gate scales it by r), ``hg = h_prev @ W_hhᵀ``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


# ------------------------------------------------------------------------- numpy twins
def sigmoid_reference(v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(+big) = inf gives exactly 0, the right limit
        return 1.0 / (1.0 + np.exp(-v))


def rnn_step_forward_reference(xg, hg):
    """h = tanh(xg + hg)."""
    return np.tanh(xg + hg)


def rnn_step_backward_reference(dy, drec, h):
    """Gradient of the pre-activation from the step's output grad plus the recurrent grad."""
    return (dy + drec) * (1 - h * h)


def lstm_step_forward_reference(xg, hg, c_prev):
    """Returns (gates (i, f, g, o) activated, c, tanh(c), h)."""
    hsz = xg.shape[1] // 4
    pre = xg + hg
    i, f = sigmoid_reference(pre[:, :hsz]), sigmoid_reference(pre[:, hsz:2 * hsz])
    g, o = np.tanh(pre[:, 2 * hsz:3 * hsz]), sigmoid_reference(pre[:, 3 * hsz:])
    c = f * c_prev + i * g
    tc = np.tanh(c)
    return np.concatenate([i, f, g, o], axis=1), c, tc, o * tc


def lstm_step_backward_reference(dy, drec, dc, gates, c_prev, tc):
    """Returns (d pre-activations, dc for the previous step)."""
    hsz = gates.shape[1] // 4
    i, f, g, o = (gates[:, k * hsz:(k + 1) * hsz] for k in range(4))
    dh = dy + drec
    dcc = dc + dh * o * (1 - tc * tc)
    dpre = np.concatenate([dcc * g * i * (1 - i), dcc * c_prev * f * (1 - f),
                           dcc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
    return dpre, dcc * f


def gru_step_forward_reference(xg, hg, h_prev):
    """``hg`` includes b_hh. Returns (gates (r, z, n) activated, h)."""
    hsz = xg.shape[1] // 3
    r = sigmoid_reference(xg[:, :hsz] + hg[:, :hsz])
    z = sigmoid_reference(xg[:, hsz:2 * hsz] + hg[:, hsz:2 * hsz])
    n = np.tanh(xg[:, 2 * hsz:] + r * hg[:, 2 * hsz:])
    return np.concatenate([r, z, n], axis=1), (1 - z) * n + z * h_prev


def gru_step_backward_reference(dy, drec, gates, hn, h_prev):
    """``hn`` is the n gate's hidden part (W_hn h + b_hn). Returns (dxg, dhg, dh_prev direct part)."""
    hsz = gates.shape[1] // 3
    r, z, n = (gates[:, k * hsz:(k + 1) * hsz] for k in range(3))
    dh = dy + drec
    dn = dh * (1 - z) * (1 - n * n)
    dr = dn * hn * r * (1 - r)
    dz = dh * (h_prev - n) * z * (1 - z)
    return (np.concatenate([dr, dz, dn], axis=1), np.concatenate([dr, dz, dn * r], axis=1),
            dh * z)


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True, inline="always")
def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@njit(cache=True, nogil=True)
def rnn_step_forward(xg, hg, h):
    n, hsz = xg.shape
    for b in range(n):
        for j in range(hsz):
            h[b, j] = math.tanh(xg[b, j] + hg[b, j])


@njit(cache=True, nogil=True)
def rnn_step_backward(dy, drec, h, dpre):
    n, hsz = h.shape
    for b in range(n):
        for j in range(hsz):
            v = h[b, j]
            dpre[b, j] = (dy[b, j] + drec[b, j]) * (1.0 - v * v)


@njit(cache=True, nogil=True)
def lstm_step_forward(xg, hg, c_prev, gates, c, tc, h):
    n, g4 = xg.shape
    hsz = g4 // 4
    for b in range(n):
        for j in range(hsz):
            i = _sigmoid(xg[b, j] + hg[b, j])
            f = _sigmoid(xg[b, hsz + j] + hg[b, hsz + j])
            g = math.tanh(xg[b, 2 * hsz + j] + hg[b, 2 * hsz + j])
            o = _sigmoid(xg[b, 3 * hsz + j] + hg[b, 3 * hsz + j])
            cc = f * c_prev[b, j] + i * g
            t = math.tanh(cc)
            gates[b, j], gates[b, hsz + j], gates[b, 2 * hsz + j], gates[b, 3 * hsz + j] = i, f, g, o
            c[b, j], tc[b, j], h[b, j] = cc, t, o * t


@njit(cache=True, nogil=True)
def lstm_step_backward(dy, drec, dc, gates, c_prev, tc, dpre):
    """Writes the pre-activation grads into ``dpre`` and replaces ``dc`` by the previous step's."""
    n, hsz = dc.shape
    for b in range(n):
        for j in range(hsz):
            i, f = gates[b, j], gates[b, hsz + j]
            g, o = gates[b, 2 * hsz + j], gates[b, 3 * hsz + j]
            dh = dy[b, j] + drec[b, j]
            t = tc[b, j]
            dcc = dc[b, j] + dh * o * (1.0 - t * t)
            dpre[b, j] = dcc * g * i * (1.0 - i)
            dpre[b, hsz + j] = dcc * c_prev[b, j] * f * (1.0 - f)
            dpre[b, 2 * hsz + j] = dcc * i * (1.0 - g * g)
            dpre[b, 3 * hsz + j] = dh * t * o * (1.0 - o)
            dc[b, j] = dcc * f


@njit(cache=True, nogil=True)
def gru_step_forward(xg, hg, h_prev, gates, hn, h):
    n, g3 = xg.shape
    hsz = g3 // 3
    for b in range(n):
        for j in range(hsz):
            r = _sigmoid(xg[b, j] + hg[b, j])
            z = _sigmoid(xg[b, hsz + j] + hg[b, hsz + j])
            m = hg[b, 2 * hsz + j]
            nn = math.tanh(xg[b, 2 * hsz + j] + r * m)
            gates[b, j], gates[b, hsz + j], gates[b, 2 * hsz + j] = r, z, nn
            hn[b, j] = m
            h[b, j] = (1.0 - z) * nn + z * h_prev[b, j]


@njit(cache=True, nogil=True)
def gru_step_backward(dy, drec, gates, hn, h_prev, dxg, dhg, dh_direct):
    n, hsz = h_prev.shape
    for b in range(n):
        for j in range(hsz):
            r, z, nn = gates[b, j], gates[b, hsz + j], gates[b, 2 * hsz + j]
            dh = dy[b, j] + drec[b, j]
            dn = dh * (1.0 - z) * (1.0 - nn * nn)
            dr = dn * hn[b, j] * r * (1.0 - r)
            dz = dh * (h_prev[b, j] - nn) * z * (1.0 - z)
            dxg[b, j], dxg[b, hsz + j], dxg[b, 2 * hsz + j] = dr, dz, dn
            dhg[b, j], dhg[b, hsz + j], dhg[b, 2 * hsz + j] = dr, dz, dn * r
            dh_direct[b, j] = dh * z
