"""The benchmark's models, each built twice: as a Layerloom Graph through the public API, and as
the same PyTorch module. Nothing here is special-cased for speed: the Graphs are what a user
would draw, and the engine runs them as it runs any graph.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.graph import Graph, Node

VOCAB = 96


def _chain(g: Graph, nodes: list[tuple]) -> str:
    """Add ``(id, type, attrs)`` nodes, each fed by the one before; returns the last id."""
    prev = None
    for node_id, type_id, attrs in nodes:
        g.add_node(Node(node_id, type_id, attrs))
        if prev is not None:
            g.connect((prev, "y"), (node_id, "x"))
        prev = node_id
    return prev


def _with_loss(g: Graph, logits: str, label_shape: list) -> Graph:
    g.add_node(Node("label", "Label", {"kind": "class index", "shape": label_shape}))
    g.add_node(Node("loss", "CrossEntropyLoss", {}))
    g.connect((logits, "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    return g


def lenet_graph(loss: bool = True) -> Graph:
    g = Graph()
    last = _chain(g, [("image", "Input", {"shape": [1, 28, 28]}),
                      ("conv1", "Conv2D", {"out_channels": 6, "kernel_size": [5, 5], "padding": [2, 2]}),
                      ("relu1", "ReLU", {}), ("pool1", "MaxPool2D", {"kernel_size": [2, 2]}),
                      ("conv2", "Conv2D", {"out_channels": 16, "kernel_size": [5, 5]}),
                      ("relu2", "ReLU", {}), ("pool2", "MaxPool2D", {"kernel_size": [2, 2]}),
                      ("flatten", "Flatten", {}),
                      ("fc1", "Dense", {"out_features": 120}), ("relu3", "ReLU", {}),
                      ("fc2", "Dense", {"out_features": 84}), ("relu4", "ReLU", {}),
                      ("fc3", "Dense", {"out_features": 10})])
    return _with_loss(g, last, []) if loss else g


def mlp_graph(loss: bool = True) -> Graph:
    g = Graph()
    last = _chain(g, [("image", "Input", {"shape": [784]}),
                      ("fc1", "Dense", {"out_features": 256}), ("relu1", "ReLU", {}),
                      ("fc2", "Dense", {"out_features": 256}), ("relu2", "ReLU", {}),
                      ("fc3", "Dense", {"out_features": 10})])
    return _with_loss(g, last, []) if loss else g


def lstm_graph(seq: int) -> Graph:
    g = Graph()
    _chain(g, [("image", "Input", {"shape": [seq], "dtype": "int64"}),
               ("embed", "Embedding", {"num_embeddings": VOCAB, "embedding_dim": 64})])
    g.add_node(Node("lstm", "LSTM", {"hidden_size": 128}))
    g.add_node(Node("logits", "Dense", {"out_features": VOCAB}))
    g.connect(("embed", "y"), ("lstm", "x"))
    g.connect(("lstm", "seq"), ("logits", "x"))
    return _with_loss(g, "logits", [seq])


def block_graph(seq: int, d: int = 64, heads: int = 4) -> Graph:
    """Token + position embedding, one pre-norm Transformer block, a final norm and the logits."""
    g = Graph()
    _chain(g, [("image", "Input", {"shape": [seq], "dtype": "int64"}),
               ("tok", "Embedding", {"num_embeddings": VOCAB, "embedding_dim": d}),
               ("pos", "PositionalEmbedding", {"max_len": seq, "embedding_dim": d}),
               ("ln1", "LayerNorm", {}),
               ("attn", "MultiHeadSelfAttention", {"embed_dim": d, "num_heads": heads, "causal": True})])
    g.add_node(Node("add1", "Add", {}))
    g.connect(("pos", "y"), ("add1", "a"))
    g.connect(("attn", "y"), ("add1", "b"))
    _chain(g, [("ln2", "LayerNorm", {}), ("ff1", "Dense", {"out_features": 4 * d}),
               ("gelu", "GELU", {}), ("ff2", "Dense", {"out_features": d})])
    g.connect(("add1", "y"), ("ln2", "x"))
    g.add_node(Node("add2", "Add", {}))
    g.connect(("add1", "y"), ("add2", "a"))
    g.connect(("ff2", "y"), ("add2", "b"))
    _chain(g, [("lnf", "LayerNorm", {}), ("logits", "Dense", {"out_features": VOCAB})])
    g.connect(("add2", "y"), ("lnf", "x"))
    return _with_loss(g, "logits", [seq])


def conv1d_graph(loss: bool = True) -> Graph:
    """A 1-D CNN over 1×128 signals: three Conv1d + ReLU (two max-pooled), global average."""
    g = Graph()
    last = _chain(g, [("image", "Input", {"shape": [1, 128]}),
                      ("conv1", "Conv1d", {"out_channels": 32, "kernel_size": 7, "padding": 3}),
                      ("relu1", "ReLU", {}), ("pool1", "MaxPool1d", {"kernel_size": 2}),
                      ("conv2", "Conv1d", {"out_channels": 64, "kernel_size": 5, "padding": 2}),
                      ("relu2", "ReLU", {}), ("pool2", "MaxPool1d", {"kernel_size": 2}),
                      ("conv3", "Conv1d", {"out_channels": 64, "kernel_size": 3, "padding": 1}),
                      ("relu3", "ReLU", {}), ("gap", "AdaptiveAvgPool1d", {}),
                      ("flatten", "Flatten", {}), ("fc", "Dense", {"out_features": 10})])
    return _with_loss(g, last, []) if loss else g


def dwsep_graph(loss: bool = True) -> Graph:
    """A MobileNet-style stem on 3×32×32 images: a 3×3 conv, then two depthwise-separable blocks
    (depthwise 3×3 + ReLU, pointwise 1×1 + ReLU), a max pool between, global average pooling."""
    g = Graph()
    nodes = [("image", "Input", {"shape": [3, 32, 32]}),
             ("stem", "Conv2D", {"out_channels": 32, "kernel_size": [3, 3], "padding": [1, 1]}),
             ("relu0", "ReLU", {})]
    for i, (c, out) in enumerate([(32, 64), (64, 64)], start=1):
        nodes += [(f"dw{i}", "Conv2D", {"out_channels": c, "kernel_size": [3, 3],
                                        "padding": [1, 1], "groups": c}),
                  (f"relu_dw{i}", "ReLU", {}),
                  (f"pw{i}", "Conv2D", {"out_channels": out, "kernel_size": [1, 1]}),
                  (f"relu_pw{i}", "ReLU", {})]
        if i == 1:
            nodes.append(("pool", "MaxPool2D", {"kernel_size": [2, 2]}))
    nodes += [("gap", "AdaptiveAvgPool2d", {}), ("flatten", "Flatten", {}),
              ("fc", "Dense", {"out_features": 10})]
    last = _chain(g, nodes)
    return _with_loss(g, last, []) if loss else g


# ------------------------------------------------------------------------------- PyTorch twins
def torch_model(name: str, seq: int = 32):
    import torch
    from torch import nn

    if name == "lenet":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 10))
    if name == "conv1d":
        return nn.Sequential(nn.Conv1d(1, 32, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
                             nn.Conv1d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
                             nn.Conv1d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
                             nn.Flatten(), nn.Linear(64, 10))
    if name == "dwsep":
        def block(c, out):
            return [nn.Conv2d(c, c, 3, padding=1, groups=c), nn.ReLU(), nn.Conv2d(c, out, 1),
                    nn.ReLU()]
        return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), *block(32, 64),
                             nn.MaxPool2d(2), *block(64, 64), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(64, 10))

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, 64)
            self.lstm = nn.LSTM(64, 128, batch_first=True)
            self.logits = nn.Linear(128, VOCAB)

        def forward(self, x):
            return self.logits(self.lstm(self.embed(x))[0])

    class Block(nn.Module):
        def __init__(self, d=64, heads=4):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, d)
            self.pos = nn.Parameter(torch.zeros(seq, d))
            self.ln1, self.ln2, self.lnf = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            self.logits = nn.Linear(d, VOCAB)
            self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1))

        def forward(self, x):
            h = self.tok(x) + self.pos[:x.shape[1]]
            a = self.ln1(h)
            h = h + self.attn(a, a, a, attn_mask=self.mask, need_weights=False)[0]
            h = h + self.ff(self.ln2(h))
            return self.logits(self.lnf(h))

    return CharLSTM() if name == "lstm" else Block()


def batch(name: str, n: int, seq: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random batch (inputs, class targets) of the shape the model takes."""
    if name == "lenet":
        return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n)
    if name == "mlp":
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)
    if name in ("conv1d", "dwsep"):
        shape = (1, 128) if name == "conv1d" else (3, 32, 32)
        return rng.standard_normal((n, *shape), dtype=np.float32), rng.integers(0, 10, n)
    return rng.integers(0, VOCAB, (n, seq)), rng.integers(0, VOCAB, (n, seq))


# ------------------------------------------------------ sequence models at grown sizes (issue 15)
# name: (kind, blocks or None, width d / hidden h, heads, seq). Pre-norm GPT blocks as a user builds
# them from the palette (or the transformer block template), and a char-LSTM at wider hidden sizes.
SIZED = {
    "gpt4_d128": ("gpt", 4, 128, 4, 64),
    "gpt6_d256": ("gpt", 6, 256, 8, 128),
    "gpt2_s256": ("gpt", 2, 128, 4, 256),
    "lstm_h256": ("lstm", None, 256, 0, 64),
    "lstm_h512": ("lstm", None, 512, 0, 64),
}


def sized_seq(name: str, default: int) -> int:
    return SIZED[name][4] if name in SIZED else default


def _gpt_block(g: Graph, x: str, b: int, d: int, heads: int) -> str:
    """One pre-norm block reading ``x``: x + attn(ln(x)), then + mlp(ln(·)); returns its output."""
    p = f"b{b}_"
    _chain(g, [(p + "ln1", "LayerNorm", {}),
               (p + "attn", "MultiHeadSelfAttention", {"embed_dim": d, "num_heads": heads,
                                                        "causal": True})])
    g.connect((x, "y"), (p + "ln1", "x"))
    g.add_node(Node(p + "add1", "Add", {}))
    g.connect((x, "y"), (p + "add1", "a"))
    g.connect((p + "attn", "y"), (p + "add1", "b"))
    _chain(g, [(p + "ln2", "LayerNorm", {}), (p + "ff1", "Dense", {"out_features": 4 * d}),
               (p + "gelu", "GELU", {}), (p + "ff2", "Dense", {"out_features": d})])
    g.connect((p + "add1", "y"), (p + "ln2", "x"))
    g.add_node(Node(p + "add2", "Add", {}))
    g.connect((p + "add1", "y"), (p + "add2", "a"))
    g.connect((p + "ff2", "y"), (p + "add2", "b"))
    return p + "add2"


def sized_graph(name: str, spec: tuple | None = None) -> Graph:
    """The model ``name`` of SIZED, or of the (kind, blocks, d, heads, seq) ``spec`` given."""
    kind, blocks, d, heads, seq = spec or SIZED[name]
    g = Graph()
    if kind == "lstm":
        _chain(g, [("image", "Input", {"shape": [seq], "dtype": "int64"}),
                   ("embed", "Embedding", {"num_embeddings": VOCAB, "embedding_dim": 64})])
        g.add_node(Node("lstm", "LSTM", {"hidden_size": d}))
        g.add_node(Node("logits", "Dense", {"out_features": VOCAB}))
        g.connect(("embed", "y"), ("lstm", "x"))
        g.connect(("lstm", "seq"), ("logits", "x"))
        return _with_loss(g, "logits", [seq])
    x = _chain(g, [("image", "Input", {"shape": [seq], "dtype": "int64"}),
                   ("tok", "Embedding", {"num_embeddings": VOCAB, "embedding_dim": d}),
                   ("pos", "PositionalEmbedding", {"max_len": seq, "embedding_dim": d})])
    for b in range(blocks):
        x = _gpt_block(g, x, b, d, heads)
    _chain(g, [("lnf", "LayerNorm", {}), ("logits", "Dense", {"out_features": VOCAB})])
    g.connect((x, "y"), ("lnf", "x"))
    return _with_loss(g, "logits", [seq])


def sized_torch(name: str, spec: tuple | None = None):
    """``sized_graph``'s PyTorch twin."""
    import torch
    from torch import nn

    kind, blocks, d, heads, seq = spec or SIZED[name]
    if kind == "lstm":
        class CharLSTM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(VOCAB, 64)
                self.lstm = nn.LSTM(64, d, batch_first=True)
                self.logits = nn.Linear(d, VOCAB)

            def forward(self, x):
                return self.logits(self.lstm(self.embed(x))[0])
        return CharLSTM()

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, h, mask):
            a = self.ln1(h)
            h = h + self.attn(a, a, a, attn_mask=mask, need_weights=False)[0]
            return h + self.ff(self.ln2(h))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, d)
            self.pos = nn.Parameter(torch.zeros(seq, d))
            self.blocks = nn.ModuleList(Block() for _ in range(blocks))
            self.lnf, self.logits = nn.LayerNorm(d), nn.Linear(d, VOCAB)
            self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1))

        def forward(self, x):
            h = self.tok(x) + self.pos[:x.shape[1]]
            for block in self.blocks:
                h = block(h, self.mask)
            return self.logits(self.lnf(h))
    return GPT()
