"""Axis numbers as PyTorch counts them: the batch is dim 0, negative dims count from the end.

Its own module, importing no layer (layer files never import each other). Layers that reduce,
slice, move or insert axes take PyTorch's dims, batch included, and refuse the batch itself: a
graph's tensors keep one sample per row from the Input to the loss.
"""
from __future__ import annotations

from layerloom.engine.spec import ShapeError


def sample_axis(dim: int, ndim: int, what: str = "dim") -> int:
    """``dim`` of an ``ndim``-D tensor as a non-negative axis; a ShapeError for the batch or out
    of range."""
    if not -ndim <= dim < ndim:
        raise ShapeError(f"{what} {dim} is out of range for {ndim}-D input (dims "
                         f"{-ndim}…{ndim - 1}, the batch is 0)")
    axis = dim % ndim
    if axis == 0:
        raise ShapeError(f"{what} {dim} is the batch axis; choose a dim from 1 to {ndim - 1}")
    return axis


def sample_axes(dims, ndim: int, what: str = "dim") -> tuple:
    """Several dims, each as ``sample_axis``, sorted; a repeated axis is refused."""
    axes = tuple(sorted(sample_axis(d, ndim, what) for d in dims))
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{what} {tuple(dims)} names an axis twice")
    return axes
