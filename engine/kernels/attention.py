"""Softmax over attention scores (scaled, optionally causal) and its backward, beside numpy twins.

Scores arrive as (B, T, S) stacks (batch × heads flattened into B). The scale 1/√d_head is folded
in here so the scores are read once; under a causal mask, query i sees keys 0..i (+ S - T when the
keys are longer), and masked weights are exactly zero, so they pass no gradient either.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


# ------------------------------------------------------------------------- numpy twins
def causal_mask_reference(steps: int, keys: int) -> np.ndarray:
    """True where query i may not look at key j (j > i + keys - steps)."""
    return np.triu(np.ones((steps, keys), dtype=bool), 1 + keys - steps)


def attention_softmax_reference(scores: np.ndarray, scale: float, causal: bool) -> np.ndarray:
    s = scores * scale
    if causal:
        s = np.where(causal_mask_reference(*scores.shape[-2:]), -np.inf, s)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention_softmax_backward_reference(p: np.ndarray, dp: np.ndarray, scale: float) -> np.ndarray:
    """d scores from d weights: scale · p · (dp - Σ_j p·dp)."""
    return scale * p * (dp - (p * dp).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------------------------ kernels
@njit(cache=True, nogil=True, parallel=True)
def attention_softmax(scores, scale, causal):
    b, t, s = scores.shape
    out = np.empty_like(scores)
    for k in prange(b):
        for i in range(t):
            row, dst = scores[k, i], out[k, i]
            width = min(i + 1 + s - t, s) if causal else s
            m = row[0]
            for j in range(1, width):
                if row[j] > m:
                    m = row[j]
            total = 0.0
            for j in range(width):
                e = math.exp((row[j] - m) * scale)
                dst[j] = e
                total += e
            inv = 1.0 / total
            for j in range(width):
                dst[j] *= inv
            for j in range(width, s):
                dst[j] = 0.0
    return out


@njit(cache=True, nogil=True, parallel=True)
def attention_softmax_backward(p, dp, scale):
    b, t, s = p.shape
    out = np.empty_like(p)
    for k in prange(b):
        for i in range(t):
            pr, dr, dst = p[k, i], dp[k, i], out[k, i]
            dot = 0.0
            for j in range(s):
                dot += pr[j] * dr[j]
            for j in range(s):
                dst[j] = scale * pr[j] * (dr[j] - dot)
    return out
