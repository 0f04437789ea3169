"""The Adam update as one pass over a parameter, beside the numpy twin that defines it.

numpy needs a dozen passes (and temporaries) per parameter; for LeNet-5 that was ~11 % of a
training step. Scalars arrive in the parameter's dtype so float32 stays float32 throughout, and no
fastmath: each operation rounds as the numpy twin's does. Moments smaller than the dtype's
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


@njit(cache=True, nogil=True, error_model="numpy")  # numpy's x/0 (no check: it vectorises)
def adam_update(p, g, m, v, b1, c1, b2, c2, step, bc2, eps, tiny):
    """In place over flat, contiguous arrays; scalars in the arrays' dtype."""
    zero = tiny - tiny
    for i in range(p.size):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        mi = mi if abs(mi) >= tiny else zero
        vi = b2 * v[i] + c2 * (gi * gi)
        vi = vi if vi >= tiny else zero
        m[i] = mi
        v[i] = vi
        p[i] -= step * (mi / (np.sqrt(vi / bc2) + eps))
