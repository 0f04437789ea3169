"""Multi-head self-attention as ``torch.nn.MultiheadAttention(batch_first=True)`` with q = k = v = x.

Parameters keep PyTorch's names and layouts: ``in_proj_weight`` (3D×D, the q, k and v projections
stacked), ``in_proj_bias`` (3D), ``out_proj.weight`` (D×D) and ``out_proj.bias`` (D). The dotted
names are deliberate: a node ``attn`` stores ``attn.in_proj_weight`` … ``attn.out_proj.bias``,
exactly the keys of ``nn.MultiheadAttention``'s state_dict under a module named ``attn``, so a
weights file loads into PyTorch unchanged (node ids are identifiers, so the node is always the
part before the first dot). Init as PyTorch: Xavier-uniform ``in_proj_weight``, zero biases,
``out_proj.weight`` ~ U(±1/√D).
"""
from __future__ import annotations

import numpy as np

from engine.kernels.attention import attention_softmax, attention_softmax_backward
from engine.layers.dense import uniform_fan_in
from engine.registry import register
from engine.spec import AttrError, Bool, Example, Float, Int, Layer, ShapeError, fmt_shape


def _heads(z: np.ndarray, heads: int) -> np.ndarray:
    """(N, T, D) -> (N, heads, T, D/heads)."""
    n, t, d = z.shape
    return z.reshape(n, t, heads, d // heads).transpose(0, 2, 1, 3)


def _merge(z: np.ndarray) -> np.ndarray:
    """(N, heads, T, d) -> (N, T, heads·d), contiguous."""
    n, h, t, d = z.shape
    return np.ascontiguousarray(z.transpose(0, 2, 1, 3)).reshape(n, t, h * d)


@register
class MultiHeadSelfAttention(Layer):
    """Each position mixes the values of the positions it attends to, in several heads at once."""

    category = "Attention"
    attrs = {
        "embed_dim": Int(64, "model width D: the input's feature size", min=1, max=100_000),
        "num_heads": Int(4, "heads; embed_dim must divide by it", min=1, max=1024),
        "causal": Bool(False, "each position attends only to itself and earlier ones (GPT)"),
        "dropout": Float(0.0, "dropout on the attention weights while training", min=0.0,
                         max=0.99),
        "bias": Bool(True, "learn biases for the input and output projections"),
    }
    examples = (Example({"embed_dim": 4, "num_heads": 2}, ((2, 3, 4),)),
                Example({"embed_dim": 6, "num_heads": 3, "causal": True}, ((2, 4, 6),)),
                Example({"embed_dim": 4, "num_heads": 1, "causal": True, "bias": False},
                        ((3, 5, 4),)))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        if a["embed_dim"] % a["num_heads"]:
            raise AttrError(f"embed_dim {a['embed_dim']} must divide by num_heads "
                            f"{a['num_heads']}")

    @classmethod
    def label(cls, a) -> str:
        return f"{a['num_heads']}×{a['embed_dim'] // a['num_heads']}" + (" causal" if a["causal"] else "")

    @staticmethod
    def infer(a, x):
        if len(x) != 3:
            raise ShapeError(f"expects sequences (N, steps, features), got {fmt_shape(x)}")
        if x[2] != a.embed_dim:
            raise ShapeError(f"input has {x[2]} features but embed_dim is {a.embed_dim}: "
                             f"set embed_dim to {x[2]}")
        return x

    @staticmethod
    def init(a, in_shapes, rng):
        d = a.embed_dim
        bound = np.sqrt(6.0 / (d + 3 * d))  # xavier_uniform_ on the (3D, D) matrix
        p = {"in_proj_weight": rng.uniform(-bound, bound, (3 * d, d))}
        if a.bias:
            p["in_proj_bias"] = np.zeros(3 * d)
        p["out_proj.weight"] = uniform_fan_in(rng, (d, d), d)
        if a.bias:
            p["out_proj.bias"] = np.zeros(d)
        return p

    @staticmethod
    def forward(a, p, ctx, x):
        d, heads = a.embed_dim, a.num_heads
        n, t, _ = x.shape
        qkv = x @ p["in_proj_weight"].T
        if a.bias:
            qkv += p["in_proj_bias"]
        q, k, v = (_heads(qkv[..., i * d:(i + 1) * d], heads) for i in range(3))
        scale = 1.0 / np.sqrt(d // heads)
        scores = (q @ k.transpose(0, 1, 3, 2)).reshape(n * heads, t, t)
        weights = attention_softmax(scores, scale, a.causal).reshape(n, heads, t, t)
        mask = None
        if ctx.training and a.dropout > 0:
            mask = (ctx.rng.random(weights.shape) >= a.dropout).astype(x.dtype)
            mask /= x.dtype.type(1 - a.dropout)
        used = weights if mask is None else weights * mask
        o = _merge(used @ v)
        y = o @ p["out_proj.weight"].T
        if a.bias:
            y += p["out_proj.bias"]
        ctx.save(x, q, k, v, weights, mask, o, scale)
        return y

    @staticmethod
    def backward(a, p, ctx, dy):
        x, q, k, v, weights, mask, o, scale = ctx.saved
        d, heads = a.embed_dim, a.num_heads
        n, t, _ = x.shape
        rows = dy.reshape(-1, d)
        grads = {"out_proj.weight": rows.T @ o.reshape(-1, d)}
        if a.bias:
            grads["out_proj.bias"] = rows.sum(axis=0)
        do = _heads(dy @ p["out_proj.weight"], heads)
        used = weights if mask is None else weights * mask
        dv = used.transpose(0, 1, 3, 2) @ do
        dw = do @ v.transpose(0, 1, 3, 2)
        if mask is not None:
            dw *= mask
        ds = attention_softmax_backward(weights.reshape(n * heads, t, t),
                                        dw.reshape(n * heads, t, t), scale)
        ds = ds.reshape(n, heads, t, t)
        dq, dk = ds @ k, ds.transpose(0, 1, 3, 2) @ q
        dqkv = np.concatenate([_merge(dq), _merge(dk), _merge(dv)], axis=2)
        flat = dqkv.reshape(-1, 3 * d)
        grads["in_proj_weight"] = flat.T @ x.reshape(-1, d)
        if a.bias:
            grads["in_proj_bias"] = flat.sum(axis=0)
        dx = dqkv @ p["in_proj_weight"] if ctx.needs_input_grad[0] else None
        return (dx,), grads
