"""The numpy twins that define the convolution kernels of ``conv.py`` (which re-exports them)
and of ``conv_grouped.py``.

Plain numpy, no numba: slow and obviously right. Kept in their own file so that ``conv.py``'s
kernels stay within one file (numba's cache rule) and under the size limit.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """(N, C, OH, OW, KH, KW) view of every receptive field."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def conv2d_forward_reference(xp, w, b, sh, sw):
    y = np.einsum("ncijkl,ockl->noij", _windows(xp, w.shape[2], w.shape[3], sh, sw), w)
    return y + b.reshape(1, -1, 1, 1)


def conv2d_weight_grad_reference(xp, dy, kh, kw, sh, sw):
    return np.einsum("ncijkl,noij->ockl", _windows(xp, kh, kw, sh, sw), dy)


def conv2d_input_grad_reference(dy, w, hp, wp, sh, sw):
    n, _, oh, ow = dy.shape
    dxp = np.zeros((n, w.shape[1], hp, wp), dtype=dy.dtype)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            dxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += np.einsum("noab,oc->ncab", dy, w[:, :, i, j])
    return dxp


def conv_relu_maxpool_reference(xp, w, b, pk, ps):
    """maxpool(relu(conv(xp) + b)): the composition the fused kernel must equal."""
    z = np.maximum(conv2d_forward_reference(xp, w, b, 1, 1), 0)
    return _windows(z, pk[0], pk[1], ps[0], ps[1]).max(axis=(4, 5))


# ------------------------------------------------------------ grouped and dilated (conv_grouped)
def _dilated_windows(xp, kh, kw, stride, dilation):
    """(N, C, OH, OW, KH, KW) view of every receptive field, taps ``dilation`` apart."""
    (sh, sw), (dh, dw) = stride, dilation
    span = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return span[:, :, ::sh, ::sw, ::dh, ::dw]


def _group_slices(groups: int, channels: int, filters: int):
    cpg, fpg = channels // groups, filters // groups
    return [(slice(g * cpg, (g + 1) * cpg), slice(g * fpg, (g + 1) * fpg)) for g in range(groups)]


def grouped_forward_reference(xp, w, b, stride, dilation, groups):
    """Each group's filters see only their group's channels: one einsum per group."""
    win = _dilated_windows(xp, w.shape[2], w.shape[3], stride, dilation)
    parts = [np.einsum("ncijkl,ockl->noij", win[:, cs], w[fs])
             for cs, fs in _group_slices(groups, xp.shape[1], len(w))]
    return np.concatenate(parts, axis=1) + b.reshape(1, -1, 1, 1)


def grouped_weight_grad_reference(xp, dy, kh, kw, stride, dilation, groups):
    win = _dilated_windows(xp, kh, kw, stride, dilation)
    return np.concatenate([np.einsum("ncijkl,noij->ockl", win[:, cs], dy[:, fs])
                           for cs, fs in _group_slices(groups, xp.shape[1], dy.shape[1])])


def grouped_input_grad_reference(dy, w, hp, wp, stride, dilation, groups):
    (sh, sw), (dh, dw) = stride, dilation
    n, nf, oh, ow = dy.shape
    dxp = np.zeros((n, w.shape[1] * groups, hp, wp), dtype=dy.dtype)
    for cs, fs in _group_slices(groups, w.shape[1] * groups, nf):
        for i in range(w.shape[2]):
            for j in range(w.shape[3]):
                r, q = i * dh, j * dw
                dxp[:, cs, r:r + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw] += np.einsum(
                    "noab,oc->ncab", dy[:, fs], w[fs, :, i, j])
    return dxp


def winograd_reference(xp: np.ndarray, w: np.ndarray, b: np.ndarray, m: int) -> np.ndarray:
    """The numpy twin: conv(xp) + b (N, F, OH, OW) by F(m×m, r×r) with the matrices, in float64:
    r = 3 (m = 2 or 4, ``conv_winograd_plan``) or r = 5 (m = 4, ``conv_winograd5``)."""
    from layerloom.engine.kernels import conv_winograd5 as w5
    from layerloom.engine.kernels.conv_winograd_plan import MATRICES

    r = w.shape[2]
    bt, g, at = (w5.BT, w5.G, w5.AT) if r == 5 else MATRICES[m]
    a = m + r - 1
    n, c, hp, wp = xp.shape
    oh, ow = hp - r + 1, wp - r + 1
    th, tw = -(-oh // m), -(-ow // m)
    xe = np.zeros((n, c, th * m + r - 1, tw * m + r - 1))
    xe[:, :, :hp, :wp] = xp
    idx = (np.arange(th)[:, None] * m + np.arange(a)[None, :])  # (tiles, a) rows of each tile
    jdx = (np.arange(tw)[:, None] * m + np.arange(a)[None, :])
    d = xe[:, :, idx[:, :, None, None], jdx[None, None, :, :]]  # (N, C, th, a, tw, a)
    v = np.einsum("ri,ncxiyj,qj->ncxyrq", bt, d, bt)
    u = np.einsum("ri,fcij,qj->fcrq", g, w.astype(np.float64), g)
    mm = np.einsum("ncxyrq,fcrq->nfxyrq", v, u)
    y = np.einsum("ir,nfxyrq,jq->nfxiyj", at, mm, at).reshape(n, len(w), th * m, tw * m)
    return y[:, :, :oh, :ow] + np.asarray(b, np.float64).reshape(1, -1, 1, 1)
