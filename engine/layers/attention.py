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

from layerloom.engine.kernels.attention import (attention_backward, attention_backward_reference,
                                     attention_forward, attention_forward_reference)
from layerloom.engine.kernels.dense import matmul
from layerloom.engine.kernels.sums import column_sums
from layerloom.engine.layers.heads import check_heads, heads_label
from layerloom.engine.registry import register
from layerloom.engine.spec import (Bool, Example, Float, Int, Layer, ShapeError, TorchCode,
                         fmt_shape, uniform_fan_in)

# MultiHeadSelfAttention in exported PyTorch code
TORCH_ATTENTION = '''
def self_attention(module, x, causal):
    """Queries, keys and values all from x; with ``causal`` step t sees only steps up to t."""
    steps = x.shape[1]
    mask = (torch.triu(torch.ones(steps, steps, dtype=torch.bool, device=x.device), 1)
            if causal else None)
    return module(x, x, x, attn_mask=mask, need_weights=False)[0]
'''


@register
class MultiHeadSelfAttention(Layer):
    """Each position mixes the values of the positions it attends to, in several heads at once."""

    formula = ("[Q, K, V] = x·W<sub>in</sub><sup>T</sup> + b<sub>in</sub>, split into {num_heads} "
               "heads of d<sub>h</sub> = {embed_dim}/{num_heads}; per head A = "
               "softmax(Q·K<sup>T</sup> / √d<sub>h</sub>) (causal = {causal}; if True, no position "
               "sees a later one), O = A·V (dropout {dropout} on A while training); y = "
               "concat(O)·W<sub>out</sub><sup>T</sup> + b<sub>out</sub>")
    backward_formula = ("dL/dW<sub>out</sub> = (dL/dy)<sup>T</sup>·O, dL/dO = "
                        "dL/dy·W<sub>out</sub>; dL/dV = A<sup>T</sup>·dL/dO, dL/dA = "
                        "dL/dO·V<sup>T</sup>, dL/dS = A·(dL/dA − Σ<sub>keys</sub> dL/dA·A); dL/dQ "
                        "= dL/dS·K / √d<sub>h</sub>, dL/dK = (dL/dS)<sup>T</sup>·Q / "
                        "√d<sub>h</sub>; dL/dx = dL/d[Q, K, V]·W<sub>in</sub>, dL/dW<sub>in</sub> "
                        "= (dL/d[Q, K, V])<sup>T</sup>·x, dL/db = Σ of the matching output "
                        "gradient")
    # Its kernels split the batch over the cores themselves (kernels/attention.py); declared
    # parallel so that the BLAS stays on one thread and large products are split over rows
    # (engine.threads) rather than handed to two spinning OpenBLAS threads
    parallel_kernels = True
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
        check_heads(a)

    @classmethod
    def label(cls, a) -> str:
        return heads_label(a)

    @staticmethod
    def infer(a, x):
        if len(x) != 3:
            raise ShapeError(f"expects sequences (N, steps, features), got {fmt_shape(x)}")
        if x[2] != a.embed_dim:
            raise ShapeError(f"input has {x[2]} features but embed_dim is {a.embed_dim}: "
                             f"set embed_dim to {x[2]}")
        return x

    @staticmethod
    def param_shapes(a, in_shapes):
        d = a.embed_dim
        if not a.bias:
            return {"in_proj_weight": (3 * d, d), "out_proj.weight": (d, d)}
        return {"in_proj_weight": (3 * d, d), "in_proj_bias": (3 * d,),
                "out_proj.weight": (d, d), "out_proj.bias": (d,)}

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
        rows = x.reshape(-1, d)
        qkv = matmul(rows, p["in_proj_weight"].T, p["in_proj_bias"] if a.bias else None)
        qkv = qkv.reshape(n, t, 3 * d)
        scale = 1.0 / np.sqrt(d // heads)
        mask = None
        if ctx.training and a.dropout > 0:
            mask = (ctx.rng.random((n, heads, t, t)) >= a.dropout).astype(x.dtype)
            mask /= x.dtype.type(1 - a.dropout)
            o, weights = attention_forward_reference(qkv, heads, scale, a.causal, mask)
        else:  # the kernel keeps the weights transposed: (N, heads, keys, queries)
            o, weights = attention_forward(qkv, heads, x.dtype.type(scale), a.causal)
        y = matmul(o.reshape(-1, d), p["out_proj.weight"].T, p["out_proj.bias"] if a.bias else None)
        ctx.save(rows, qkv, weights, mask, o, scale)
        return y.reshape(n, t, d)

    @staticmethod
    def backward(a, p, ctx, dy):
        rows, qkv, weights, mask, o, scale = ctx.saved
        d, heads = a.embed_dim, a.num_heads
        dy2 = dy.reshape(-1, d)
        grads = {"out_proj.weight": matmul(dy2.T, o.reshape(-1, d))}
        if a.bias:
            grads["out_proj.bias"] = column_sums(dy2)
        do = matmul(dy2, p["out_proj.weight"]).reshape(o.shape)
        if mask is None:
            dqkv = attention_backward(qkv, weights, do, heads, dy.dtype.type(scale), a.causal)
        else:
            dqkv = attention_backward_reference(qkv, weights, do, heads, scale, mask)
        flat = dqkv.reshape(-1, 3 * d)
        grads["in_proj_weight"] = matmul(flat.T, rows)
        if a.bias:
            grads["in_proj_bias"] = column_sums(flat)
        need = ctx.needs_input_grad[0]
        dx = matmul(flat, p["in_proj_weight"]).reshape(dy.shape) if need else None
        return (dx,), grads

    @staticmethod
    def to_torch(a, in_shapes):
        return TorchCode(f"self_attention({{m}}, {{x}}, causal={a.causal})",
                         f"nn.MultiheadAttention({a.embed_dim}, {a.num_heads}, "
                         f"dropout={a.dropout!r}, bias={a.bias}, batch_first=True)",
                         (TORCH_ATTENTION,))

    @staticmethod
    def to_onnx(a, in_shapes, g, x):
        """Written out in matrix products (ONNX 17 has no attention operator); the causal mask
        is a constant -inf above the diagonal, sized by the Input's fixed sequence length."""
        d, heads, steps = a.embed_dim, a.num_heads, in_shapes[0][1]
        qkv = g.op("MatMul", x, g.op("Transpose", g.param("in_proj_weight"), perm=[1, 0]))
        if a.bias:
            qkv = g.op("Add", qkv, g.param("in_proj_bias"))
        split = g.op("Split", qkv, g.const([d, d, d], np.int64), axis=2, outputs=3)
        per_head = g.const([0, 0, heads, d // heads], np.int64)
        q, k, v = (g.op("Transpose", g.op("Reshape", t, per_head), perm=[0, 2, 1, 3])
                   for t in split)  # (N, heads, T, D/heads)
        scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])),
                      g.const(1.0 / np.sqrt(d // heads)))
        if a.causal:
            scores = g.op("Add", scores, g.const(np.triu(np.full((steps, steps), -np.inf), 1)))
        o = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        o = g.op("Reshape", g.op("Transpose", o, perm=[0, 2, 1, 3]), g.const([0, 0, d], np.int64))
        y = g.op("MatMul", o, g.op("Transpose", g.param("out_proj.weight"), perm=[1, 0]))
        return g.op("Add", y, g.param("out_proj.bias")) if a.bias else y
