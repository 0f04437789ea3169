"""A recurrent direction's whole time loop in one compiled call: LSTM, GRU and SimpleRNN,
forward (float32) and backward.

Driven from Python, each step was several numpy or numba calls (product, add, tanh, gates,
tanh, ...) with the interpreter between them, holding the GIL: the batch's row parts, one per
core (``engine.threads.run_row_parts``), took turns at it, so a char-LSTM of h 128 ran at two
threads barely faster than at one (94 k → 100 k tokens/s, PyTorch 96 k → 131 k), and a GRU or
SimpleRNN of h 128 no faster or slower (a training step at b32, s32, one core / two: GRU 6.6 /
6.1 ms, SimpleRNN 2.0 / 2.5 ms). Here the loop, its BLAS products (``kernels.blas.gemm``) and
the element-wise work run in one ``nogil`` call per part (GRU 5.6 / 3.9 ms, SimpleRNN 1.8 /
1.8 ms; the char-LSTM 100 k → 129-135 k tokens/s at two threads).

The forward needs tanh, which numpy computes with SIMD loops and numba with scalar libm calls
(~40× slower); ``tanh32`` is Eigen's rational approximation of tanh for float32 (odd degree-13
over even degree-6 polynomial, the input clamped to ±7.905: at most 5.5 ulp from the float64
tanh, numpy's own float32 tanh 1.4 ulp; tested), vectorised by numba when division follows
IEEE (``error_model="numpy"``; Python's model tests every divisor for zero and kept the loop
scalar): 5.6 µs for 32 × 512 values against numpy's 6.6. float64 keeps numpy's tanh (the exact
path equal to PyTorch); the backward has no tanh and runs for both dtypes.

The per-step recurrent products of float32 run against the weight packed once per sequence
(``kernels.packed``: 1.7× OpenBLAS at 32 rows, 2.3× at 16); float64's backward products are the
BLAS calls numpy made, so its results are the same bit for bit. Gate orders and the ½ folded
into the sigmoid gates' weights (σ(v) = ½·tanh(v/2) + ½) are ``kernels.recurrent``'s, whose
step backwards the backward loops call (an edit to them or to ``kernels.packed`` recompiles
this file's loops: ``kernels.cache_stamp``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.blas import NO_TRANS, gemm
from layerloom.engine.kernels.packed import gemm_packed
from layerloom.engine.kernels.recurrent import (gru_step_backward, lstm_step_backward,
                                                rnn_step_backward)

# Eigen's generic_fast_tanh_float: tanh(x) ≈ x·p(x²) / q(x²) on [-7.905, 7.905]
_A1, _A3, _A5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), \
    np.float32(1.48572235717979e-05)
_A7, _A9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
_A11, _A13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
_B4, _B6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)
_CLAMP = np.float32(7.90531110763549805)  # beyond it tanh rounds to ±1 in float32
_HALF = np.float32(0.5)


@njit(inline="always")
def _tanh(x):
    v = _CLAMP if x > _CLAMP else x  # a NaN passes both tests and stays NaN
    v = -_CLAMP if v < -_CLAMP else v
    v2 = v * v
    p = ((((((v2 * _A13 + _A11) * v2 + _A9) * v2 + _A7) * v2 + _A5) * v2 + _A3) * v2 + _A1) * v
    return p / (((v2 * _B6 + _B4) * v2 + _B2) * v2 + _B0)


@njit(cache=True, nogil=True, error_model="numpy")
def tanh32(x, out):
    """out = tanh(x) for 1-D float32 arrays (the approximation above; NaN stays NaN)."""
    for i in range(len(x)):
        out[i] = _tanh(x[i])


@njit(cache=True, nogil=True, error_model="numpy")
def _lstm_cell(g, c_prev, c, tc, h):
    """One step's element-wise part, row by row: gates from their pre-activations (in place, as
    ``recurrent.lstm_gates`` leaves them after numpy's tanh), the cell state, its tanh, h."""
    n, hsz = c.shape
    for b in range(n):
        gi, gf, gg, go = g[b, :hsz], g[b, hsz:2 * hsz], g[b, 2 * hsz:3 * hsz], g[b, 3 * hsz:]
        cp, cc, tb, hb = c_prev[b], c[b], tc[b], h[b]
        for j in range(hsz):
            i = _HALF * _tanh(gi[j]) + _HALF
            f = _HALF * _tanh(gf[j]) + _HALF
            gv = _tanh(gg[j])
            o = _HALF * _tanh(go[j]) + _HALF
            cv = f * cp[j] + i * gv
            t = _tanh(cv)
            gi[j], gf[j], gg[j], go[j] = i, f, gv, o
            cc[j], tb[j], hb[j] = cv, t, o * t


@njit(inline="always")
def _step(k, t, reverse, backward):
    """(s, p) of the k-th step a loop processes: its time, and the time its state came from
    (outside 0..t-1 for a direction's first step). Forward loops go the direction's way,
    backward loops the other."""
    s = t - 1 - k if reverse != backward else k
    return s, (s + 1 if reverse else s - 1)


@njit(cache=True, nogil=True, error_model="numpy")
def lstm_forward_loop(gates, w, hs, cs, tcs, reverse):
    """Every step of one direction in place: ``gates`` (T, N, 4H) holds x·W_ihᵀ + b on entry
    (sigmoid rows halved) and the gates on return; hs, cs, tcs get h, c and tanh(c). ``w`` is
    the halved W_hhᵀ packed (``packed.pack``)."""
    t, n, g4 = gates.shape
    hsz = g4 // 4
    zeros = np.zeros((n, hsz), gates.dtype)
    for k in range(t):
        s, p = _step(k, t, reverse, False)
        c_prev = zeros
        if k:
            c_prev = cs[p]
            gemm_packed(hs[p], w, gates[s], True)
        _lstm_cell(gates[s], c_prev, cs[s], tcs[s], hs[s])


@njit(cache=True, nogil=True, error_model="numpy")
def gru_forward_loop(xg, w, b_hh, hs, hns, gates, reverse):
    """Every step of one direction: ``xg`` (T, N, 3H) = x·W_ihᵀ + b_ih (r, z rows halved),
    ``w`` the halved W_hhᵀ packed, ``b_hh`` its halved bias (empty: none).
    gates[s] gets (r, z, n), hns[s] W_hn·h + b_hn, hs[s] h, as ``layers.recurrent._gru_run``'s
    numpy loop leaves them."""
    t, n, g3 = xg.shape
    hsz = g3 // 3
    zeros = np.zeros((n, hsz), xg.dtype)
    hg = np.zeros((n, g3), xg.dtype)
    for k in range(t):
        s, p = _step(k, t, reverse, False)
        h_prev = zeros
        if k:
            h_prev = hs[p]
            gemm_packed(h_prev, w, hg, False)
        for b in range(n):
            row = hg[b]
            if len(b_hh):
                for j in range(g3):
                    row[j] += b_hh[j]
            _gru_cell(xg[s, b], row, h_prev[b], gates[s, b], hns[s, b], hs[s, b], hsz)


@njit(cache=True, nogil=True, error_model="numpy")
def _gru_cell(x, hrow, hp, g, hn, h, hsz):
    """One row of a GRU step from its projections (gate blocks as separate slices, so the loop
    vectorises): r, z, n into g, W_hn·h + b_hn into hn, the new state into h."""
    xr, xz, xn = x[:hsz], x[hsz:2 * hsz], x[2 * hsz:]
    hr, hz, hm = hrow[:hsz], hrow[hsz:2 * hsz], hrow[2 * hsz:]
    gr, gz, gn = g[:hsz], g[hsz:2 * hsz], g[2 * hsz:]
    for j in range(hsz):
        r = _HALF * _tanh(xr[j] + hr[j]) + _HALF
        z = _HALF * _tanh(xz[j] + hz[j]) + _HALF
        m = hm[j]
        nv = _tanh(xn[j] + r * m)
        gr[j], gz[j], gn[j], hn[j] = r, z, nv, m
        h[j] = (1 - z) * nv + z * hp[j]


@njit(cache=True, nogil=True, error_model="numpy")
def rnn_forward_loop(hs, w, reverse):
    """Every step of one direction in place: hs (T, N, H) holds x·W_ihᵀ + b on entry, h on
    return (tanh of it plus h_prev·W_hhᵀ, ``w`` W_hhᵀ packed)."""
    t, n, hsz = hs.shape
    for k in range(t):
        s, p = _step(k, t, reverse, False)
        if k:
            gemm_packed(hs[p], w, hs[s], True)
        for b in range(n):
            row = hs[s, b]
            for j in range(hsz):
                row[j] = _tanh(row[j])


@njit(inline="always")
def _recurrent_grad(d, w_hh, panels, drec):
    """drec (N × H) = d (N × G) · W_hh: float32 through the packed weight (``panels``), float64
    by the BLAS as numpy's product (the exact path)."""
    if len(panels):
        gemm_packed(d, panels, drec, False)
    else:
        n, hsz = drec.shape
        gemm(NO_TRANS, NO_TRANS, n, hsz, d.shape[1], d.ctypes.data, d.shape[1],
             w_hh.ctypes.data, hsz, 0, drec.ctypes.data, hsz, d.itemsize == 8)


@njit(cache=True, nogil=True)
def lstm_backward_loop(dhs, drec, gates, cs, tcs, w_hh, panels, reverse, dpre, one):
    """Every step of one direction backwards, latest first: ``dpre`` (T, N, 4H) gets the
    pre-activations' gradients, ``drec`` (N, H; dh of the last state on entry) the recurrent
    gradient step by step (dpre[s] · W_hh: ``_recurrent_grad``); ``one`` is 1 in the arrays'
    dtype."""
    t, n, hsz = dhs.shape
    zeros = np.zeros((n, hsz), gates.dtype)
    dc = np.zeros((n, hsz), gates.dtype)
    for k in range(t):
        s, p = _step(k, t, reverse, True)
        c_prev = cs[p] if 0 <= p < t else zeros
        lstm_step_backward(dhs[s], drec, dc, gates[s], c_prev, tcs[s], dpre[s], one)
        _recurrent_grad(dpre[s], w_hh, panels, drec)


@njit(cache=True, nogil=True)
def gru_backward_loop(dhs, drec, gates, hns, hs, w_hh, panels, reverse, dxg, dhg, one):
    """Every step of one direction backwards, latest first: dxg, dhg (T, N, 3H) get the input
    and hidden projections' gradients, ``drec`` the recurrent gradient (dhg[s] · W_hh plus the
    direct part z·dh, as numpy's loop made it; ``_recurrent_grad``)."""
    t, n, hsz = dhs.shape
    zeros = np.zeros((n, hsz), gates.dtype)
    direct = np.empty((n, hsz), gates.dtype)
    for k in range(t):
        s, p = _step(k, t, reverse, True)
        h_prev = hs[p] if 0 <= p < t else zeros
        gru_step_backward(dhs[s], drec, gates[s], hns[s], h_prev, dxg[s], dhg[s], direct, one)
        _recurrent_grad(dhg[s], w_hh, panels, drec)
        for b in range(n):
            for j in range(hsz):
                drec[b, j] += direct[b, j]


@njit(cache=True, nogil=True)
def rnn_backward_loop(dhs, drec, hs, w_hh, panels, reverse, dpre, one):
    """Every step of one direction backwards: dpre (T, N, H) the pre-activations' gradients,
    ``drec`` the recurrent gradient (dpre[s] · W_hh: ``_recurrent_grad``)."""
    t, n, hsz = dhs.shape
    for k in range(t):
        s, _ = _step(k, t, reverse, True)
        rnn_step_backward(dhs[s], drec, hs[s], dpre[s], one)
        _recurrent_grad(dpre[s], w_hh, panels, drec)
