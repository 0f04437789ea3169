"""The backward of ``conv_phases_packed``'s stride-2 convolutions on the packed tile kernel,
reading the input's phases and the output gradient in place (implicit GEMMs, no im2col).

In the forward's flat layout (``split_phases``: plane (c, a, b) of x's phase (a, b), rows Wq
apart; output (r, q) at r·Wq + q, the column Wq − 1 ≥ OW a gap), tap (c, i, j) of output
position P reads the phases at P + off(c, i, j) (``tap_offsets``). Hence, with dZ the output
gradient in that layout (zeros in the gap column, ``_flat_grad``):

- the weight gradient dW[f, c, i, j] = Σ_P dZ[f, P] · X[off(c, i, j) + P]: for each tap (i, j)
  one product Xᵢⱼ (C × L) · dZᵀ, Xᵢⱼ's rows the C channels' planes at one stride (``gemm_at``'s
  lda), dZᵀ packed once a sample; a row of ones beside them gives the bias gradient;
- the input gradient of phase (a, b), dX_ab[c, P] = Σ_{i≡a, j≡b} Σ_f W[f, c, i, j] ·
  dZ[f, P − off(i, j)]: one product Wᵀ_ab (C × taps·F) · D (taps·F × positions), D's rows dZ's
  rows shifted back, read in place from a buffer with zeros before and after each row, over
  the phase rows x has (not the padding's). The four phases' gradients are then put back in
  x's places (``phase_planes.merge_phases``).

Before this the layer padded x and ran im2col's products (``conv_gemm_strided``), whose
gathers and scatters of 9·C-row matrices took a third of the backward. Batch 64, alternating in
one process, one core / two: 32 → 64 on 32×32 23.8 → 20.6 / 17.2 → 15.6 ms, 16 → 32 8.3 → 6.3 /
6.1 → 4.6, 48 → 64 34.5 → 29.5 / 18.2 → 15.0, 64 → 128 74.4 → 73.1 / 39.0 → 37.3. Onto the
smaller maps im2col runs (``conv_phases_packed.packed_phases`` leaves them there) the phases'
padding row and gap column cost more than im2col's copies: 64 → 128 on 16×16 0.87×, 128 → 256
on 8×8 0.57×.
The partial weight gradients are summed over fixed runs of samples (``PARTS``), then in order:
the results do not depend on the thread count.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from layerloom.engine.kernels.conv_phases_packed import tap_offsets
from layerloom.engine.kernels.packed import (PACKED_ROWS, PANEL, gemm_at, keep_alive, pack,
                                            panels_shape)
from layerloom.engine.kernels.phase_planes import (covered, merge_phases, phase_sides,
                                                   split_phases)
from layerloom.engine.threads import split_rows

PARTS = 8  # the weight gradient's partial sums, each over a fixed run of samples


@njit(cache=True, nogil=True)
def _flat_grad(dy, s, dz, front, pitch, wq):
    """dz[f, front + r·Wq + q] = dy[s, f, r, q]; the gap columns and the margins stay zero (the
    buffer was made zeroed and only these places are ever written)."""
    nf, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    for f in range(nf):
        for r in range(oh):
            o = f * pitch + front + r * wq
            for q in range(ow):
                dz[o + q] = dy[s, f, r, q]


@njit(cache=True, nogil=True)
def _phase_weights(w):
    """Wᵀ of each phase (a, b): (C × taps·F) with column t·F + f = w[f, c, i, j] for its taps
    t = (i, j) with i ≡ a, j ≡ b (mod 2) in order; and their (i // 2, j // 2)."""
    nf, c, kh, kw = w.shape
    most = ((kh + 1) // 2) * ((kw + 1) // 2)  # phase (0, 0)'s taps, the most a phase has
    wt = np.zeros((4, c, most * nf), w.dtype)
    shifts = np.zeros((4, most, 2), np.int64)
    counts = np.zeros(4, np.int64)
    for p in range(4):
        a, b = p // 2, p % 2
        t = 0
        for i in range(a, kh, 2):
            for j in range(b, kw, 2):
                shifts[p, t, 0], shifts[p, t, 1] = i // 2, j // 2
                for ch in range(c):
                    for f in range(nf):
                        wt[p, ch, t * nf + f] = w[f, ch, i, j]
                t += 1
        counts[p] = t
    return wt, shifts, counts


@njit(cache=True, nogil=True)
def _parts(x, wt, shifts, counts, dy, top, left, kh, kw, need_dx, dwts, dx, p0, p1):
    """Partials p0..p1 of ``phases_packed_backward``, serially: partial pi's fixed run of
    samples into its dWᵀ ``dwts[pi]`` ((K²·C + 1) × F padded to panels: tap-major rows (i, j, c),
    the bias's last) and their input gradients into dx; the buffers and the layout's offsets
    made once for all of them. ``wt``, ``shifts``, ``counts``: ``_phase_weights``."""
    n, c, h, wd = x.shape
    nf, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    hq, wq = phase_sides(h, wd, top, left)
    plane = hq * wq
    length = (oh - 1) * wq + ow  # the output positions, the gap columns between rows included
    front = (kh - 1) // 2 * wq + (kw - 1) // 2  # the most a tap reaches back (dx's rows)
    pitch = front + hq * wq + 2 * PANEL
    ph = np.zeros(c * 4 * plane + 2 * PANEL, x.dtype)
    dz = np.zeros(nf * pitch, x.dtype)
    bz = np.empty(panels_shape(length, nf), x.dtype)
    ones = np.ones(length, x.dtype)
    width, parts = dwts.shape[2], len(dwts)
    offs = tap_offsets(c, kh, kw, hq, wq)
    rows = np.empty((2, 2), np.int64)  # phase row a's first and past-the-last row x has
    for a in range(2):
        rows[a, 0], rows[a, 1] = covered(h, top, a)
    npan = -(-plane // PANEL)
    grads = np.empty((4, c, npan * PANEL), x.dtype)
    boffs = np.empty((4, wt.shape[2]), np.int64)
    for p in range(4):
        for t in range(counts[p]):
            back = shifts[p, t, 0] * wq + shifts[p, t, 1]
            for f in range(nf):
                boffs[p, t * nf + f] = f * pitch + front - back
    ph_at, bz_at = np.int64(ph.ctypes.data), np.int64(bz.ctypes.data)
    for pi in range(p0, p1):
        dwt_at = np.int64(dwts[pi].ctypes.data)
        for s in range((pi * n) // parts, ((pi + 1) * n) // parts):
            split_phases(x[s], ph, 4 * plane, plane, hq, wq, top, left, False)
            _flat_grad(dy, s, dz, front, pitch, wq)
            pack(dz.reshape((nf, pitch))[:, front:front + length].T, bz)
            for tap in range(kh * kw):  # (i, j) = divmod(tap, kw): C channels' rows one product
                gemm_at(ph_at + 4 * offs[tap], 4 * plane, c, length, bz_at, length * PANEL,
                        width // PANEL, PACKED_ROWS, dwt_at + 4 * tap * c * width, width, True)
            gemm_at(np.int64(ones.ctypes.data), length, 1, length, bz_at, length * PANEL,
                    width // PANEL, PACKED_ROWS, dwt_at + 4 * kh * kw * c * width, width, True)
            if not need_dx:
                continue
            for p in range(4):  # only the phase rows x has (not the padding's)
                k, first = counts[p] * nf, rows[p // 2, 0] * wq
                panels = -(-(rows[p // 2, 1] - rows[p // 2, 0]) * wq // PANEL)
                gemm_at(np.int64(wt[p].ctypes.data), wt.shape[2], c, k,
                        np.int64(dz.ctypes.data) + 4 * first, PANEL, panels, boffs[p, :k],
                        np.int64(grads[p].ctypes.data), npan * PANEL, False)
            merge_phases(grads.ravel(), dx[s], npan * PANEL, c * npan * PANEL, rows[0, 0],
                         rows[1, 0], wq, top, left)
    keep_alive(ph)  # read and written by the tile kernel through their addresses
    keep_alive(dz)
    keep_alive(bz)
    keep_alive(ones)
    keep_alive(wt)
    keep_alive(grads)
    keep_alive(dwts)


def phases_packed_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, pad: tuple,
                           need_dx: bool) -> tuple:
    """(d x (unpadded) or None, d weight, d bias) of ``phases_packed_forward(x, w, b, pad=pad)``
    for float32 x (C-contiguous) and K × K filters (3×3 and, few channel pairs, 5×5)."""
    n, c, h, wd = x.shape
    nf, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    top, left = int(pad[0]), int(pad[1])
    parts = min(n, PARTS)
    width = -(-nf // PANEL) * PANEL
    taps = kh * kw
    dwts = np.zeros((parts, taps * c + 1, width), np.float32)
    need = bool(need_dx)
    dx = np.empty((n if need else 0, c, h, wd), np.float32)
    wt, shifts, counts = _phase_weights(np.ascontiguousarray(w, dtype=np.float32))
    dy = np.ascontiguousarray(dy, dtype=np.float32)
    split_rows(lambda p0, p1: _parts(x, wt, shifts, counts, dy, top, left, kh, kw, need, dwts,
                                     dx, p0, p1), parts)
    total = np.add.reduce(dwts, axis=0, initial=0)
    dw = total[:taps * c, :nf].reshape(kh, kw, c, nf).transpose(3, 2, 0, 1)
    db = np.ascontiguousarray(total[taps * c, :nf])
    return (dx if need else None), np.ascontiguousarray(dw), db
