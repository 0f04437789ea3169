"""Oracles for the element-wise math, reductions and tensor-shape layers: PyTorch's own operators."""
import torch


def _chunk(a, p, xs, training):
    return tuple(torch.chunk(xs[0], a.chunks, dim=a.dim))


def _slice(a, p, xs, training):
    index = [slice(None)] * xs[0].ndim
    index[a.dim] = slice(a.start, a.end, a.step)
    return xs[0][tuple(index)]


ORACLES = {
    "Multiply": lambda a, p, xs, tr: xs[0] * xs[1],
    "Subtract": lambda a, p, xs, tr: xs[0] - xs[1],
    "Divide": lambda a, p, xs, tr: xs[0] / xs[1],
    "Maximum": lambda a, p, xs, tr: torch.maximum(xs[0], xs[1]),
    "Minimum": lambda a, p, xs, tr: torch.minimum(xs[0], xs[1]),
    "Scale": lambda a, p, xs, tr: xs[0] * a.factor,
    "Bias": lambda a, p, xs, tr: xs[0] + a.value,
    "Abs": lambda a, p, xs, tr: torch.abs(xs[0]),
    "Exp": lambda a, p, xs, tr: torch.exp(xs[0]),
    "Log": lambda a, p, xs, tr: torch.log(xs[0]),
    "Sqrt": lambda a, p, xs, tr: torch.sqrt(xs[0]),
    "Pow": lambda a, p, xs, tr: torch.pow(xs[0], a.exponent),
    "Clamp": lambda a, p, xs, tr: torch.clamp(xs[0], a.min, a.max),
    "Sum": lambda a, p, xs, tr: torch.sum(xs[0], dim=tuple(a.dim), keepdim=a.keepdim),
    "Mean": lambda a, p, xs, tr: torch.mean(xs[0], dim=tuple(a.dim), keepdim=a.keepdim),
    "Slice": _slice,
    "Chunk": _chunk,
    "Repeat": lambda a, p, xs, tr: xs[0].repeat(1, *a.repeats),
    "Transpose": lambda a, p, xs, tr: torch.transpose(xs[0], a.dim0, a.dim1),
    "Permute": lambda a, p, xs, tr: xs[0].permute(*a.dims),
    "Squeeze": lambda a, p, xs, tr: torch.squeeze(xs[0], a.dim),
    "Unsqueeze": lambda a, p, xs, tr: torch.unsqueeze(xs[0], a.dim),
}
ORACLES["Parameter"] = lambda a, p, xs, tr: p["value"][None]
