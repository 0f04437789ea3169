"""numpy/PyTorch broadcasting for the two-input layers (Add, Multiply, Maximum …) and its gradient.

Its own module, importing no layer, so that layer files never import each other. Every tensor in
a graph carries the batch axis first, so two inputs of the same rank always line up batch with
batch. Inputs of different ranks are aligned from the right as numpy does; that is refused when it
would pair the lower-rank input's batch axis with a sized axis of the other (numpy would only
succeed by accident, when the batch happens to equal that size), naming both shapes.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.spec import ShapeError, fmt_shape


def broadcast_shapes(x: tuple, y: tuple, verb: str = "combine") -> tuple:
    """The broadcast shape of ``x`` and ``y`` (batch first, ``None`` where unknown)."""
    rank = max(len(x), len(y))
    px, py = (1,) * (rank - len(x)) + tuple(x), (1,) * (rank - len(y)) + tuple(y)
    out = []
    for i, (p, q) in enumerate(zip(px, py)):
        if p == q or q == 1:
            out.append(p)
        elif p == 1:
            out.append(q)
        elif p is None or q is None:
            if len(x) == len(y):  # an unknown size against a known one: decided at run time
                out.append(q if p is None else p)
                continue
            low = x if len(x) < len(y) else y
            raise ShapeError(f"cannot {verb} {fmt_shape(x)} and {fmt_shape(y)}: their ranks differ, "
                             f"so the batch axis of the {len(low)}-D input would meet an axis "
                             f"of size {p if q is None else q}; give both the same rank "
                             f"(Unsqueeze)")
        else:
            raise ShapeError(f"cannot {verb} {fmt_shape(x)} and {fmt_shape(y)}: sizes {p} and "
                             f"{q} differ at dim {i} and neither is 1")
    return tuple(out)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """``grad`` of a broadcast result summed back to an input of ``shape`` (over the axes it was
    repeated along), as autograd does."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad
