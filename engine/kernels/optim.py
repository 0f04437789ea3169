"""The Adam update as one pass over a parameter, beside the numpy twin that defines it.

numpy needs a dozen passes (and temporaries) per parameter; for LeNet-5 that was ~11 % of a
training step. Scalars arrive in the parameter's dtype so float32 stays float32 throughout, and no
fastmath in the update: each operation rounds as the numpy twin's does (only the step
statistics' sums of ``adam_update_kept`` may reassociate). Moments smaller than the dtype's
smallest normal number are flushed to zero: a unit that stopped getting gradient (a dead ReLU)
decays its first moment into subnormals within ~800 steps, and subnormal arithmetic made every
later update ~10× slower (an MLP step went from 1.4 to 3.5 ms).
"""
from __future__ import annotations

import numpy as np
from numba import njit


def adam_update_reference(p, g, m, v, b1, c1, b2, c2, step, bc2, eps, tiny):
    """m ← b1·m + c1·g; v ← b2·v + c2·g²; p ← p − step · m / (√(v / bc2) + eps), with c = 1 − b;
    |m|, v below ``tiny`` become 0."""
    m *= b1
    m += c1 * g
    m[np.abs(m) < tiny] = 0
    v *= b2
    v += c2 * (g * g)
    v[v < tiny] = 0
    p -= step * (m / (np.sqrt(v / bc2) + eps))


@njit(inline="always", error_model="numpy")
def _adam_at(i, p, g, m, v, b1, c1, b2, c2, step, bc2, eps, tiny, zero):
    gi = g[i]
    mi = b1 * m[i] + c1 * gi
    mi = mi if abs(mi) >= tiny else zero
    vi = b2 * v[i] + c2 * (gi * gi)
    vi = vi if vi >= tiny else zero
    m[i] = mi
    v[i] = vi
    p[i] -= step * (mi / (np.sqrt(vi / bc2) + eps))


@njit(cache=True, nogil=True, error_model="numpy")  # numpy's x/0 (no check: it vectorises)
def adam_update(p, g, m, v, b1, c1, b2, c2, step, bc2, eps, tiny):
    """In place over flat, contiguous arrays; scalars in the arrays' dtype."""
    zero = tiny - tiny
    for i in range(p.size):
        _adam_at(i, p, g, m, v, b1, c1, b2, c2, step, bc2, eps, tiny, zero)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _norm_and_finite(g, p):
    """(Σ g² in float64, Σ (p − p)): the second is 0 exactly when every p is finite (inf − inf
    and NaN − NaN are NaN). Reassociation lets the sums vectorise; it reorders nothing else."""
    sq, bad = 0.0, 0.0
    for i in range(g.size):
        gi = np.float64(g[i])
        sq += gi * gi
    for i in range(p.size):
        x = np.float64(p[i])
        bad += x - x
    return sq, bad


@njit(cache=True, nogil=True, error_model="numpy")
def adam_update_kept(p, g, mv, sc, kept):
    """``adam_update`` that first keeps each p in ``kept`` (a diverged run rolls back to it) and
    returns (‖g‖₂, whether every updated p is finite): a training step's statistics from the
    update's own call, where three more numpy passes a parameter (a copy, a norm, a finiteness
    sum) and their calls cost as much as the update for LeNet-5. The moments are mv's two rows,
    the scalars ``sc`` = (b1, c1, b2, c2, step, bc2, eps, tiny): five arguments, not thirteen
    (each costs the call ~0.3 µs of type checks, and a LeNet-5 step makes ten)."""
    m, v = mv[0], mv[1]
    b1, c1, b2, c2, step, bc2, eps, tiny = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5], sc[6], sc[7]
    zero = tiny - tiny
    for i in range(p.size):
        kept[i] = p[i]
        _adam_at(i, p, g, m, v, b1, c1, b2, c2, step, bc2, eps, tiny, zero)
    sq, bad = _norm_and_finite(g, p)
    return np.sqrt(sq), bad == 0
