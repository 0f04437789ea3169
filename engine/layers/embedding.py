"""Embeddings: token ids to learned vectors (``torch.nn.Embedding``), and learned positions.

An embedding is a Dense layer applied to one-hot ids, computed as a row lookup; its gradient adds
each position's output gradient into the row it read (ids themselves get no gradient).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.registry import register
from layerloom.engine.spec import Example, Int, IntInput, Layer, ShapeError, TorchCode, fmt_shape

# PositionalEmbedding in exported PyTorch code (torch has no module for it)
TORCH_POSITIONAL = '''
class PositionalEmbedding(nn.Module):
    """A learned vector per position, added to each step (Layerloom's PositionalEmbedding)."""

    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_len, dim))

    def forward(self, x):
        return x + self.weight[: x.shape[1]]
'''


def rows_sum(ids: np.ndarray, rows: np.ndarray, shape: tuple) -> np.ndarray:
    """``out[i] = Σ rows[ids == i]``, as ``np.add.at`` but ~15× faster: sort the ids once and
    add each run of equal ids with one ``reduceat``."""
    out = np.zeros(shape, dtype=rows.dtype)
    if not len(ids):
        return out
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    out[ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


@register
class Embedding(Layer):
    """Looks up a learned vector for each token id: (N, T) ids -> (N, T, embedding_dim)."""

    formula = ("y[n, t] = W[x[n, t]]: the row of the {num_embeddings}×{embedding_dim} table W that"
               " the token id picks")
    backward_formula = ("dL/dW[k] = Σ<sub>n, t with x[n, t] = k</sub> dL/dy[n, t]; none to the "
                        "integer ids x")
    category = "Dense"
    differentiable_inputs = ()  # integer ids
    attrs = {
        "num_embeddings": Int(128, "vocabulary size: ids run from 0 to num_embeddings - 1",
                              min=1, max=10_000_000),
        "embedding_dim": Int(64, "length of each vector", min=1, max=100_000),
    }
    examples = (Example({"num_embeddings": 7, "embedding_dim": 3}, (IntInput((2, 5), 7),)),
                Example({"num_embeddings": 4, "embedding_dim": 2}, (IntInput((3,), 4),)))

    @classmethod
    def label(cls, a) -> str:
        return f"{a['num_embeddings']}→{a['embedding_dim']}"

    @staticmethod
    def infer(a, x):
        return (*x, a.embedding_dim)

    @staticmethod
    def param_shapes(a, in_shapes):
        return {"weight": (a.num_embeddings, a.embedding_dim)}

    @staticmethod
    def init(a, in_shapes, rng):
        return {"weight": rng.standard_normal((a.num_embeddings, a.embedding_dim))}  # N(0, 1) as torch

    @staticmethod
    def forward(a, p, ctx, x):
        if not np.issubdtype(x.dtype, np.integer):
            raise ShapeError(f"expects integer token ids, got {x.dtype}: set the Input's dtype "
                             f"to int64")
        if x.size and (x.min() < 0 or x.max() >= a.num_embeddings):
            bad = int(x.min()) if x.min() < 0 else int(x.max())
            raise ShapeError(f"token id {bad} is outside 0..{a.num_embeddings - 1}: set "
                             f"num_embeddings to the vocabulary size")
        ctx.save(x)
        return p["weight"][x]

    @staticmethod
    def backward(a, p, ctx, dy):
        (x,) = ctx.saved
        return (None,), {"weight": rows_sum(x.reshape(-1), dy.reshape(-1, dy.shape[-1]),
                                            p["weight"].shape)}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"nn.Embedding({a.num_embeddings}, {a.embedding_dim})")

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        return g.op("Gather", g.param("weight"), x, axis=0)


@register
class PositionalEmbedding(Layer):
    """Adds a learned vector per position to a sequence: y[:, t] = x[:, t] + weight[t]."""

    formula = ("y[n, t] = x[n, t] + W[t], W a {max_len}×{embedding_dim} table of learned position "
               "vectors")
    backward_formula = ("dL/dx = dL/dy, dL/dW[t] = Σ<sub>n</sub> dL/dy[n, t] (0 for rows past the "
                        "sequence's length)")
    category = "Dense"
    attrs = {
        "max_len": Int(512, "longest sequence it can take (rows of the table)", min=1,
                       max=1_000_000),
        "embedding_dim": Int(64, "length of each vector: the input's feature size", min=1,
                             max=100_000),
    }
    examples = (Example({"max_len": 8, "embedding_dim": 3}, ((2, 5, 3),)),)

    @classmethod
    def label(cls, a) -> str:
        return f"≤{a['max_len']}×{a['embedding_dim']}"

    @staticmethod
    def infer(a, x):
        if len(x) != 3:
            raise ShapeError(f"expects sequences (N, steps, features), got {fmt_shape(x)}")
        if x[2] != a.embedding_dim:
            raise ShapeError(f"input has {x[2]} features but embedding_dim is {a.embedding_dim}: "
                             f"set embedding_dim to {x[2]}")
        if x[1] is not None and x[1] > a.max_len:
            raise ShapeError(f"sequences of {x[1]} steps exceed max_len {a.max_len}: "
                             f"set max_len to {x[1]} or more")
        return x

    @staticmethod
    def param_shapes(a, in_shapes):
        return {"weight": (a.max_len, a.embedding_dim)}

    @staticmethod
    def init(a, in_shapes, rng):
        return {"weight": rng.standard_normal((a.max_len, a.embedding_dim))}  # as nn.Embedding

    @staticmethod
    def forward(a, p, ctx, x):
        steps = x.shape[1]
        if steps > a.max_len:
            raise ShapeError(f"sequences of {steps} steps exceed max_len {a.max_len}")
        ctx.save(steps)
        return x + p["weight"][:steps]

    @staticmethod
    def backward(a, p, ctx, dy):
        (steps,) = ctx.saved
        dw = np.zeros_like(p["weight"])
        dw[:steps] = dy.sum(axis=0)
        return (dy,), {"weight": dw}

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode("{m}({x})", f"PositionalEmbedding({a.max_len}, {a.embedding_dim})",
                         (TORCH_POSITIONAL,))

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        steps = g.op("Slice", g.op("Shape", x), g.const([1], np.int64), g.const([2], np.int64))
        rows = g.op("Slice", g.param("weight"), g.const([0], np.int64), steps,
                    g.const([0], np.int64))
        return g.op("Add", x, rows)
