"""Stock blocks: the residual and bottleneck blocks of ResNets, MobileNet's depthwise-separable
block, pre-norm Transformer encoder and decoder blocks and an MLP block, each written from a few settings
as a block definition (a level dict).

Settings are attribute descriptors, as a layer's are, so the window builds their form the same
way. The layouts follow the papers and PyTorch: ``torchvision.models.resnet.BasicBlock`` /
``Bottleneck`` (convolutions without bias before batch norm, a 1×1 convolution + batch norm on the
skip path when the channels or the stride change), GPT-2's pre-norm block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from layerloom.engine.spec import Attr, AttrValues, Bool, Choice, Int

X_STEP, Y_STEP = 240, 150


@dataclass(frozen=True)
class Template:
    title: str  # "Residual"
    stem: str  # the definition's name ("residual")
    doc: str
    params: dict  # setting name -> Attr
    build: Callable[[AttrValues], dict]  # settings -> {"nodes": [...], "edges": [...]}

    def bundle(self, settings: dict | None = None) -> dict:
        """The block for these settings (defaults for the rest) as a library bundle."""
        values = {}
        for name, attr in self.params.items():
            values[name] = attr.validate(name, settings[name]) if settings and name in settings \
                else attr.default
        return {"name": self.stem, **self.build(AttrValues(values)), "blocks": {}}


class _Level:
    """Nodes placed on a grid (column, row) and edges "node.port" -> "node.port"."""

    def __init__(self):
        self.nodes, self.edges = [], []

    def add(self, node_id: str, type_id: str, col: float, row: float = 0, **attrs) -> str:
        self.nodes.append({"id": node_id, "type": type_id, "attrs": attrs,
                           "pos": [round(col * X_STEP), round(row * Y_STEP)], "frozen": False})
        return node_id

    def wire(self, *chain: str) -> None:
        """``wire("a", "b", "c.x")``: each to the next; a bare id means port y out / x in."""
        for src, dst in zip(chain, chain[1:]):
            s = src.split(".") if "." in src else [src, "y"]
            d = dst.split(".") if "." in dst else [dst, "x"]
            self.edges.append({"from": s, "to": d})

    def done(self) -> dict:
        return {"nodes": self.nodes, "edges": self.edges}


def _conv_bn(level: _Level, name: str, col: float, row: float, channels: int, kernel: int,
             stride: int = 1) -> tuple[str, str]:
    level.add(name, "Conv2D", col, row, out_channels=channels, kernel_size=[kernel, kernel],
              stride=[stride, stride], padding=[kernel // 2] * 2, bias=False)
    bn = level.add(f"bn{name[4:]}" if name.startswith("conv") else f"{name}_bn", "BatchNorm2d",
                   col + 1, row)
    level.wire(name, bn)
    return name, bn


def _skip(level: _Level, a: AttrValues, out: int, col: float, row: float) -> str:
    """The skip path: the input itself, or a 1×1 convolution + batch norm when it must change."""
    if a.in_channels == out and a.stride == 1:
        return "x"
    conv, bn = _conv_bn(level, "proj", col, row, out, 1, a.stride)
    level.wire("x", conv)
    return bn


def residual(a: AttrValues) -> dict:
    """Two rows (the main path wraps after the second convolution), the skip path below."""
    level = _Level()
    level.add("x", "BlockInput", 0, 0)
    conv1, bn1 = _conv_bn(level, "conv1", 1, 0, a.out_channels, 3, a.stride)
    level.add("relu1", "ReLU", 3, 0)
    level.add("conv2", "Conv2D", 4, 0, out_channels=a.out_channels, kernel_size=[3, 3],
              stride=[1, 1], padding=[1, 1], bias=False)
    conv2, bn2 = "conv2", level.add("bn2", "BatchNorm2d", 1, 1)
    level.wire(conv2, bn2)
    skip = _skip(level, a, a.out_channels, 1, row=2)
    level.add("add", "Add", 3, 1)
    level.add("relu", "ReLU", 4, 1)
    level.add("out", "BlockOutput", 5, 1)
    level.wire("x", conv1)
    level.wire(bn1, "relu1", conv2)
    level.wire(bn2, "add.b")
    level.wire(skip, "add.a")
    level.wire("add", "relu", "out")
    return level.done()


def bottleneck(a: AttrValues) -> dict:
    """Three rows of the main path (1×1, 3×3, 1×1 convolutions), the skip path below."""
    level = _Level()
    level.add("x", "BlockInput", 0, 0)
    conv1, bn1 = _conv_bn(level, "conv1", 1, 0, a.mid_channels, 1)
    level.add("relu1", "ReLU", 3, 0)
    conv2, bn2 = _conv_bn(level, "conv2", 1, 1, a.mid_channels, 3, a.stride)
    level.add("relu2", "ReLU", 3, 1)
    conv3, bn3 = _conv_bn(level, "conv3", 1, 2, a.out_channels, 1)
    skip = _skip(level, a, a.out_channels, 1, row=3)
    level.add("add", "Add", 3, 2.5)
    level.add("relu", "ReLU", 4, 2.5)
    level.add("out", "BlockOutput", 5, 2.5)
    level.wire("x", conv1)
    level.wire(bn1, "relu1", conv2)
    level.wire(bn2, "relu2", conv3)
    level.wire(bn3, "add.b")
    level.wire(skip, "add.a")
    level.wire("add", "relu", "out")
    return level.done()


def separable(a: AttrValues) -> dict:
    """MobileNet's block: a 3×3 depthwise convolution (one filter per channel, groups = in
    channels), then a 1×1 pointwise convolution mixing the channels, each with BN and ReLU."""
    level = _Level()
    level.add("x", "BlockInput", 0, 0)
    level.add("depthwise", "Conv2D", 1, 0, out_channels=a.in_channels, kernel_size=[3, 3],
              stride=[a.stride, a.stride], padding=[1, 1], groups=a.in_channels, bias=False)
    level.add("bn1", "BatchNorm2d", 2, 0)
    level.add("relu1", "ReLU", 3, 0)
    level.add("pointwise", "Conv2D", 1, 1, out_channels=a.out_channels, kernel_size=[1, 1],
              bias=False)
    level.add("bn2", "BatchNorm2d", 2, 1)
    level.add("relu2", "ReLU", 3, 1)
    level.add("out", "BlockOutput", 4, 1)
    level.wire("x", "depthwise", "bn1", "relu1", "pointwise", "bn2", "relu2", "out")
    return level.done()


def _mlp_residual(level: _Level, a: AttrValues, src: str, n: int, row: float) -> str:
    """src + ff2(gelu(ff1(ln(src)))) into the BlockOutput "out", which the caller places
    (the order of BlockOutputs is the order of the block's output ports)."""
    level.add(f"ln{n}", "LayerNorm", 1, row)
    level.add("ff1", "Dense", 2, row, out_features=a.ff_dim)
    level.add("gelu", "GELU", 3, row)
    level.add("ff2", "Dense", 4, row, out_features=a.embed_dim)
    level.add(f"add{n}", "Add", 5, row)
    level.wire(src, f"ln{n}", "ff1", "gelu", "ff2", f"add{n}.b")
    level.wire(src, f"add{n}.a")
    level.wire(f"add{n}", "out")
    return f"add{n}"


def transformer(a: AttrValues) -> dict:
    """x + attn(ln1(x)), then that + ff2(gelu(ff1(ln2(that)))): GPT-2's block."""
    level = _Level()
    level.add("x", "BlockInput", 0, 0)
    level.add("ln1", "LayerNorm", 1, 0)
    level.add("attn", "MultiHeadSelfAttention", 2, 0, embed_dim=a.embed_dim,
              num_heads=a.num_heads, causal=a.causal)
    level.add("add1", "Add", 3.2, 0)
    level.wire("x", "ln1", "attn", "add1.b")
    level.wire("x", "add1.a")
    _mlp_residual(level, a, "add1", 2, 1)
    level.add("out", "BlockOutput", 6, 1)
    return level.done()


def decoder(a: AttrValues) -> dict:
    """x + causal self-attention(ln1(x)), + cross-attention(ln2(·), memory), + MLP(ln3(·)): the
    pre-norm decoder block of T5. The memory (and the source's padding mask) also leave the block
    unchanged, so that ×N feeds every copy the same encoder output."""
    level = _Level()
    level.add("x", "BlockInput", 0, 0)
    level.add("memory", "BlockInput", 0, 2)
    if a.padding_mask:
        level.add("mask", "BlockInput", 0, 3)
    level.add("ln1", "LayerNorm", 1, 0)
    level.add("self_attn", "MultiHeadSelfAttention", 2, 0, embed_dim=a.embed_dim,
              num_heads=a.num_heads, causal=True)
    level.add("add1", "Add", 3, 0)
    level.add("ln2", "LayerNorm", 1, 1)
    level.add("cross", "MultiHeadAttention", 2, 1, embed_dim=a.embed_dim, num_heads=a.num_heads,
              need_weights=True)
    level.add("add2", "Add", 3, 1)
    level.add("out", "BlockOutput", 6, 4)  # first: ×N chains outputs to inputs in order
    level.add("memory_out", "BlockOutput", 6, 2)
    level.wire("x", "ln1", "self_attn", "add1.b")
    level.wire("x", "add1.a")
    level.wire("add1", "ln2", "cross.query")
    level.wire("memory", "cross.key")
    level.wire("memory", "cross.value")
    level.wire("cross", "add2.b")
    level.wire("add1", "add2.a")
    _mlp_residual(level, a, "add2", 3, 4)
    level.wire("memory", "memory_out")
    if a.padding_mask:
        level.add("mask_out", "BlockOutput", 6, 3)
        level.wire("mask", "cross.key_padding_mask")
        level.wire("mask", "mask_out")
    return level.done()


def mlp(a: AttrValues) -> dict:
    level = _Level()
    level.add("x", "BlockInput", 0)
    level.add("fc1", "Dense", 1, out_features=a.hidden)
    level.add("act", a.activation, 2)
    level.add("fc2", "Dense", 3, out_features=a.out_features)
    if a.residual:
        level.add("add", "Add", 4)
        level.wire("fc2", "add.b")
        level.wire("x", "add.a")
    level.add("out", "BlockOutput", 5 if a.residual else 4)
    level.wire("x", "fc1", "act", "fc2")
    level.wire("add" if a.residual else "fc2", "out")
    return level.done()


def _channels(default: int, doc: str) -> Attr:
    return Int(default, doc, min=1, max=65536)


TEMPLATES: dict[str, Template] = {t.title: t for t in (
    Template("Residual", "residual",
             "conv–BN–ReLU–conv–BN plus the input, then ReLU (ResNet's basic block); a 1×1 "
             "projection on the skip when the channels or the stride change",
             {"in_channels": _channels(16, "channels coming in"),
              "out_channels": _channels(16, "channels going out"),
              "stride": Int(1, "2 halves the image (and projects the skip)", min=1, max=4)},
             residual),
    Template("Bottleneck", "bottleneck",
             "1×1 conv down to fewer channels, 3×3 conv, 1×1 conv back up, plus the input "
             "(ResNet-50's block); a projection on the skip when shapes change",
             {"in_channels": _channels(64, "channels coming in"),
              "mid_channels": _channels(16, "channels of the 3×3 convolution"),
              "out_channels": _channels(64, "channels going out"),
              "stride": Int(1, "2 halves the image (and projects the skip)", min=1, max=4)},
             bottleneck),
    Template("Depthwise-separable", "separable",
             "3×3 depthwise conv (one filter per channel) then 1×1 pointwise conv, each with BN "
             "and ReLU (MobileNet's block): most of a 3×3 conv's reach for a ninth of the cost",
             {"in_channels": _channels(32, "channels coming in (the depthwise groups)"),
              "out_channels": _channels(64, "channels going out"),
              "stride": Int(1, "2 halves the image", min=1, max=4)},
             separable),
    Template("Transformer encoder", "transformer",
             "pre-norm Transformer block: x + attention(LayerNorm(x)), then + MLP(LayerNorm) "
             "(GPT-2's block); keeps its input's shape, so it repeats",
             {"embed_dim": Int(64, "model width: the input's feature size", min=1, max=100_000),
              "num_heads": Int(4, "attention heads; embed_dim must divide by it", min=1,
                               max=1024),
              "ff_dim": Int(256, "width of the MLP inside (often 4 × embed_dim)", min=1,
                            max=1_000_000),
              "causal": Bool(True, "each position sees only earlier ones (a language model)")},
             transformer),
    Template("Transformer decoder", "decoder",
             "pre-norm T5 decoder block: causal self-attention, cross-attention to the "
             "encoder's output (memory), then an MLP, each with a residual; memory and mask "
             "pass through, so it repeats",
             {"embed_dim": Int(64, "model width: the target's and the memory's feature size",
                               min=1, max=100_000),
              "num_heads": Int(4, "attention heads; embed_dim must divide by it", min=1,
                               max=1024),
              "ff_dim": Int(256, "width of the MLP inside (often 4 × embed_dim)", min=1,
                            max=1_000_000),
              "padding_mask": Bool(True, "a key-padding-mask input: padded source positions "
                                         "get no attention")},
             decoder),
    Template("MLP", "mlp", "Dense → activation → Dense, optionally plus the input",
             {"hidden": Int(128, "width of the hidden layer", min=1, max=1_000_000),
              "out_features": Int(64, "outputs (equal to the inputs for a residual MLP)", min=1,
                                  max=1_000_000),
              "activation": Choice("ReLU", "the nonlinearity between the two Dense layers",
                                   choices=("ReLU", "GELU", "Tanh")),
              "residual": Bool(False, "add the input to the output (needs out = in features)")},
             mlp),
)}
