"""Scaled dot-product attention of projected queries (N, L, D) over keys and values (N, S, D),
beside numpy twins; self-attention passes three views of one packed (N, T, 3D) q|k|v tensor.

One kernel call per pass (batch-parallel over samples) replaces numpy's split/transpose/batched
matmul/softmax/merge chain and its temporaries: each head's q, k, v are copied into small
buffers laid out so that every inner loop runs over all L queries (full-length loops are the
ones LLVM vectorises; a ragged causal row of 1..T ran in its scalar remainder loop), the output
and dq, dk, dv are written straight into place. The softmax weights are kept transposed,
(N, heads, keys, queries), for the same reason. The scale 1/√d_head is folded into k. Under a
causal mask query i sees keys 0..i; a padded key (``pad``, N × S) is seen by nobody; hidden
weights are exactly zero (so they pass no gradient). float32 takes a polynomial exp (Cephes'
expf: relative error ~1e-7) that LLVM vectorises; libm's exp is a call per element (no SVML
here) and made the softmax alone take half of numpy's whole attention. The twins take an
optional dropout mask (weights are multiplied by it before they mix values); the layers use
them whenever dropout is on.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from layerloom.engine.kernels.elementwise import EXP_P, LN2_HI, LN2_LO, LOG2E

# Reassociation lets LLVM vectorise the sums; no flag that assumes finite values.
FAST = {"reassoc", "contract", "nsz"}
_F = np.float32
_LO, _HALF, _ONE = _F(-87.0), _F(0.5), _F(1.0)


# ------------------------------------------------------------------------- numpy twins
def causal_mask_reference(steps: int, keys: int) -> np.ndarray:
    """True where query i may not look at key j (j > i): aligned at the first position, as
    PyTorch's ``is_causal`` and the kernels' masked columns."""
    return np.triu(np.ones((steps, keys), dtype=bool), 1)


def split_heads(z: np.ndarray, heads: int) -> np.ndarray:
    """(N, T, D) -> (N, heads, T, D/heads)."""
    n, t, d = z.shape
    return z.reshape(n, t, heads, d // heads).transpose(0, 2, 1, 3)


def merge_heads(z: np.ndarray) -> np.ndarray:
    """(N, heads, T, d) -> (N, T, heads·d), contiguous."""
    n, h, t, d = z.shape
    return np.ascontiguousarray(z.transpose(0, 2, 1, 3)).reshape(n, t, h * d)


def attention_softmax_reference(scores: np.ndarray, scale: float, causal: bool,
                                pad: np.ndarray | None = None) -> np.ndarray:
    """Softmax over the keys of scores (N, heads, L, S); ``pad`` (N, S) True = a key nobody
    sees. A query that sees no key at all gets NaN weights, as in PyTorch."""
    s = scores * scale
    if causal:
        s = np.where(causal_mask_reference(*scores.shape[-2:]), -np.inf, s)
    if pad is not None:
        s = np.where(pad[:, None, None, :], -np.inf, s)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _unpack(qkv: np.ndarray) -> tuple:
    d = qkv.shape[2] // 3
    return tuple(qkv[..., i * d:(i + 1) * d] for i in range(3))


def mha_forward_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, scale: float,
                          causal: bool, pad: np.ndarray | None = None,
                          mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(output (N, L, D), softmax weights (N, heads, L, S)) of projected queries q (N, L, D) and
    keys and values k, v (N, S, D); ``mask`` (N, heads, L, S) multiplies the weights before they
    mix values (dropout)."""
    q, k, v = (split_heads(z, heads) for z in (q, k, v))
    weights = attention_softmax_reference(q @ k.transpose(0, 1, 3, 2), scale, causal, pad)
    used = weights if mask is None else weights * mask
    return merge_heads(used @ v), weights.astype(q.dtype)


def mha_backward_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, weights: np.ndarray,
                           do: np.ndarray, heads: int, scale: float,
                           mask: np.ndarray | None = None,
                           dused: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(dq, dk, dv) from d output (N, L, D); ``dused`` (N, L, S) is a gradient that reaches
    every head's used weights directly (through the head-averaged weights a layer outputs)."""
    q, k, v = (split_heads(z, heads) for z in (q, k, v))
    do = split_heads(do, heads)
    used = weights if mask is None else weights * mask
    dv = used.transpose(0, 1, 3, 2) @ do
    dw = do @ v.transpose(0, 1, 3, 2)
    if dused is not None:
        dw = dw + dused[:, None]
    if mask is not None:
        dw = dw * mask
    ds = scale * weights * (dw - (weights * dw).sum(axis=-1, keepdims=True))
    return merge_heads(ds @ k), merge_heads(ds.transpose(0, 1, 3, 2) @ q), merge_heads(dv)


def attention_forward_reference(qkv: np.ndarray, heads: int, scale: float, causal: bool,
                                mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(output (N, T, D), softmax weights (N, heads, T, T)) of packed q|k|v (N, T, 3D)."""
    return mha_forward_reference(*_unpack(qkv), heads, scale, causal, mask=mask)


def attention_backward_reference(qkv: np.ndarray, weights: np.ndarray, do: np.ndarray, heads: int,
                                 scale: float, mask: np.ndarray | None = None) -> np.ndarray:
    """d qkv (N, T, 3D) from d output (N, T, D)."""
    grads = mha_backward_reference(*_unpack(qkv), weights, do, heads, scale, mask)
    return np.concatenate(grads, axis=2)


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True, fastmath=FAST)
def _softmax_columns(st, causal, pad, bits, m, total):
    """st (keys, queries) of scores <- softmax over each column (one query's keys), in place.

    Columns, so that every inner loop runs over all queries: full-length loops are the ones
    LLVM vectorises (a short or ragged causal row ran in its scalar remainder loop). Hidden
    scores (a padded key: its whole row; causal: query i < key j) become -inf before the max
    (they must not set it) and exactly 0 after the exp. A query that sees no key gets NaN."""
    keys, t = st.shape
    for j in range(keys):
        for i in range(_hidden(j, t, causal, pad)):
            st[j, i] = -np.inf
    for i in range(t):
        m[i] = st[0, i]
        total[i] = 0
    for j in range(1, keys):
        for i in range(t):
            m[i] = max(m[i], st[j, i])
    pow2 = bits.view(np.float32)
    for j in range(keys):
        if st.itemsize == 4:
            for i in range(t):
                v = st[j, i] - m[i]
                v = _LO if v < _LO else v
                k = np.floor(v * LOG2E + _HALF)
                r = v - k * LN2_HI - k * LN2_LO
                p = EXP_P[0]
                for c in EXP_P[1:]:
                    p = p * r + c
                st[j, i] = p * r * r + r + _ONE
                bits[j, i] = (np.int32(k) + 127) << 23
            for i in range(t):
                st[j, i] *= pow2[j, i]
        else:
            for i in range(t):
                st[j, i] = math.exp(st[j, i] - m[i])
        for i in range(_hidden(j, t, causal, pad)):
            st[j, i] = 0
        for i in range(t):
            total[i] += st[j, i]
    for i in range(t):
        m[i] = 1 / total[i]
    for j in range(keys):
        for i in range(t):
            st[j, i] *= m[i]


@njit(cache=True, nogil=True)
def _hidden(j, t, causal, pad):
    """How many of the t queries (from the first) may not see key j."""
    if pad[j]:
        return t
    return min(j, t) if causal else 0


@njit(cache=True, nogil=True, fastmath=FAST)
def _rank1(a, b, out):
    """out (R, T) += a (R, C) @ b (C, T) along full rows of b, two rows of ``out`` by four rows
    of b at a time (fewer loads and stores per multiply-add: 1.3× the plain triple loop)."""
    cs, rs = a.shape[1] - a.shape[1] % 4, a.shape[0] - a.shape[0] % 2
    for r in range(0, rs, 2):
        d0, d1 = out[r], out[r + 1]
        for c in range(0, cs, 4):
            a0, a1, a2, a3 = a[r, c], a[r, c + 1], a[r, c + 2], a[r, c + 3]
            e0, e1, e2, e3 = a[r + 1, c], a[r + 1, c + 1], a[r + 1, c + 2], a[r + 1, c + 3]
            b0, b1, b2, b3 = b[c], b[c + 1], b[c + 2], b[c + 3]
            for i in range(out.shape[1]):
                x0, x1, x2, x3 = b0[i], b1[i], b2[i], b3[i]
                d0[i] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                d1[i] += e0 * x0 + e1 * x1 + e2 * x2 + e3 * x3
        for c in range(cs, a.shape[1]):
            for i in range(out.shape[1]):
                d0[i] += a[r, c] * b[c, i]
                d1[i] += a[r + 1, c] * b[c, i]
    for r in range(rs, a.shape[0]):
        for c in range(a.shape[1]):
            for i in range(out.shape[1]):
                out[r, i] += a[r, c] * b[c, i]


@njit(cache=True, nogil=True)
def _get(x, c0, scale, out, transpose):
    """out <- scale · x[:, c0:c0 + dh] (T, dh), or its transpose (dh, T)."""
    dh = out.shape[0] if transpose else out.shape[1]
    for j in range(x.shape[0]):
        for c in range(dh):
            if transpose:
                out[c, j] = x[j, c0 + c] * scale
            else:
                out[j, c] = x[j, c0 + c] * scale


@njit(cache=True, nogil=True)
def _put(src_t, scale, x, c0):
    """x[:, c0:c0 + dh] <- scale · src_tᵀ, src_t (dh, T)."""
    for j in range(x.shape[0]):
        for c in range(src_t.shape[0]):
            x[j, c0 + c] = src_t[c, j] * scale


@njit(cache=True, nogil=True)
def _transpose(src, out):
    for j in range(src.shape[0]):
        for i in range(src.shape[1]):
            out[i, j] = src[j, i]


@njit(cache=True, nogil=True, parallel=True, fastmath=FAST)
def mha_forward(q, k, v, heads, scale, causal, pad):
    """(output (N, L, D), weightsᵀ (N, heads, S, L)) of projected queries q (N, L, D), keys and
    values k, v (N, S, D); pad (N, S) True = a padded key."""
    n, t, d = q.shape
    keys = k.shape[1]
    dh = d // heads
    one = scale / scale
    out = np.empty((n, t, d), q.dtype)
    weights_t = np.empty((n, heads, keys, t), q.dtype)
    for s in prange(n):
        qt, vt = np.empty((dh, t), q.dtype), np.empty((dh, keys), q.dtype)
        ks, ot = np.empty((keys, dh), q.dtype), np.empty((dh, t), q.dtype)
        bits, m, total = np.empty((keys, t), np.int32), np.empty(t, q.dtype), np.empty(t, q.dtype)
        for h in range(heads):
            st = weights_t[s, h]
            _get(q[s], h * dh, one, qt, True)
            _get(k[s], h * dh, scale, ks, False)
            _get(v[s], h * dh, one, vt, True)
            st[:] = 0
            _rank1(ks, qt, st)  # Sᵀ = (scale·K) Qᵀ
            _softmax_columns(st, causal, pad[s], bits, m, total)
            ot[:] = 0
            _rank1(vt, st, ot)  # Oᵀ = Vᵀ Pᵀ
            _put(ot, one, out[s], h * dh)
    return out, weights_t


@njit(cache=True, nogil=True, parallel=True, fastmath=FAST)
def mha_backward(q, k, v, weights_t, do, heads, scale, dused_t, dq, dk, dv):
    """dq (N, L, D), dk and dv (N, S, D) written in place from d output (N, L, D), given the
    forward's weightsᵀ; dused_t (N, S, L), when not empty, is a gradient reaching every head's
    weightsᵀ directly (through the head-averaged weights)."""
    n, t, d = q.shape
    keys = k.shape[1]
    dh = d // heads
    one = scale / scale
    extra = dused_t.shape[0] > 0
    for s in prange(n):
        vs, dot_t = np.empty((keys, dh), q.dtype), np.empty((dh, t), q.dtype)
        kt, qt = np.empty((dh, keys), q.dtype), np.empty((dh, t), q.dtype)
        ds_t, tr = np.empty((keys, t), q.dtype), np.empty((t, keys), q.dtype)
        gq, gkv, dot = np.empty((dh, t), q.dtype), np.empty((dh, keys), q.dtype), np.empty(t, q.dtype)
        for h in range(heads):
            pt = weights_t[s, h]
            _get(v[s], h * dh, one, vs, False)
            _get(do[s], h * dh, one, dot_t, True)
            _get(k[s], h * dh, scale, kt, True)
            _get(q[s], h * dh, one, qt, True)
            ds_t[:] = 0
            _rank1(vs, dot_t, ds_t)  # dPᵀ = V dOᵀ
            if extra:
                ds_t += dused_t[s]
            dot[:] = 0
            for j in range(keys):
                for i in range(t):
                    dot[i] += pt[j, i] * ds_t[j, i]
            for j in range(keys):
                for i in range(t):
                    ds_t[j, i] = pt[j, i] * (ds_t[j, i] - dot[i])  # d scaled scoresᵀ
            gq[:] = 0
            _rank1(kt, ds_t, gq)  # dQᵀ = (scale·K)ᵀ dSᵀ
            _put(gq, one, dq[s], h * dh)
            _transpose(ds_t, tr)
            gkv[:] = 0
            _rank1(qt, tr, gkv)  # dKᵀ = scale · Qᵀ dS
            _put(gkv, scale, dk[s], h * dh)
            _transpose(pt, tr)
            gkv[:] = 0
            _rank1(dot_t, tr, gkv)  # dVᵀ = dOᵀ P
            _put(gkv, one, dv[s], h * dh)


def no_padding(n: int, keys: int) -> np.ndarray:
    """The ``pad`` of a batch without padded keys."""
    return np.zeros((n, keys), np.bool_)


def attention_forward(qkv: np.ndarray, heads: int, scale, causal: bool) -> tuple:
    """(output (N, T, D), weightsᵀ (N, heads, keys, queries)) of packed q|k|v (N, T, 3D)."""
    return mha_forward(*_unpack(qkv), heads, scale, causal, no_padding(*qkv.shape[:2]))


def attention_backward(qkv: np.ndarray, weights_t: np.ndarray, do: np.ndarray, heads: int,
                       scale) -> np.ndarray:
    """d qkv (N, T, 3D) from d output (N, T, D), given the forward's weightsᵀ."""
    dqkv = np.empty_like(qkv)
    mha_backward(*_unpack(qkv), weights_t, do, heads, scale, np.empty((0, 0, 0), qkv.dtype),
                 *_unpack(dqkv))
    return dqkv
