"""A stride-2 convolution's input split into its four phases, and a gradient merged back: the
copies ``conv_phases_packed`` (its forward), ``conv_phases_back`` and ``conv_polyphase`` make.

Phase (a, b) of x zero-padded by ``top`` rows and ``left`` columns is x_ab[u, v] = xpad[2u + a,
2v + b], Hq × Wq values a channel. The files lay the planes out differently (channel-major for
the packed products, phase-major for the phases' Winograd), so the kernels take where value
(c, phase p = 2a + b, u, v) goes as c·``cs`` + p·``ps`` + u·Wq + v in a flat buffer.

Each input row goes to both of its phases in one loop (the even and odd values as one
interleaved group, which LLVM vectorises with shuffles): a loop per phase with its stride a
variable became gathers (64 × 32 × 34 × 34, 1.38 → 0.87 ms on one core), and a compiled call a
row with views for arguments cost more than the values (1.55 → 0.54 ms for 64 × 32 × 32 × 32).
``conv_polyphase`` made its phases with numpy's strided slices, four copies and the zero
margins (its docstrings have the figures).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always")
def split_row(line, even, odd):
    """even[t] = line[2t], odd[t] = line[2t + 1] for t < len(odd); the last value of an odd
    length to even[len(odd)]. Inlined: called a row, as a compiled function of its own with
    three array arguments it cost ``conv_kn2row._phases`` 1.67 → 1.23 ms (64 × 32 × 34²)."""
    half = len(odd)
    for t in range(half):
        even[t] = line[2 * t]
        odd[t] = line[2 * t + 1]
    if len(line) > 2 * half:
        even[half] = line[2 * half]


@njit(cache=True, nogil=True)
def phase_sides(h, w, top, left):
    """(Hq, Wq): the rows and columns of each phase of an H × W map zero-padded by ``top`` rows
    and ``left`` columns on either side (the even phases take the odd side's extra one)."""
    return (h + 2 * top + 1) // 2, (w + 2 * left + 1) // 2


@njit(cache=True, nogil=True)
def covered(size, pad, a):
    """(first, past-the-last) row of phase ``a`` that an input row of ``size`` reaches when
    padded by ``pad`` in front (the same for columns)."""
    first = pad + (a - pad) % 2
    last = pad + size - 1 - (pad + size - 1 - a) % 2
    return first // 2, (last // 2 + 1 if last >= first else first // 2)


@njit(inline="always")
def _whole_body(flat, xs, cs, ps, wq, half, to_phases):
    """Row y's ``half`` even and odd values of an even map without padding (x's own phases:
    every place written, no margin) to or from its two phases' row y // 2 in ``flat``
    (``to_phases``: a literal at each call, so the branch folds away)."""
    c, h = xs.shape[0], xs.shape[1]
    for ch in range(c):
        for y in range(h):
            at, row = ch * cs + 2 * (y % 2) * ps + (y // 2) * wq, xs[ch, y]
            for t in range(half):
                if to_phases:
                    flat[at + t] = row[2 * t]
                    flat[at + ps + t] = row[2 * t + 1]
                else:
                    row[2 * t] = flat[at + t]
                    row[2 * t + 1] = flat[at + ps + t]


@njit(inline="always")
def _whole(flat, xs, cs, ps, wq, to_phases):
    """``_whole_body`` with rows of 8 and 16 values compiled in (LLVM unrolls them)."""
    w = xs.shape[2]
    if w == 8:
        _whole_body(flat, xs, cs, ps, wq, 4, to_phases)
    elif w == 16:
        _whole_body(flat, xs, cs, ps, wq, 8, to_phases)
    else:
        _whole_body(flat, xs, cs, ps, wq, w // 2, to_phases)


@njit(cache=True, nogil=True)
def split_phases(xs, ph, cs, ps, hq, wq, top, left, margins):
    """The phases of one sample xs (C, H, W) into the flat ``ph``: padded row Y = y + top to
    phase a = Y mod 2, row Y // 2, and likewise the columns. With ``margins`` the places no
    input value reaches (the padding, an odd side's shorter phase) are written zeros too;
    without, they are left as they are (a buffer made zeroed and reused keeps them zero).
    An even map without padding takes ``_whole``, its rows of 8 and 16 values with the width
    compiled in."""
    c, h, w = xs.shape
    if top == 0 and left == 0 and h % 2 == 0 and w % 2 == 0:
        _whole(ph, xs, cs, ps, wq, True)
        return
    first, second = left % 2, 1 - left % 2  # the phases of columns 0, 2, … and 1, 3, …
    v1, v2 = left // 2, (left + 1) // 2  # where those columns start in their phase
    half = w // 2
    for ch in range(c):
        for y in range(h):
            a, u = (y + top) % 2, (y + top) // 2
            at = ch * cs + 2 * a * ps + u * wq
            o1, o2 = at + first * ps + v1, at + second * ps + v2
            for t in range(half):
                ph[o1 + t] = xs[ch, y, 2 * t]
                ph[o2 + t] = xs[ch, y, 2 * t + 1]
            if w > 2 * half:
                ph[o1 + half] = xs[ch, y, 2 * half]
    if not margins:
        return
    zero = np.zeros(1, ph.dtype)[0]
    for p in range(4):
        u0, u1 = covered(h, top, p // 2)
        c0, c1 = covered(w, left, p % 2)
        for ch in range(c):
            at = ch * cs + p * ps
            for u in range(hq):
                row, inside = at + u * wq, u0 <= u < u1
                for v in range(c0 if inside else wq):
                    ph[row + v] = zero
                for v in range(c1 if inside else wq, wq):
                    ph[row + v] = zero


@njit(cache=True, nogil=True)
def merge_phases(src, dxs, cs, ps, r0, r1, wq, top, left):
    """dxs[c, y, x] = the gradient of padded input (y + top, x + left), value (c, p, u, v) of
    the phases' gradient at c·cs + p·ps + (u − r)·Wq + v in the flat ``src``, r = ``r0`` for
    phase rows a = 0, ``r1`` for a = 1 (a buffer may start at the first row x has):
    ``split_phases``'s inverse, each row one loop over both of its phases (``_whole`` the other
    way where ``split_phases`` took it)."""
    c, h, w = dxs.shape
    if top == 0 and left == 0 and r0 == 0 and r1 == 0 and h % 2 == 0 and w % 2 == 0:
        _whole(src, dxs, cs, ps, wq, False)
        return
    half, odd_w = w // 2, w % 2
    v1, v2 = left // 2, (left + 1) // 2
    for ch in range(c):
        for y in range(h):
            a, u = (y + top) % 2, (y + top) // 2
            at = ch * cs + 2 * a * ps + (u - (r1 if a else r0)) * wq
            e0, o0 = at + (left % 2) * ps + v1, at + (1 - left % 2) * ps + v2
            for t in range(half):
                dxs[ch, y, 2 * t] = src[e0 + t]
                dxs[ch, y, 2 * t + 1] = src[o0 + t]
            if odd_w:
                dxs[ch, y, 2 * half] = src[e0 + half]
