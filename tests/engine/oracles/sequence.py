"""Oracles for the sequence layers: embeddings, recurrent, normalisation, attention, sequence heads.

PyTorch modules get Layerloom's parameters copied in through ``torch.func.functional_call``, so
the gradients flow back to the very tensors the registry test reads.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def _recurrent(module_type):
    def oracle(a, p, xs, training):
        x = xs[0]
        module = module_type(x.shape[-1], a.hidden_size, batch_first=True, bias=a.bias,
                             bidirectional=a.bidirectional).double()
        seq, h_n = functional_call(module, p, (x,))
        if isinstance(h_n, tuple):  # LSTM returns (h_n, c_n)
            h_n = h_n[0]
        last = h_n.transpose(0, 1).reshape(len(x), -1)  # (dirs, N, H) -> N × dirs·H
        return seq, last
    return oracle


def _attention(a, p, xs, training):
    x = xs[0]
    module = nn.MultiheadAttention(a.embed_dim, a.num_heads, dropout=a.dropout, bias=a.bias,
                                   batch_first=True).double()
    module.train(training)
    steps = x.shape[1]
    mask = torch.triu(torch.ones(steps, steps, dtype=torch.bool), 1) if a.causal else None
    y, _ = functional_call(module, p, (x, x, x), {"attn_mask": mask, "need_weights": False})
    return y


def _cross_attention(a, p, xs, training):
    """nn.MultiheadAttention with separate inputs; a nonzero mask entry is a padded key."""
    query, key, value = xs[:3]
    module = nn.MultiheadAttention(a.embed_dim, a.num_heads, dropout=a.dropout, bias=a.bias,
                                   kdim=a.kdim or None, vdim=a.vdim or None,
                                   batch_first=True).double()
    module.train(training)
    steps, keys = query.shape[1], key.shape[1]
    mask = torch.ones(steps, keys, dtype=torch.bool).triu(1) if a.causal else None
    pad = xs[3] != 0 if len(xs) > 3 else None
    y, weights = functional_call(module, p, (query, key, value),
                                 {"attn_mask": mask, "key_padding_mask": pad,
                                  "need_weights": a.need_weights})
    return (y, weights) if a.need_weights else y


def _batch_norm(a, p, xs, training):
    return F.batch_norm(xs[0], p.get("running_mean"), p.get("running_var"), p.get("weight"),
                        p.get("bias"), training or not a.track_running_stats, a.momentum, a.eps)


def _layer_norm(a, p, xs, training):
    return F.layer_norm(xs[0], xs[0].shape[-1:], p.get("weight"), p.get("bias"), a.eps)


ORACLES = {
    "SimpleRNN": _recurrent(nn.RNN),
    "LSTM": _recurrent(nn.LSTM),
    "GRU": _recurrent(nn.GRU),
    "Embedding": lambda a, p, xs, tr: F.embedding(xs[0], p["weight"]),
    "PositionalEmbedding": lambda a, p, xs, tr: xs[0] + p["weight"][:xs[0].shape[1]],
    "LayerNorm": _layer_norm,
    "BatchNorm1d": _batch_norm,
    "BatchNorm2d": _batch_norm,
    "MultiHeadSelfAttention": _attention,
    "MultiHeadAttention": _cross_attention,
    "TakeLast": lambda a, p, xs, tr: xs[0][:, -1],
    "MeanPool": lambda a, p, xs, tr: xs[0].mean(dim=1),
}
