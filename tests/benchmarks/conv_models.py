"""The convnet rows' models (issue 15), each built twice: a Layerloom Graph through the public API
and the same PyTorch module. CIFAR-size (3×32×32) networks of the kinds people grow LeNet into: a
VGG-style stack of 3×3 convolutions, ones with 5×5 or 3×3 kernels and stride-2 convolutions
instead of pools, a ResNet-style stage (conv without bias → BatchNorm → ReLU, two residual
blocks) and a ResNet with stride-2 stages and 1×1 projection shortcuts (16 → 32 → 64 channels),
one of ResNet-18's widths (64 → 512 channels, one block a stage), one with 2×2 average pools and
one of ResNet-50's bottleneck blocks (1×1 → 3×3 → 1×1, a stage). Their rows (``ROWS``) are
``bench_train.py``'s. Nothing here is special-cased for speed: the Graphs are what a user would
draw.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.graph import Graph, Node

SHAPE = (3, 32, 32)


def _conv(c: int, k: int = 3, stride: int = 1, bias: bool = True) -> dict:
    return {"out_channels": c, "kernel_size": [k, k], "stride": [stride, stride],
            "padding": [k // 2, k // 2], "bias": bias}


def _add(g: Graph, prev: str | None, node_id: str, type_id: str, attrs: dict | None = None,
         port: str = "x") -> str:
    g.add_node(Node(node_id, type_id, attrs or {}))
    if prev is not None:
        g.connect((prev, "y"), (node_id, port))
    return node_id


def _head(g: Graph, prev: str, loss: bool) -> Graph:
    prev = _add(g, prev, "flatten", "Flatten")
    prev = _add(g, prev, "fc1", "Dense", {"out_features": 256})
    prev = _add(g, prev, "relu_fc", "ReLU")
    prev = _add(g, prev, "fc2", "Dense", {"out_features": 10})
    if loss:
        _add(g, None, "label", "Label", {"kind": "class index", "shape": []})
        _add(g, prev, "loss", "CrossEntropyLoss", port="input")
        g.connect(("label", "y"), ("loss", "target"))
    return g


def _stages(loss: bool, channels: tuple, k: int) -> Graph:
    """Stages of two k×k convolutions (padding k // 2) + ReLU, then a 2×2 max pool; the head."""
    g = Graph()
    prev = _add(g, None, "image", "Input", {"shape": list(SHAPE)})
    for i, c in enumerate(channels, start=1):
        for j in (1, 2):
            prev = _add(g, prev, f"conv{i}{j}", "Conv2D", _conv(c, k))
            prev = _add(g, prev, f"relu{i}{j}", "ReLU")
        prev = _add(g, prev, f"pool{i}", "MaxPool2D", {"kernel_size": [2, 2]})
    return _head(g, prev, loss)


def vgg_graph(loss: bool = True) -> Graph:
    """Three stages of two 3×3 convolutions (padding 1) + ReLU, then a 2×2 max pool: 32, 64, 128
    channels; Dense 256 → 10."""
    return _stages(loss, (32, 64, 128), 3)


def strided_graph(loss: bool = True) -> Graph:
    """5×5 convolutions: 32 channels at stride 1, then 64 and 128 at stride 2 (no pools), a 3×3
    of 128, a 2×2 max pool; Dense 256 → 10."""
    g = Graph()
    prev = _add(g, None, "image", "Input", {"shape": list(SHAPE)})
    for node_id, attrs in (("conv1", _conv(32, 5)), ("conv2", _conv(64, 5, 2)),
                           ("conv3", _conv(128, 5, 2)), ("conv4", _conv(128, 3))):
        prev = _add(g, prev, node_id, "Conv2D", attrs)
        prev = _add(g, prev, f"relu_{node_id}", "ReLU")
    prev = _add(g, prev, "pool", "MaxPool2D", {"kernel_size": [2, 2]})
    return _head(g, prev, loss)


S2CNN_CHANNELS = (32, 64, 128, 256)


def s2cnn_graph(loss: bool = True) -> Graph:
    """3×3 convolutions + ReLU, 32 channels at stride 1, then 64, 128 and 256 at stride 2
    (padding 1: maps of 16×16, 8×8, 4×4) downsampling instead of pools; Dense 256 → 10."""
    g = Graph()
    prev = _add(g, None, "image", "Input", {"shape": list(SHAPE)})
    for i, c in enumerate(S2CNN_CHANNELS):
        prev = _add(g, prev, f"conv{i}", "Conv2D", _conv(c, 3, 1 if i == 0 else 2))
        prev = _add(g, prev, f"relu{i}", "ReLU")
    return _head(g, prev, loss)


def cnn5_graph(loss: bool = True) -> Graph:
    """LeNet's 5×5 convolutions grown to CIFAR size: two stages of two 5×5 convolutions at
    stride 1 (padding 2; 32, then 64 channels) + ReLU, a 2×2 max pool after each; Dense 256 → 10."""
    return _stages(loss, (32, 64), 5)


CNN5_DEEP_CHANNELS = (16, 32, 64, 128)


def cnn5_deep_graph(loss: bool = True) -> Graph:
    """Four stages of two 5×5 convolutions (16, 32, 64, 128 channels) + ReLU and a 2×2 max pool:
    the last stage's convolutions on maps of 4×4, where most of a 5×5 window is padding."""
    return _stages(loss, CNN5_DEEP_CHANNELS, 5)


def _conv_bn(g: Graph, prev: str, name: str, c: int, k: int = 3, stride: int = 1) -> str:
    prev = _add(g, prev, f"{name}_conv", "Conv2D", _conv(c, k, stride, bias=False))
    return _add(g, prev, f"{name}_bn", "BatchNorm2d")


def _resnet(loss: bool, stem: int, stages: tuple) -> Graph:
    """A stem (conv → BN → ReLU), then one basic block per stage (conv → BN → ReLU →
    conv → BN, + the shortcut, ReLU) of (channels, stride); where a block changes the shape,
    its shortcut is a 1×1 convolution at its stride → BN (ResNet's projection). Global
    average pooling, Dense 10."""
    g = Graph()
    prev = _add(g, None, "image", "Input", {"shape": list(SHAPE)})
    prev, c_in = _add(g, _conv_bn(g, prev, "stem", stem), "stem_relu", "ReLU"), stem
    for b, (c, stride) in enumerate(stages, start=1):
        inner = _add(g, _conv_bn(g, prev, f"b{b}a", c, 3, stride), f"b{b}a_relu", "ReLU")
        inner = _conv_bn(g, inner, f"b{b}b", c)
        short = prev if (c, stride) == (c_in, 1) else _conv_bn(g, prev, f"b{b}p", c, 1, stride)
        add = _add(g, inner, f"b{b}_add", "Add", port="a")
        g.connect((short, "y"), (add, "b"))
        prev, c_in = _add(g, add, f"b{b}_relu", "ReLU"), c
    return _pooled_head(g, prev, loss)


def _pooled_head(g: Graph, prev: str, loss: bool) -> Graph:
    """Global average pooling, Dense 10 (and the loss): the ResNets' head."""
    prev = _add(g, prev, "gap", "AdaptiveAvgPool2d")
    prev = _add(g, prev, "flatten", "Flatten")
    prev = _add(g, prev, "fc", "Dense", {"out_features": 10})
    if loss:
        _add(g, None, "label", "Label", {"kind": "class index", "shape": []})
        _add(g, prev, "loss", "CrossEntropyLoss", port="input")
        g.connect(("label", "y"), ("loss", "target"))
    return g


def resnet_graph(loss: bool = True, channels: int = 32) -> Graph:
    """A stem and two residual blocks of ``channels`` at full size: ResNet's basic block at
    CIFAR size."""
    return _resnet(loss, channels, ((channels, 1), (channels, 1)))


RESNET_S2_STAGES = ((16, 1), (32, 2), (64, 2))


def resnet_s2_graph(loss: bool = True) -> Graph:
    """ResNet-20's plan with one block a stage: 16 channels at 32×32, then 32 and 64 at stride 2
    with 1×1 projection shortcuts."""
    return _resnet(loss, 16, RESNET_S2_STAGES)


RESNET4_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


def resnet4_graph(loss: bool = True) -> Graph:
    """ResNet-18's widths with one block a stage: 64 channels at 32×32, then 128, 256 and 512
    at stride 2 (maps of 16×16, 8×8 and 4×4) with 1×1 projection shortcuts."""
    return _resnet(loss, 64, RESNET4_STAGES)


AVGCNN_CHANNELS = (16, 32, 64)
BOTTLENECK_STAGES = ((16, 1), (32, 2), (64, 2))  # (inner width, stride); outputs 4 × inner


def avgcnn_graph(loss: bool = True) -> Graph:
    """Three 3×3 convolutions (padding 1; 16, 32, 64 channels) + ReLU, each followed by a 2×2
    average pool instead of a max pool (LeNet's original pooling at CIFAR size)."""
    g = Graph()
    prev = _add(g, None, "image", "Input", {"shape": list(SHAPE)})
    for i, c in enumerate(AVGCNN_CHANNELS, start=1):
        prev = _add(g, _add(g, prev, f"conv{i}", "Conv2D", _conv(c)), f"relu{i}", "ReLU")
        prev = _add(g, prev, f"pool{i}", "AvgPool2D", {"kernel_size": [2, 2]})
    return _head(g, prev, loss)


def bottleneck_graph(loss: bool = True) -> Graph:
    """ResNet-50's block at CIFAR size: a 32-channel stem, then one bottleneck block a stage
    (1×1 → BN → ReLU, 3×3 at the stage's stride → BN → ReLU, 1×1 to 4× the width → BN, + the
    shortcut, ReLU; a 1×1 projection where the shape changes): 64, 128, 256 channels out."""
    g = Graph()
    prev = _add(g, None, "image", "Input", {"shape": list(SHAPE)})
    prev, c_in = _add(g, _conv_bn(g, prev, "stem", 32), "stem_relu", "ReLU"), 32
    for b, (c, stride) in enumerate(BOTTLENECK_STAGES, start=1):
        inner = _add(g, _conv_bn(g, prev, f"b{b}a", c, 1), f"b{b}a_relu", "ReLU")
        inner = _add(g, _conv_bn(g, inner, f"b{b}m", c, 3, stride), f"b{b}m_relu", "ReLU")
        inner = _conv_bn(g, inner, f"b{b}b", 4 * c, 1)
        short = prev if (4 * c, stride) == (c_in, 1) else _conv_bn(g, prev, f"b{b}p", 4 * c, 1,
                                                                   stride)
        add = _add(g, inner, f"b{b}_add", "Add", port="a")
        g.connect((short, "y"), (add, "b"))
        prev, c_in = _add(g, add, f"b{b}_relu", "ReLU"), 4 * c
    return _pooled_head(g, prev, loss)


GRAPHS = {"vgg": vgg_graph, "strided": strided_graph, "s2cnn": s2cnn_graph, "cnn5": cnn5_graph,
          "cnn5_deep": cnn5_deep_graph, "resnet": resnet_graph, "resnet_s2": resnet_s2_graph,
          "resnet4": resnet4_graph, "avgcnn": avgcnn_graph, "bottleneck": bottleneck_graph}


ROWS = {  # bench_train.py's convnet rows: (label, model, batch, items, unit, latency, target)
    "vgg_train": ("VGG-style CNN 3×32×32 (6 conv 3×3, 32→128) train b64", "vgg", 64, 64,
                  "samples/s", False, 1.5),
    "strided_train": ("CNN 3×32×32 5×5 kernels, stride-2 convs train b64", "strided", 64, 64,
                      "samples/s", False, 1.5),
    "s2cnn_train": ("CNN 3×32×32, 3×3 stride-2 convs (32→256) train b64", "s2cnn", 64, 64,
                    "samples/s", False, 1.5),
    "cnn5_train": ("CNN 3×32×32, 5×5 stride-1 convs (32, 64 ch) + pools train b64", "cnn5", 64,
                   64, "samples/s", False, 1.5),
    "cnn5_deep_train": ("CNN 3×32×32, four stages of 5×5 convs (16→128 ch, maps to 4×4) + pools "
                        "train b64", "cnn5_deep", 64, 64, "samples/s", False, 1.5),
    "resnet_train": ("ResNet-style stage (conv–BN–ReLU, 2 residual blocks, 32 ch) train b64",
                     "resnet", 64, 64, "samples/s", False, 1.2),
    "resnet_infer": ("ResNet-style stage infer b64 (BN folded)", "resnet", 64, 64, "µs", True,
                     1.2),
    "resnet_s2_train": ("ResNet 16-32-64, stride-2 stages, 1×1 projections, train b64",
                        "resnet_s2", 64, 64, "samples/s", False, 1.2),
    "resnet4_train": ("ResNet 64-128-256-512, one block a stage, train b64", "resnet4", 64, 64,
                      "samples/s", False, 1.2),
    "avgcnn_train": ("CNN 3×32×32, 3×3 convs (16→64 ch) + 2×2 average pools train b64",
                     "avgcnn", 64, 64, "samples/s", False, 1.5),
    "bottleneck_train": ("ResNet of bottleneck blocks (1×1–3×3–1×1, 32→256 ch) train b64",
                         "bottleneck", 64, 64, "samples/s", False, 1.2),
    "bottleneck_infer": ("ResNet of bottleneck blocks infer b64 (BN folded)", "bottleneck", 64,
                         64, "µs", True, 1.2),
}



# ------------------------------------------------------------------------------- PyTorch twins
def torch_model(name: str, seq: int = 0):
    import torch
    from torch import nn

    def head(features: int) -> list:
        return [nn.Flatten(), nn.Linear(features, 256), nn.ReLU(), nn.Linear(256, 10)]

    def stages(channels: tuple, k: int) -> nn.Sequential:
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, k, padding=k // 2), nn.ReLU(),
                       nn.Conv2d(c, c, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        side = SHAPE[1] >> len(channels)  # each stage halves the map
        return nn.Sequential(*layers, *head(channels[-1] * side * side))

    if name == "vgg":
        return stages((32, 64, 128), 3)
    if name == "strided":
        return nn.Sequential(nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(),
                             nn.Conv2d(32, 64, 5, stride=2, padding=2), nn.ReLU(),
                             nn.Conv2d(64, 128, 5, stride=2, padding=2), nn.ReLU(),
                             nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             *head(128 * 4 * 4))

    if name == "s2cnn":
        layers, c_in = [], 3
        for i, c in enumerate(S2CNN_CHANNELS):
            layers += [nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1), nn.ReLU()]
            c_in = c
        side = SHAPE[1] >> (len(S2CNN_CHANNELS) - 1)
        return nn.Sequential(*layers, *head(c_in * side * side))
    if name == "cnn5":
        return stages((32, 64), 5)
    if name == "cnn5_deep":
        return stages(CNN5_DEEP_CHANNELS, 5)
    if name == "avgcnn":
        layers, c_in = [], 3
        for c in AVGCNN_CHANNELS:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2)]
            c_in = c
        side = SHAPE[1] >> len(AVGCNN_CHANNELS)
        return nn.Sequential(*layers, *head(c_in * side * side))

    def conv_bn(c_in: int, c: int, k: int = 3, stride: int = 1) -> list:
        return [nn.Conv2d(c_in, c, k, stride=stride, padding=k // 2, bias=False),
                nn.BatchNorm2d(c)]

    class Block(nn.Module):
        def __init__(self, c_in: int, c: int, stride: int = 1):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(c_in, c, 3, stride), nn.ReLU(), *conv_bn(c, c))
            self.short = (nn.Identity() if (c, stride) == (c_in, 1)
                          else nn.Sequential(*conv_bn(c_in, c, 1, stride)))

        def forward(self, x):
            return torch.relu(self.body(x) + self.short(x))

    class Bottleneck(nn.Module):
        def __init__(self, c_in: int, c: int, stride: int):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(c_in, c, 1), nn.ReLU(), *conv_bn(c, c, 3, stride),
                                      nn.ReLU(), *conv_bn(c, 4 * c, 1))
            self.short = (nn.Identity() if (4 * c, stride) == (c_in, 1)
                          else nn.Sequential(*conv_bn(c_in, 4 * c, 1, stride)))

        def forward(self, x):
            return torch.relu(self.body(x) + self.short(x))

    def pooled(stem: int, blocks: list, c_out: int) -> nn.Sequential:
        return nn.Sequential(*conv_bn(3, stem), nn.ReLU(), *blocks, nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(c_out, 10))

    if name == "bottleneck":
        blocks, c_in = [], 32
        for c, stride in BOTTLENECK_STAGES:
            blocks.append(Bottleneck(c_in, c, stride))
            c_in = 4 * c
        return pooled(32, blocks, c_in)
    if name in ("resnet_s2", "resnet4"):
        stages = RESNET_S2_STAGES if name == "resnet_s2" else RESNET4_STAGES
        blocks, c_in = [], stages[0][0]
        for c, stride in stages:
            blocks.append(Block(c_in, c, stride))
            c_in = c
        return pooled(stages[0][0], blocks, c_in)
    return pooled(32, [Block(32, 32), Block(32, 32)], 32)


def batch(name: str, n: int, seq: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random batch of images and class targets (``models.batch``'s signature)."""
    return rng.standard_normal((n, *SHAPE), dtype=np.float32), rng.integers(0, 10, n)


# ------------------------------------------------------------------------ peak memory (child)
MEMORY = r"""
import json, sys
sys.path[:0] = [{root!r}, {here!r}]
import numpy as np
import conv_models as cm
n, steps, torch_side = 64, {steps}, {torch_side}
batches = [cm.batch({model!r}, n, 0, np.random.default_rng(i)) for i in range(2)]
if torch_side:
    import torch, torch.nn.functional as F
    torch.set_num_threads({threads})
    net = cm.torch_model({model!r})
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for i in range(steps):
        x, y = (torch.from_numpy(a) for a in batches[i % 2])
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
else:
    from layerloom.engine.network import Network
    from layerloom.engine.optim import Adam
    from layerloom.engine.threads import blas_only, engine_threads, set_threads
    set_threads({threads})
    net, opt = Network(cm.GRAPHS[{model!r}](), seed=0), Adam(1e-3)
    with engine_threads(blas_only(s.layer for s in net.plan.steps)):
        for i in range(steps):
            x, y = batches[i % 2]
            net.forward({{"image": x, "label": y}}, training=True)
            opt.step(net.params, net.backward())
# VmHWM, not ru_maxrss: a fork keeps the parent's peak in ru_maxrss across exec
print(json.dumps(next(int(l.split()[1]) for l in open("/proc/self/status")
                      if l.startswith("VmHWM")) / 1024))
"""


def peak_memory(model: str, steps: int, threads: int) -> dict:
    """Peak RSS (MB) of a fresh process training ``model`` for ``steps`` steps at batch 64, in
    Layerloom and in PyTorch (each in its own process, imports included), and their ratio."""
    import bench_process
    from pathlib import Path

    here = Path(__file__).resolve().parent
    out = {}
    for side in ("layerloom", "torch"):
        code = MEMORY.format(root=str(here.parents[1]), here=str(here), steps=steps,
                             torch_side=side == "torch", model=model, threads=threads)
        out[f"{side}_mb"] = bench_process._run(code)[0]
    out["ratio"] = out["layerloom_mb"] / out["torch_mb"]
    out["met"] = out["ratio"] <= 1.5
    return out
