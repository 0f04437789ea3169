"""Multi-head attention with separate query, key and value inputs, as
``torch.nn.MultiheadAttention(embed_dim, num_heads, bias, kdim, vdim, batch_first=True)``.

The one-input case stays ``MultiHeadSelfAttention``; this layer is what an encoder–decoder needs:
the decoder's queries attend to the encoder's keys and values (cross-attention), and an optional
``key_padding_mask`` (N×S, nonzero = a padded key nobody attends to, as PyTorch's boolean mask)
keeps padding out. Parameters keep PyTorch's names and layouts, so a node ``cross`` stores the
state_dict of an ``nn.MultiheadAttention`` named ``cross``: ``in_proj_weight`` (3E×E) when
keys and values are E wide, else ``q_proj_weight`` (E×E), ``k_proj_weight`` (E×kdim) and
``v_proj_weight`` (E×vdim); then ``in_proj_bias`` (3E), ``out_proj.weight``, ``out_proj.bias``.
With ``need_weights`` (PyTorch's default) a second output carries the attention weights averaged
over the heads (N×L×S), as ``need_weights=True`` returns them: the encoder–decoder's alignment
map. ``causal`` lets query i see keys 0..i (PyTorch's ``is_causal``, aligned at the start).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.attention import (mha_backward, mha_backward_reference, mha_forward,
                                                mha_forward_reference, no_padding)
from layerloom.engine.kernels.dense import matmul
from layerloom.engine.layers.heads import check_heads, heads_label
from layerloom.engine.registry import register
from layerloom.engine.spec import (Bool, Example, FixedInput, Float, Int, Layer,
                                   ShapeError, TorchCode, fmt_shape, uniform_fan_in)

# MultiHeadAttention in exported PyTorch code
TORCH_MHA = '''
def multi_head_attention(module, query, key, value, key_padding_mask, causal, need_weights):
    """nn.MultiheadAttention with query i seeing keys 0..i when ``causal`` and the keys where
    ``key_padding_mask`` is nonzero left out."""
    mask = (torch.ones(query.shape[1], key.shape[1], dtype=torch.bool,
                       device=query.device).triu(1) if causal else None)
    pad = None if key_padding_mask is None else key_padding_mask != 0
    y, weights = module(query, key, value, key_padding_mask=pad, attn_mask=mask,
                        need_weights=need_weights)
    return (y, weights) if need_weights else y
'''


def _widths(a) -> tuple[int, int]:
    """(kdim, vdim): 0 stands for embed_dim, as PyTorch's None."""
    return a["kdim"] or a["embed_dim"], a["vdim"] or a["embed_dim"]


def _packed(a) -> bool:
    """PyTorch keeps one stacked ``in_proj_weight`` exactly when keys and values are E wide."""
    return _widths(a) == (a["embed_dim"], a["embed_dim"])


def _proj_weights(a, p) -> tuple:
    """(W_q, W_k, W_v), each E × its input's width (views of ``in_proj_weight`` when packed)."""
    e = a.embed_dim
    if _packed(a):
        w = p["in_proj_weight"]
        return w[:e], w[e:2 * e], w[2 * e:]
    return p["q_proj_weight"], p["k_proj_weight"], p["v_proj_weight"]


def _xavier(rng, shape) -> np.ndarray:
    bound = np.sqrt(6.0 / (shape[0] + shape[1]))  # torch.nn.init.xavier_uniform_
    return rng.uniform(-bound, bound, shape)


@register
class MultiHeadAttention(Layer):
    """Queries attend to separate keys and values (cross-attention), in several heads at once."""

    formula = ("Q = query·W<sub>q</sub><sup>T</sup>, K = key·W<sub>k</sub><sup>T</sup>, V = "
               "value·W<sub>v</sub><sup>T</sup> (+ biases), split into {num_heads} heads of "
               "d<sub>h</sub> = {embed_dim}/{num_heads}; per head A = softmax(Q·K<sup>T</sup> / "
               "√d<sub>h</sub>) over the keys, padded keys left out (causal = {causal}: query i "
               "sees keys 0..i), O = A·V (dropout {dropout} on A while training); y = "
               "concat(O)·W<sub>out</sub><sup>T</sup> + b<sub>out</sub>; weights = A averaged "
               "over the heads")
    backward_formula = ("dL/dO = dL/dy·W<sub>out</sub>; dL/dV = A<sup>T</sup>·dL/dO, dL/dA = "
                        "dL/dO·V<sup>T</sup> + dL/dweights / heads, dL/dS = A·(dL/dA − "
                        "Σ<sub>keys</sub> dL/dA·A) (zero for padded keys); dL/dQ = dL/dS·K / "
                        "√d<sub>h</sub>, dL/dK = (dL/dS)<sup>T</sup>·Q / √d<sub>h</sub>; "
                        "dL/dquery = dL/dQ·W<sub>q</sub>, dL/dW<sub>q</sub> = "
                        "(dL/dQ)<sup>T</sup>·query, and so for key and value; the mask gets none")
    # Its kernels split the batch over the cores themselves (kernels/attention.py); declared
    # parallel so that the BLAS stays on one thread and large products are split over rows
    # (engine.threads) rather than handed to two spinning OpenBLAS threads
    parallel_kernels = True
    category = "Attention"
    inputs = ("query", "key", "value", "key_padding_mask")
    optional_inputs = ("key_padding_mask",)
    differentiable_inputs = ("query", "key", "value")
    outputs = ("y", "weights")
    attrs = {
        "embed_dim": Int(64, "model width E: the query's feature size and the output's",
                         min=1, max=100_000),
        "num_heads": Int(4, "heads; embed_dim must divide by it", min=1, max=1024),
        "kdim": Int(0, "the key's feature size; 0 means embed_dim", min=0, max=100_000),
        "vdim": Int(0, "the value's feature size; 0 means embed_dim", min=0, max=100_000),
        "causal": Bool(False, "query i attends only to keys 0..i (a decoder's self-attention)"),
        "dropout": Float(0.0, "dropout on the attention weights while training", min=0.0,
                         max=0.99),
        "bias": Bool(True, "learn biases for the input and output projections"),
        "need_weights": Bool(True, "a second output: the weights averaged over the heads"),
    }
    examples = (Example({"embed_dim": 4, "num_heads": 2}, ((2, 3, 4), (2, 5, 4), (2, 5, 4))),
                Example({"embed_dim": 6, "num_heads": 3, "kdim": 3, "vdim": 5, "causal": True},
                        ((2, 4, 6), (2, 3, 3), (2, 3, 5))),
                Example({"embed_dim": 4, "num_heads": 2, "bias": False, "need_weights": False},
                        ((3, 2, 4), (3, 5, 4), (3, 5, 4),
                         FixedInput(((0, 0, 0, 1, 1), (0, 0, 0, 0, 0), (0, 1, 0, 1, 1))))),
                Example({"embed_dim": 6, "num_heads": 2, "vdim": 3, "causal": True},
                        ((2, 4, 6), (2, 4, 6), (2, 4, 3),
                         FixedInput(((0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.0, 1.0))))))

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        check_heads(a)

    @classmethod
    def outputs_for(cls, a) -> tuple:
        return cls.outputs if a.get("need_weights", True) else cls.outputs[:1]

    @classmethod
    def label(cls, a) -> str:
        return heads_label(a)

    @staticmethod
    def infer(a, query, key, value, key_padding_mask=None):
        kdim, vdim = _widths(a)
        for port, shape, width, attr in (("query", query, a.embed_dim, "embed_dim"),
                                         ("key", key, kdim, "kdim"), ("value", value, vdim, "vdim")):
            if len(shape) != 3:
                raise ShapeError(f"{port} must be sequences (N, steps, features), got "
                                 f"{fmt_shape(shape)}")
            if shape[2] != width:
                raise ShapeError(f"{port} has {shape[2]} features but {attr} is {width}: set "
                                 f"{attr} to {shape[2]}")
        if key[1] != value[1]:
            raise ShapeError(f"key has {key[1]} steps but value has {value[1]}: they must be "
                             f"the same positions")
        if key_padding_mask is not None and tuple(key_padding_mask[1:]) != (key[1],):
            raise ShapeError(f"key_padding_mask must be (N, {key[1]}), one flag per key, got "
                             f"{fmt_shape(key_padding_mask)}")
        y = (query[0], query[1], a.embed_dim)
        return (y, (query[0], query[1], key[1])) if a.need_weights else y

    @staticmethod
    def param_shapes(a, in_shapes):
        e = a.embed_dim
        kdim, vdim = _widths(a)
        shapes = ({"in_proj_weight": (3 * e, e)} if _packed(a) else
                  {"q_proj_weight": (e, e), "k_proj_weight": (e, kdim),
                   "v_proj_weight": (e, vdim)})
        if a.bias:
            shapes["in_proj_bias"] = (3 * e,)
        shapes["out_proj.weight"] = (e, e)
        if a.bias:
            shapes["out_proj.bias"] = (e,)
        return shapes

    @staticmethod
    def init(a, in_shapes, rng):
        """As PyTorch's ``_reset_parameters``: Xavier-uniform projections, zero biases."""
        shapes = MultiHeadAttention.param_shapes(a, in_shapes)
        p = {}
        for name, shape in shapes.items():
            if name == "out_proj.weight":
                p[name] = uniform_fan_in(rng, shape, a.embed_dim)
            elif len(shape) == 2:
                p[name] = _xavier(rng, shape)
            else:
                p[name] = np.zeros(shape)
        return p

    @staticmethod
    def forward(a, p, ctx, query, key, value, key_padding_mask=None):
        e, heads = a.embed_dim, a.num_heads
        rows = tuple(x.reshape(-1, x.shape[-1]) for x in (query, key, value))
        projected = []
        for i, (r, w, x) in enumerate(zip(rows, _proj_weights(a, p), (query, key, value))):
            z = matmul(r, w.T)
            if a.bias:
                z += p["in_proj_bias"][i * e:(i + 1) * e]
            projected.append(z.reshape(len(x), x.shape[1], e))
        q, k, v = projected
        pad = None if key_padding_mask is None else np.asarray(key_padding_mask) != 0
        scale = 1.0 / np.sqrt(e // heads)
        drop = None
        if ctx.training and a.dropout > 0:
            n, steps, keys = len(query), query.shape[1], key.shape[1]
            drop = (ctx.rng.random((n, heads, steps, keys)) >= a.dropout).astype(query.dtype)
            drop /= query.dtype.type(1 - a.dropout)
        if drop is None:  # the kernel keeps the weights transposed: (N, heads, keys, queries)
            pad = no_padding(*key.shape[:2]) if pad is None else np.ascontiguousarray(pad)
            o, weights = mha_forward(q, k, v, heads, q.dtype.type(scale), a.causal, pad)
        else:
            o, weights = mha_forward_reference(q, k, v, heads, scale, a.causal, pad, drop)
        y = matmul(o.reshape(-1, e), p["out_proj.weight"].T)
        if a.bias:
            y += p["out_proj.bias"]
        ctx.save(rows, q, k, v, weights, drop, o, scale)
        y = y.reshape(len(query), query.shape[1], e)
        if not a.need_weights:
            return y
        if drop is None:
            return y, np.ascontiguousarray(weights.mean(axis=1).transpose(0, 2, 1))
        return y, (weights * drop).mean(axis=1)  # as PyTorch: the weights that mixed values

    @staticmethod
    def backward(a, p, ctx, dy, dweights=None):
        rows, q, k, v, weights, drop, o, scale = ctx.saved
        e, heads = a.embed_dim, a.num_heads
        dy2 = dy.reshape(-1, e)
        grads = {"out_proj.weight": matmul(dy2.T, o.reshape(-1, e))}
        if a.bias:
            grads["out_proj.bias"] = dy2.sum(axis=0)
        do = matmul(dy2, p["out_proj.weight"]).reshape(o.shape)
        dused = dweights / heads if dweights is not None and dweights.any() else None
        if drop is None:
            dqkv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
            dused_t = (np.empty((0, 0, 0), q.dtype) if dused is None else
                       np.ascontiguousarray(dused.transpose(0, 2, 1), dtype=q.dtype))
            mha_backward(q, k, v, weights, do, heads, q.dtype.type(scale), dused_t, *dqkv,
                         causal=a.causal)
        else:
            dqkv = mha_backward_reference(q, k, v, weights, do, heads, scale, drop, dused)
        flat = [d.reshape(-1, e) for d in dqkv]
        dw = [matmul(f.T, r) for f, r in zip(flat, rows)]
        if _packed(a):
            grads["in_proj_weight"] = np.concatenate(dw)
        else:
            grads.update(zip(("q_proj_weight", "k_proj_weight", "v_proj_weight"), dw))
        if a.bias:
            grads["in_proj_bias"] = np.concatenate([f.sum(axis=0) for f in flat])
        needs = tuple(ctx.needs_input_grad) or (True,) * 3
        dxs = tuple(matmul(f, w).reshape(*z.shape[:2], -1) if need else None
                    for f, w, z, need in zip(flat, _proj_weights(a, p), (q, k, v), needs))
        return (*dxs, None), grads

    @staticmethod
    def to_torch(a, in_shapes):
        kdim, vdim = _widths(a)
        widths = f", kdim={kdim}, vdim={vdim}" if not _packed(a) else ""
        masked = len(in_shapes) > 3 and in_shapes[3] is not None
        return TorchCode(f"multi_head_attention({{m}}, {{query}}, {{key}}, {{value}}, "
                         f"{'{key_padding_mask}' if masked else 'None'}, causal={a.causal}, "
                         f"need_weights={a.need_weights})",
                         f"nn.MultiheadAttention({a.embed_dim}, {a.num_heads}, "
                         f"dropout={a.dropout!r}, bias={a.bias}{widths}, batch_first=True)",
                         (TORCH_MHA,))

    @staticmethod
    def to_onnx(a, in_shapes, g, query, key, value, key_padding_mask=""):
        """Matrix products (ONNX 17 has no attention operator); the causal mask is a constant
        sized by the fixed sequence lengths, padded keys add -inf to their scores."""
        e, heads = a.embed_dim, a.num_heads
        per_head = g.const([0, 0, heads, e // heads], np.int64)
        if _packed(a):  # the stacked (3E, E) matrix, transposed and cut in three
            ws = g.op("Split", g.op("Transpose", g.param("in_proj_weight"), perm=[1, 0]),
                      g.const([e, e, e], np.int64), axis=1, outputs=3)
        else:
            ws = [g.op("Transpose", g.param(f"{c}_proj_weight"), perm=[1, 0]) for c in "qkv"]
        if a.bias:
            bs = g.op("Split", g.param("in_proj_bias"), g.const([e, e, e], np.int64), axis=0,
                      outputs=3)
        heads_of = []
        for i, x in enumerate((query, key, value)):
            z = g.op("MatMul", x, ws[i])
            if a.bias:
                z = g.op("Add", z, bs[i])
            heads_of.append(g.op("Transpose", g.op("Reshape", z, per_head), perm=[0, 2, 1, 3]))
        q, k, v = heads_of  # (N, heads, steps, E/heads)
        scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])),
                      g.const(1.0 / np.sqrt(e // heads)))
        if a.causal:
            steps, keys = in_shapes[0][1], in_shapes[1][1]
            scores = g.op("Add", scores, g.const(np.triu(np.full((steps, keys), -np.inf), 1)))
        if key_padding_mask:
            padded = g.op("Cast", key_padding_mask, to=9)  # BOOL: nonzero = padded
            minus_inf = g.op("Where", padded, g.const(-np.inf), g.const(0.0))
            scores = g.op("Add", scores, g.op("Unsqueeze", minus_inf,
                                              g.const([1, 2], np.int64)))
        weights = g.op("Softmax", scores, axis=-1)
        o = g.op("MatMul", weights, v)
        o = g.op("Reshape", g.op("Transpose", o, perm=[0, 2, 1, 3]), g.const([0, 0, e], np.int64))
        y = g.op("MatMul", o, g.op("Transpose", g.param("out_proj.weight"), perm=[1, 0]))
        if a.bias:
            y = g.op("Add", y, g.param("out_proj.bias"))
        if not a.need_weights:
            return y
        return y, g.op("ReduceMean", weights, axes=[1], keepdims=0)
