"""The numpy twins that define the convolution kernels of ``conv.py`` (which re-exports them).

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
