"""Scaled dot-product attention of projected queries (N, L, D) over keys and values (N, S, D),
beside numpy twins; self-attention passes three views of one packed (N, T, 3D) q|k|v tensor.

The products are BLAS: per (sample, head) numpy's stacked matmul calls sgemm/dgemm on strided
views of q, k, v and writes the output and dq, dk, dv straight into place (no split/merge
copies). Under a causal mask they run in blocks of ``BLOCK`` keys or queries that skip what no
query sees. The softmax and its backward are one numba pass each, over the weights kept
transposed, (N, heads, keys, queries), so that inner loops run along the queries (each key's
row from its first visible query). Samples go in runs whose weights fit the cache
(``_chunks``), and the batch is split over the cores, each part on a thread of its own with a
one-thread BLAS (engine.threads.run_row_parts). Before (scalar numba products per head) the
backward at 256 steps took 2.5× as long. Under a causal mask query i sees keys 0..i; a padded
key (``pad``, N × S) is seen by nobody; hidden weights are exactly zero (so they pass no
gradient). float32 takes a polynomial exp (Cephes' expf: relative error ~1e-7) that LLVM
vectorises; libm's exp is a call per element (no SVML here). The twins take an optional
dropout mask (weights are multiplied by it before they mix values); the layers use them
whenever dropout is on.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from layerloom.engine.kernels.elementwise import EXP_P, LN2_HI, LN2_LO, LOG2E
from layerloom.engine.kernels.vector_width import wide_vectors
from layerloom.engine.threads import row_parts, run_row_parts

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
# Blocks of this many keys (scores, dK, dV) or queries (output, dQ) under a causal mask: each
# block's products skip the keys its queries cannot see (at 256 steps 5/8 of the full squares).
BLOCK = 64
CACHE = 1 << 19  # bytes of weights that one run of samples works on (see _chunks)


@njit(cache=True, nogil=True, fastmath=FAST)
def _softmax_columns(st, scale, causal, pad, bits, m, total):
    """st (keys, queries) of unscaled scores <- softmax over each column (one query's keys) of
    scale · scores, in place.

    Columns, so that the inner loops run along the queries: each key's row from its first
    visible query to the end (hidden scores: a padded key's whole row, and under a causal mask
    query i < key j; they may hold anything, the products skip them, and become exactly 0). A
    query that sees no key gets NaN (0 · 1/0). scale > 0, so the max of the unscaled scores
    is the scaled ones' max. Rows are sliced at their first visible query so that every loop
    starts at 0: a loop from a variable start kept numba's negative-index checks, and LLVM
    left it scalar (the exp 6× slower)."""
    keys, t = st.shape
    for i in range(t):
        m[i] = -np.inf
        total[i] = 0
    for j in range(keys):
        lo = _hidden(j, t, causal, pad)
        row, mm = st[j, lo:], m[lo:]
        for i in range(lo):
            st[j, i] = 0
        for i in range(t - lo):
            if row[i] > mm[i]:  # a select LLVM vectorises (max() was a call)
                mm[i] = row[i]
    pow2 = bits.view(np.float32)
    for j in range(keys):
        lo = _hidden(j, t, causal, pad)
        row, mm, tot = st[j, lo:], m[lo:], total[lo:]
        if st.itemsize == 4:
            b2, p2 = bits[:t - lo], pow2[:t - lo]  # one row's 2^k: stays in L1
            for i in range(t - lo):
                v = (row[i] - mm[i]) * scale
                v = _LO if v < _LO else v
                k = np.floor(v * LOG2E + _HALF)
                r = v - k * LN2_HI - k * LN2_LO
                p = EXP_P[0]
                for c in EXP_P[1:]:
                    p = p * r + c
                row[i] = p * r * r + r + _ONE
                b2[i] = (np.int32(k) + 127) << 23
            for i in range(t - lo):
                row[i] *= p2[i]
        else:
            for i in range(t - lo):
                row[i] = math.exp((row[i] - mm[i]) * scale)
        for i in range(t - lo):
            tot[i] += row[i]
    for i in range(t):
        m[i] = 1 / total[i]
    for j in range(keys):
        row = st[j]
        for i in range(t):
            row[i] *= m[i]


@njit(cache=True, nogil=True)
def _hidden(j, t, causal, pad):
    """How many of the t queries (from the first) may not see key j."""
    if pad[j]:
        return t
    return min(j, t) if causal else 0


@njit(cache=True, nogil=True, fastmath=FAST)
def _softmax_part(weights_t, scale, causal, pad):
    """Every (sample, head) of scores (n, heads, keys, queries) <- softmax weights, in place."""
    n, heads, keys, t = weights_t.shape
    bits, m, total = np.empty(t, np.int32), np.empty(t, weights_t.dtype), np.empty(t, weights_t.dtype)
    for s in range(n):
        for h in range(heads):
            _softmax_columns(weights_t[s, h], scale, causal, pad[s], bits, m, total)


@njit(cache=True, nogil=True, fastmath=FAST)
def _softmax_grad_part(weights_t, dp_t, dused_t, scale, causal, pad):
    """dp_t (n, heads, keys, queries) of d weightsᵀ <- d scoresᵀ (unscaled scores: times
    scale), in place; ``dused_t`` (n, keys, queries), when not empty, reaches every head's
    weights too. Hidden entries (uncomputed, may hold anything) are never read: they become 0.
    Rows sliced at their first visible query, as in ``_softmax_columns``. 16 lanes on AVX-512
    (``wide_vectors``): 0.34 → 0.25 ms a sample of 8 heads × 256 × 256, causal, one core (the
    forward's softmax stayed at 0.50)."""
    wide_vectors()
    n, heads, keys, t = weights_t.shape
    extra = dused_t.shape[0] > 0
    dot = np.empty(t, weights_t.dtype)
    for s in range(n):
        for h in range(heads):
            pt, dp = weights_t[s, h], dp_t[s, h]
            for i in range(t):
                dot[i] = 0
            for j in range(keys):
                lo = _hidden(j, t, causal, pad[s])
                pj, dj, dd = pt[j, lo:], dp[j, lo:], dot[lo:]
                if extra:
                    du = dused_t[s, j, lo:]
                    for i in range(t - lo):
                        dj[i] += du[i]
                for i in range(t - lo):
                    dd[i] += pj[i] * dj[i]
            for j in range(keys):
                lo = _hidden(j, t, causal, pad[s])
                pj, dj, dd = pt[j, lo:], dp[j, lo:], dot[lo:]
                for i in range(lo):
                    dp[j, i] = 0
                for i in range(t - lo):
                    dj[i] = scale * pj[i] * (dj[i] - dd[i])


def _heads(z: np.ndarray, heads: int) -> np.ndarray:
    """(n, T, D) -> a (n, heads, T, D/heads) view (no copy: the products take strided rows)."""
    n, t, d = z.shape
    return z.reshape(n, t, heads, d // heads).transpose(0, 2, 1, 3)


def _tr(z: np.ndarray) -> np.ndarray:
    return z.transpose(0, 1, 3, 2)


def _key_blocks(keys: int, t: int, causal: bool):
    """(j0, j1, first query) of the key blocks whose scores someone sees."""
    if not causal:
        return [(0, keys, 0)]
    return [(j0, min(j0 + BLOCK, keys), j0) for j0 in range(0, min(keys, t), BLOCK)]


def _query_blocks(keys: int, t: int, causal: bool):
    """(i0, i1, keys seen) of the query blocks."""
    if not causal:
        return [(0, t, keys)]
    return [(i0, min(i0 + BLOCK, t), min(i0 + BLOCK, t, keys)) for i0 in range(0, t, BLOCK)]


def _parts(n: int) -> list:
    """One batch part per core of the current engine_threads block (engine.threads)."""
    return row_parts(n, min_rows=1)


def _chunks(lo: int, hi: int, per_sample: int) -> list:
    """(start, stop) of runs of samples whose weights (``per_sample`` bytes each) fit ``CACHE``
    together: scores, softmax and products then run on a block the cache still holds (over the
    whole batch at once every pass streamed the weights from memory: 1.5× slower)."""
    step = max(1, CACHE // max(1, per_sample))
    return [(a, min(a + step, hi)) for a in range(lo, hi, step)]


def _forward_part(q, k, v, heads, scale, causal, pad, out, weights_t):
    q4, k4, v4, o4 = (_heads(z, heads) for z in (q, k, v, out))
    keys, t = k.shape[1], q.shape[1]
    for j0, j1, i0 in _key_blocks(keys, t, causal):  # scoresᵀ = K Qᵀ
        np.matmul(k4[:, :, j0:j1], _tr(q4[:, :, i0:]), out=weights_t[:, :, j0:j1, i0:])
    _softmax_part(weights_t, scale, causal, pad)
    for i0, i1, kk in _query_blocks(keys, t, causal):  # O = P V
        np.matmul(_tr(weights_t[:, :, :kk, i0:i1]), v4[:, :, :kk], out=o4[:, :, i0:i1])


def mha_forward(q, k, v, heads, scale, causal, pad):
    """(output (N, L, D), weightsᵀ (N, heads, S, L)) of projected queries q (N, L, D), keys and
    values k, v (N, S, D); pad (N, S) True = a padded key.

    Per (sample, head) the products are BLAS calls on strided views of q, k, v (no copies);
    the softmax is one numba pass; the batch is split over the cores, each part on a thread of
    its own with a one-thread BLAS (engine.threads.run_row_parts)."""
    n, t, d = q.shape
    keys = k.shape[1]
    out = np.empty((n, t, d), q.dtype)
    weights_t = np.empty((n, heads, keys, t), q.dtype)
    def part(lo, hi):
        for a, b in _chunks(lo, hi, weights_t[0].nbytes):
            _forward_part(q[a:b], k[a:b], v[a:b], heads, scale, causal, pad[a:b], out[a:b],
                          weights_t[a:b])
    run_row_parts(part, _parts(n))
    return out, weights_t


def _backward_part(q, k, v, weights_t, do, heads, scale, causal, pad, dused_t, dq, dk, dv):
    q4, k4, v4, do4, dq4, dk4, dv4 = (_heads(z, heads) for z in (q, k, v, do, dq, dk, dv))
    n, keys, t = len(q), k.shape[1], q.shape[1]
    dp_t = np.empty((n, heads, keys, t), q.dtype)
    blocks = _key_blocks(keys, t, causal)
    for j0, j1, i0 in blocks:  # dPᵀ = V dOᵀ
        np.matmul(v4[:, :, j0:j1], _tr(do4[:, :, i0:]), out=dp_t[:, :, j0:j1, i0:])
    _softmax_grad_part(weights_t, dp_t, dused_t, scale, causal, pad)
    for i0, i1, kk in _query_blocks(keys, t, causal):  # dQ = dS K
        np.matmul(_tr(dp_t[:, :, :kk, i0:i1]), k4[:, :, :kk], out=dq4[:, :, i0:i1])
    for j0, j1, i0 in blocks:  # dK = dSᵀ Q, dV = Pᵀ dO
        np.matmul(dp_t[:, :, j0:j1, i0:], q4[:, :, i0:], out=dk4[:, :, j0:j1])
        np.matmul(weights_t[:, :, j0:j1, i0:], do4[:, :, i0:], out=dv4[:, :, j0:j1])
    seen = blocks[-1][1] if blocks else 0
    if seen < keys:  # keys after the last query: nobody sees them
        dk4[:, :, seen:] = 0
        dv4[:, :, seen:] = 0


def mha_backward(q, k, v, weights_t, do, heads, scale, dused_t, dq, dk, dv, causal=False):
    """dq (N, L, D), dk and dv (N, S, D) written in place from d output (N, L, D), given the
    forward's weightsᵀ; dused_t (N, S, L), when not empty, is a gradient reaching every head's
    weightsᵀ directly (through the head-averaged weights). ``causal``: the forward's mask, so
    that the products skip what no query saw (without it every product is whole: the same
    result, since hidden weights are exactly 0; so are padded keys')."""
    n, t, d = q.shape
    pad = no_padding(n, k.shape[1])
    def part(lo, hi):
        for a, b in _chunks(lo, hi, weights_t[0].nbytes):
            _backward_part(q[a:b], k[a:b], v[a:b], weights_t[a:b], do[a:b], heads, scale, causal,
                           pad[a:b], dused_t[a:b] if dused_t.shape[0] else dused_t, dq[a:b],
                           dk[a:b], dv[a:b])
    run_row_parts(part, _parts(n))


def no_padding(n: int, keys: int) -> np.ndarray:
    """The ``pad`` of a batch without padded keys."""
    return np.zeros((n, keys), np.bool_)


def attention_forward(qkv: np.ndarray, heads: int, scale, causal: bool) -> tuple:
    """(output (N, T, D), weightsᵀ (N, heads, keys, queries)) of packed q|k|v (N, T, 3D)."""
    return mha_forward(*_unpack(qkv), heads, scale, causal, no_padding(*qkv.shape[:2]))


def attention_backward(qkv: np.ndarray, weights_t: np.ndarray, do: np.ndarray, heads: int,
                       scale, causal: bool = False) -> np.ndarray:
    """d qkv (N, T, 3D) from d output (N, T, D), given the forward's weightsᵀ (``causal``: see
    ``mha_backward``)."""
    dqkv = np.empty_like(qkv)
    mha_backward(*_unpack(qkv), weights_t, do, heads, scale, np.empty((0, 0, 0), qkv.dtype),
                 *_unpack(dqkv), causal=causal)
    return dqkv
