"""The element-wise part of one SimpleRNN, LSTM or GRU time step, fused, beside numpy twins.

A step splits three ways (``engine/layers/recurrent.py`` drives it): the matrix product
``h @ W_hhᵀ`` goes to BLAS; the transcendentals go to numpy's ``np.tanh``, whose SIMD loops are
~40× faster here than the scalar libm calls a numba loop makes (4.6 µs vs ~200 µs for 32×512
float32 values, measured); the arithmetic between them is fused here in one pass per step.
Sigmoids are computed as σ(v) = ½·tanh(v/2) + ½, the ½ being folded into the sigmoid gates' rows
of the weights, so one ``np.tanh`` covers all gates at once. Gate order is PyTorch's: LSTM
(i, f, g, o), GRU (r, z, n).

Kernels take ``one`` (1 in the arrays' dtype) so float32 code never mixes in float64 literals,
which would stop vectorisation; rows are sliced before the inner loops for the same reason.
"""
from __future__ import annotations

import numpy as np
from numba import njit


# ------------------------------------------------------------------------- numpy twins
def lstm_gates_reference(act, c_prev):
    """``act`` = tanh(v/2) for i, f, o and tanh(v) for g -> (gates (i, f, g, o), c)."""
    hsz = act.shape[1] // 4
    gates = act.copy()
    for k in (0, 1, 3):
        gates[:, k * hsz:(k + 1) * hsz] = 0.5 * act[:, k * hsz:(k + 1) * hsz] + 0.5
    i, f, g = gates[:, :hsz], gates[:, hsz:2 * hsz], gates[:, 2 * hsz:3 * hsz]
    return gates, f * c_prev + i * g


def lstm_step_backward_reference(dy, drec, dc, gates, c_prev, tc):
    """Returns (d pre-activations, dc for the previous step)."""
    hsz = gates.shape[1] // 4
    i, f, g, o = (gates[:, k * hsz:(k + 1) * hsz] for k in range(4))
    dh = dy + drec
    dcc = dc + dh * o * (1 - tc * tc)
    dpre = np.concatenate([dcc * g * i * (1 - i), dcc * c_prev * f * (1 - f),
                           dcc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
    return dpre, dcc * f


def gru_gates_reference(act, xg, hg):
    """``act[:, :2H]`` = tanh(v/2) for r, z; returns (act with r, z and n's pre-activation
    xg_n + r·hg_n, hn = hg_n)."""
    hsz = act.shape[1] // 3
    out = act.copy()
    out[:, :2 * hsz] = 0.5 * act[:, :2 * hsz] + 0.5
    out[:, 2 * hsz:] = xg[:, 2 * hsz:] + out[:, :hsz] * hg[:, 2 * hsz:]
    return out, hg[:, 2 * hsz:].copy()


def gru_output_reference(gates, h_prev):
    """h = (1 - z)·n + z·h_prev."""
    hsz = gates.shape[1] // 3
    z, n = gates[:, hsz:2 * hsz], gates[:, 2 * hsz:]
    return (1 - z) * n + z * h_prev


def gru_step_backward_reference(dy, drec, gates, hn, h_prev):
    """``hn`` = W_hn h + b_hn. Returns (d input projection, d hidden projection, dh_prev's part
    that bypasses W_hh)."""
    hsz = gates.shape[1] // 3
    r, z, n = (gates[:, k * hsz:(k + 1) * hsz] for k in range(3))
    dh = dy + drec
    dn = dh * (1 - z) * (1 - n * n)
    dr = dn * hn * r * (1 - r)
    dz = dh * (h_prev - n) * z * (1 - z)
    return (np.concatenate([dr, dz, dn], axis=1), np.concatenate([dr, dz, dn * r], axis=1),
            dh * z)


def rnn_step_backward_reference(dy, drec, h):
    """d pre-activation of h = tanh(v) from the step's output grad plus the recurrent grad."""
    return (dy + drec) * (1 - h * h)


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True)
def lstm_gates(act, c_prev, c, one):
    """In place: act -> gates; writes the new cell state into ``c``."""
    n, g4 = act.shape
    hsz = g4 // 4
    half = one / (one + one)
    for b in range(n):
        ai, af, ag, ao = act[b, :hsz], act[b, hsz:2 * hsz], act[b, 2 * hsz:3 * hsz], act[b, 3 * hsz:]
        cp, cc = c_prev[b], c[b]
        for j in range(hsz):
            i = half * ai[j] + half
            f = half * af[j] + half
            ai[j] = i
            af[j] = f
            cc[j] = f * cp[j] + i * ag[j]
        for j in range(hsz):
            ao[j] = half * ao[j] + half


@njit(cache=True, nogil=True)
def lstm_step_backward(dy, drec, dc, gates, c_prev, tc, dpre, one):
    """Writes the pre-activation grads into ``dpre``; replaces ``dc`` by the previous step's."""
    n, hsz = dc.shape
    for b in range(n):
        gi, gf = gates[b, :hsz], gates[b, hsz:2 * hsz]
        gg, go = gates[b, 2 * hsz:3 * hsz], gates[b, 3 * hsz:]
        di, df = dpre[b, :hsz], dpre[b, hsz:2 * hsz]
        dg, do = dpre[b, 2 * hsz:3 * hsz], dpre[b, 3 * hsz:]
        yb, rb, cb, cpb, tb = dy[b], drec[b], dc[b], c_prev[b], tc[b]
        for j in range(hsz):
            i, f, g, o, t = gi[j], gf[j], gg[j], go[j], tb[j]
            dh = yb[j] + rb[j]
            dcc = cb[j] + dh * o * (one - t * t)
            di[j] = dcc * g * i * (one - i)
            df[j] = dcc * cpb[j] * f * (one - f)
            dg[j] = dcc * i * (one - g * g)
            do[j] = dh * t * o * (one - o)
            cb[j] = dcc * f


@njit(cache=True, nogil=True)
def gru_gates(act, xg, hg, hn, one):
    """In place: r, z from their tanh; n's slot gets its pre-activation; ``hn`` = hg's n part."""
    n, g3 = act.shape
    hsz = g3 // 3
    half = one / (one + one)
    for b in range(n):
        ar, az, an = act[b, :hsz], act[b, hsz:2 * hsz], act[b, 2 * hsz:]
        xn, hgn, hb = xg[b, 2 * hsz:], hg[b, 2 * hsz:], hn[b]
        for j in range(hsz):
            r = half * ar[j] + half
            ar[j] = r
            az[j] = half * az[j] + half
            an[j] = xn[j] + r * hgn[j]
            hb[j] = hgn[j]


@njit(cache=True, nogil=True)
def gru_output(gates, h_prev, h, one):
    n, hsz = h.shape
    for b in range(n):
        gz, gn, hp, hb = gates[b, hsz:2 * hsz], gates[b, 2 * hsz:], h_prev[b], h[b]
        for j in range(hsz):
            z = gz[j]
            hb[j] = (one - z) * gn[j] + z * hp[j]


@njit(cache=True, nogil=True)
def gru_step_backward(dy, drec, gates, hn, h_prev, dxg, dhg, dh_direct, one):
    n, hsz = h_prev.shape
    for b in range(n):
        gr, gz, gn = gates[b, :hsz], gates[b, hsz:2 * hsz], gates[b, 2 * hsz:]
        xr, xz, xn = dxg[b, :hsz], dxg[b, hsz:2 * hsz], dxg[b, 2 * hsz:]
        hr, hz, hnn = dhg[b, :hsz], dhg[b, hsz:2 * hsz], dhg[b, 2 * hsz:]
        yb, rb, mb, hp, out = dy[b], drec[b], hn[b], h_prev[b], dh_direct[b]
        for j in range(hsz):
            r, z, nn = gr[j], gz[j], gn[j]
            dh = yb[j] + rb[j]
            dn = dh * (one - z) * (one - nn * nn)
            dr = dn * mb[j] * r * (one - r)
            dz = dh * (hp[j] - nn) * z * (one - z)
            xr[j], xz[j], xn[j] = dr, dz, dn
            hr[j], hz[j], hnn[j] = dr, dz, dn * r
            out[j] = dh * z


@njit(cache=True, nogil=True)
def rnn_step_backward(dy, drec, h, dpre, one):
    n, hsz = h.shape
    for b in range(n):
        yb, rb, hb, db = dy[b], drec[b], h[b], dpre[b]
        for j in range(hsz):
            v = hb[j]
            db[j] = (yb[j] + rb[j]) * (one - v * v)
