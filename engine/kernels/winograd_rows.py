"""F(4, 3)'s one-dimensional transforms, and their passes along the rows of maps a few tiles wide.

``conv_winograd`` and ``conv_winograd_back`` transform a chunk's tiles first along the columns
(one long loop per tile row of every sample), then along the rows. Where a tile row holds at
most ``COMPACT_TW`` tiles (maps of ≤ 12 columns), V and M keep no spare tile closing each row
(``conv_winograd`` says why), and the pass along the rows is a loop over the tile rows with a
loop over each row's tiles inside. Here that inner loop's length is known when the kernel is
compiled: one body (``_input_rows`` …), inlined at three call sites with 1, 2 and 3 tiles, which
LLVM unrolls. With the length known only at run time the passes ran 1.3-2.1× slower (paired in
one process, chunks of 16 samples, one core; the input transform's: 256 channels on 8×8 maps
0.54 → 0.35 ms, 128 on 8×8 0.29 → 0.18, 128 on 12×12 0.67 → 0.39; the adjoint's 0.64 → 0.46,
0.33 → 0.23, 0.70 → 0.41); the same sums in the same order, so the same values bit for bit.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# The transforms' coefficients as float32: numba types an integer literal times a float32 value
# as float64, and those sums ran at half the vector width with a conversion each way (the input
# transform's pass along the rows 0.059 -> 0.033 ms a chunk of two 32-channel 32×32 samples).
_K2, _K4, _K5, _K8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)
COMPACT_TW = 3  # tile rows of at most this many tiles (maps of ≤ 12 columns): see above


@njit(inline="always")
def _bt4(d0, d1, d2, d3, d4, d5):
    """Bᵀ d of F(4, 3)."""
    return (_K4 * d0 - _K5 * d2 + d4, -_K4 * (d1 + d2) + d3 + d4, _K4 * (d1 - d2) - d3 + d4,
            _K2 * (d3 - d1) - d2 + d4, _K2 * (d1 - d3) - d2 + d4, _K4 * d1 - _K5 * d3 + d5)


@njit(inline="always")
def _at4(m0, m1, m2, m3, m4, m5):
    """Aᵀ m of F(4, 3)."""
    s12, d12, s34, d34 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + s12 + s34, d12 + _K2 * d34, s12 + _K4 * s34, d12 + _K8 * d34 + m5


@njit(inline="always")
def _a4(y0, y1, y2, y3):
    """A y of F(4, 3) (the output transform's adjoint)."""
    return (y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3, y0 + _K2 * y1 + _K4 * y2 + _K8 * y3,
            y0 - _K2 * y1 + _K4 * y2 - _K8 * y3, y3)


@njit(inline="always")
def _b4(v0, v1, v2, v3, v4, v5):
    """B v of F(4, 3) (the input transform's adjoint)."""
    return (_K4 * v0, _K4 * (v2 - v1 + v5) + _K2 * (v4 - v3),
            -_K5 * v0 - _K4 * (v1 + v2) - v3 - v4, v1 - v2 + _K2 * (v3 - v4) - _K5 * v5,
            v0 + v1 + v2 + v3 + v4, v5)


# Each pass: a line of the chunk's scratch rows holds a tile row in a segment of 4·(tw + 1)
# columns (tile k at column 4k of it); the points o0..o5 (or i0..i5, v0..v5) hold tile k of tile
# row ``row`` at row·tw + k. The public names pick the body for tw (1, 2 or 3) at run time.
@njit(inline="always")
def _input_rows(line, o0, o1, o2, o3, o4, o5, rows, tw):
    seg = 4 * (tw + 1)
    for row in range(rows):
        for k in range(tw):
            j, q = row * seg + 4 * k, row * tw + k
            t0, t1, t2, t3, t4, t5 = _bt4(line[j], line[j + 1], line[j + 2], line[j + 3],
                                          line[j + 4], line[j + 5])
            o0[q], o1[q], o2[q], o3[q], o4[q], o5[q] = t0, t1, t2, t3, t4, t5


@njit(inline="always")
def input_rows(line, o0, o1, o2, o3, o4, o5, rows, tw):
    """Bᵀ along the rows: six points of V from a line of the input transform's rows."""
    if tw == 1:
        _input_rows(line, o0, o1, o2, o3, o4, o5, rows, 1)
    elif tw == 2:
        _input_rows(line, o0, o1, o2, o3, o4, o5, rows, 2)
    else:
        _input_rows(line, o0, o1, o2, o3, o4, o5, rows, 3)


@njit(inline="always")
def _output_rows(i0, i1, i2, i3, i4, i5, line, rows, tw):
    seg = 4 * (tw + 1)
    for row in range(rows):
        for k in range(tw):
            q, x = row * tw + k, row * seg + 4 * k
            y0, y1, y2, y3 = _at4(i0[q], i1[q], i2[q], i3[q], i4[q], i5[q])
            line[x], line[x + 1], line[x + 2], line[x + 3] = y0, y1, y2, y3


@njit(inline="always")
def output_rows(i0, i1, i2, i3, i4, i5, line, rows, tw):
    """Aᵀ along the rows: a line of the output transform's rows from six points of M."""
    if tw == 1:
        _output_rows(i0, i1, i2, i3, i4, i5, line, rows, 1)
    elif tw == 2:
        _output_rows(i0, i1, i2, i3, i4, i5, line, rows, 2)
    else:
        _output_rows(i0, i1, i2, i3, i4, i5, line, rows, 3)


@njit(inline="always")
def _grad_rows(line, o0, o1, o2, o3, o4, o5, rows, tw):
    seg = 4 * (tw + 1)
    for row in range(rows):
        for k in range(tw):
            x, q = row * seg + 4 * k, row * tw + k
            t0, t1, t2, t3, t4, t5 = _a4(line[x], line[x + 1], line[x + 2], line[x + 3])
            o0[q], o1[q], o2[q], o3[q], o4[q], o5[q] = t0, t1, t2, t3, t4, t5


@njit(inline="always")
def grad_rows(line, o0, o1, o2, o3, o4, o5, rows, tw):
    """A along the rows: six points of dM from a line of the output gradient's rows."""
    if tw == 1:
        _grad_rows(line, o0, o1, o2, o3, o4, o5, rows, 1)
    elif tw == 2:
        _grad_rows(line, o0, o1, o2, o3, o4, o5, rows, 2)
    else:
        _grad_rows(line, o0, o1, o2, o3, o4, o5, rows, 3)


@njit(inline="always")
def _adjoint_rows(line, v0, v1, v2, v3, v4, v5, rows, tw):
    seg = 4 * (tw + 1)
    for row in range(rows):
        x, q = row * seg, row * tw
        t0, t1, t2, t3, u4, u5 = _b4(v0[q], v1[q], v2[q], v3[q], v4[q], v5[q])
        line[x], line[x + 1], line[x + 2], line[x + 3] = t0, t1, t2, t3
        for k in range(1, tw):
            t0, t1, t2, t3, t4, t5 = _b4(v0[q + k], v1[q + k], v2[q + k], v3[q + k], v4[q + k],
                                         v5[q + k])
            x += 4
            line[x], line[x + 1], line[x + 2], line[x + 3] = t0 + u4, t1 + u5, t2, t3
            u4, u5 = t4, t5
        line[x + 4], line[x + 5] = u4, u5
        line[x + 6], line[x + 7] = 0.0, 0.0  # the rest of the segment, read by the next pass


@njit(inline="always")
def adjoint_rows(line, v0, v1, v2, v3, v4, v5, rows, tw):
    """B along the rows: a line of the input adjoint's rows from six points of dV, each tile
    row's last tile handing its last two columns to the spare tile's place, as the long loop
    over spare tiles does."""
    if tw == 1:
        _adjoint_rows(line, v0, v1, v2, v3, v4, v5, rows, 1)
    elif tw == 2:
        _adjoint_rows(line, v0, v1, v2, v3, v4, v5, rows, 2)
    else:
        _adjoint_rows(line, v0, v1, v2, v3, v4, v5, rows, 3)
