"""How many of ``torch.nn``'s module types Layerloom imports (through ONNX) and trains.

    python tests/benchmarks/survey_torch_nn.py [--verbose]

Every public ``nn.Module`` subclass in ``torch.nn`` is listed. Each one that is a layer (not a
container, not a loss: losses are computed in training, never exported) is built with the
arguments below (PyTorch's defaults otherwise), its parameters and running statistics moved off
their init, put in eval mode, and exported by ``torch.onnx.export`` (TorchScript exporter, opset
17). It counts as imported when ``read_onnx`` accepts the file and the imported network's output
equals PyTorch's (rtol 1e-4, atol 1e-5), and as trained when, with a target and an MSE loss
added, every imported parameter gets a finite gradient and one small step lowers the loss (a
module without parameters trains when its imported graph back-propagates: every Layerloom layer
does). Not collected by pytest; prints one line per module type and the totals.
"""
from __future__ import annotations

import io
import sys
import warnings

import numpy as np
import torch
from torch import nn

from layerloom.engine.export.onnx_import import read_onnx
from layerloom.engine.graph import Node
from layerloom.engine.network import Network
from layerloom.engine.spec import LayerloomError

IMAGE, SEQ, VOL, VEC = (2, 4, 6, 6), (2, 4, 8), (2, 2, 4, 4, 4), (2, 6)
CONTAINERS = {"Container", "Module", "ModuleDict", "ModuleList", "ParameterDict",
              "ParameterList", "Sequential", "DataParallel", "RNNBase", "RNNCellBase"}
# name -> (constructor arguments, input shapes); names not listed take () and IMAGE.
ARGS = {
    "AdaptiveAvgPool1d": ((4,), [SEQ]), "AdaptiveAvgPool2d": ((3,), [IMAGE]),
    "AdaptiveAvgPool3d": ((2,), [VOL]), "AdaptiveMaxPool1d": ((4,), [SEQ]),
    "AdaptiveMaxPool2d": ((3,), [IMAGE]), "AdaptiveMaxPool3d": ((2,), [VOL]),
    "AvgPool1d": ((2,), [SEQ]), "AvgPool2d": ((2,), [IMAGE]), "AvgPool3d": ((2,), [VOL]),
    "MaxPool1d": ((2,), [SEQ]), "MaxPool2d": ((2,), [IMAGE]), "MaxPool3d": ((2,), [VOL]),
    "LPPool1d": ((2, 2), [SEQ]), "LPPool2d": ((2, 2), [IMAGE]), "LPPool3d": ((2, 2), [VOL]),
    "MaxUnpool1d": ((2,), [SEQ]), "MaxUnpool2d": ((2,), [IMAGE]), "MaxUnpool3d": ((2,), [VOL]),
    "BatchNorm1d": ((4,), [SEQ]), "BatchNorm2d": ((4,), [IMAGE]), "BatchNorm3d": ((2,), [VOL]),
    "LazyBatchNorm1d": ((), [SEQ]), "LazyBatchNorm2d": ((), [IMAGE]),
    "LazyBatchNorm3d": ((), [VOL]), "SyncBatchNorm": ((4,), [IMAGE]),
    "InstanceNorm1d": ((4,), [SEQ]), "InstanceNorm2d": ((4,), [IMAGE]),
    "InstanceNorm3d": ((2,), [VOL]), "LazyInstanceNorm1d": ((), [SEQ]),
    "LazyInstanceNorm2d": ((), [IMAGE]), "LazyInstanceNorm3d": ((), [VOL]),
    "GroupNorm": ((2, 4), [IMAGE]), "LayerNorm": ((6,), [IMAGE]), "RMSNorm": ((6,), [IMAGE]),
    "LocalResponseNorm": ((2,), [IMAGE]), "CrossMapLRN2d": ((3,), [IMAGE]),
    "Conv1d": ((4, 5, 3), [SEQ]), "Conv2d": ((4, 5, 3), [IMAGE]), "Conv3d": ((2, 3, 3), [VOL]),
    "ConvTranspose1d": ((4, 5, 3), [SEQ]), "ConvTranspose2d": ((4, 5, 3), [IMAGE]),
    "ConvTranspose3d": ((2, 3, 3), [VOL]), "LazyConv1d": ((5, 3), [SEQ]),
    "LazyConv2d": ((5, 3), [IMAGE]), "LazyConv3d": ((3, 3), [VOL]),
    "LazyConvTranspose1d": ((5, 3), [SEQ]), "LazyConvTranspose2d": ((5, 3), [IMAGE]),
    "LazyConvTranspose3d": ((3, 3), [VOL]),
    "Linear": ((6, 3), [VEC]), "LazyLinear": ((3,), [VEC]), "Bilinear": ((6, 6, 3), [VEC, VEC]),
    "Embedding": ((10, 4), ["ids"]), "EmbeddingBag": ((10, 4), ["ids"]),
    "RNN": ((8, 5), [SEQ]), "LSTM": ((8, 5), [SEQ]), "GRU": ((8, 5), [SEQ]),
    "RNNCell": ((6, 5), [VEC]), "LSTMCell": ((6, 5), [VEC]), "GRUCell": ((6, 5), [VEC]),
    "MultiheadAttention": ((8, 2), [SEQ, SEQ, SEQ]),
    "Transformer": (({"d_model": 8, "nhead": 2, "num_encoder_layers": 1,
                      "num_decoder_layers": 1, "dim_feedforward": 16, "batch_first": True},),
                    [SEQ, SEQ]),
    "TransformerEncoderLayer": (({"d_model": 8, "nhead": 2, "dim_feedforward": 16,
                                  "batch_first": True},), [SEQ]),
    "TransformerDecoderLayer": (({"d_model": 8, "nhead": 2, "dim_feedforward": 16,
                                  "batch_first": True},), [SEQ, SEQ]),
    "TransformerEncoder": (({"encoder_layer": "layer", "num_layers": 1},), [SEQ]),
    "TransformerDecoder": (({"decoder_layer": "layer", "num_layers": 1},), [SEQ, SEQ]),
    "ConstantPad1d": ((1, 0.5), [SEQ]), "ConstantPad2d": ((1, 0.5), [IMAGE]),
    "ConstantPad3d": ((1, 0.5), [VOL]), "ZeroPad1d": ((1,), [SEQ]), "ZeroPad2d": ((1,), [IMAGE]),
    "ZeroPad3d": ((1,), [VOL]), "ReflectionPad1d": ((1,), [SEQ]),
    "ReflectionPad2d": ((1,), [IMAGE]), "ReflectionPad3d": ((1,), [VOL]),
    "ReplicationPad1d": ((1,), [SEQ]), "ReplicationPad2d": ((1,), [IMAGE]),
    "ReplicationPad3d": ((1,), [VOL]), "CircularPad1d": ((1,), [SEQ]),
    "CircularPad2d": ((1,), [IMAGE]), "CircularPad3d": ((1,), [VOL]),
    "Upsample": (({"scale_factor": 2},), [IMAGE]), "UpsamplingNearest2d": (({"scale_factor": 2},), [IMAGE]),
    "UpsamplingBilinear2d": (({"scale_factor": 2},), [IMAGE]),
    "PixelShuffle": ((2,), [IMAGE]), "PixelUnshuffle": ((2,), [IMAGE]),
    "ChannelShuffle": ((2,), [IMAGE]), "Unflatten": ((1, (2, 2)), [IMAGE]),
    "Fold": (((4, 4), 2), [(2, 8, 9)]), "Unfold": ((2,), [IMAGE]),
    "Threshold": ((0.1, 20.0), [IMAGE]), "GLU": (({"dim": 1},), [IMAGE]),
    "Softmax": (({"dim": 1},), [IMAGE]), "LogSoftmax": (({"dim": 1},), [IMAGE]),
    "Softmin": (({"dim": 1},), [IMAGE]), "PReLU": ((4,), [IMAGE]),
    "CosineSimilarity": ((), [VEC, VEC]), "PairwiseDistance": ((), [VEC, VEC]),
    "AdaptiveLogSoftmaxWithLoss": ((6, 10, [4]), [VEC, "labels"]),
    "Flatten": ((), [IMAGE]), "Dropout1d": ((), [SEQ]), "Dropout3d": ((), [VOL]),
    "FractionalMaxPool2d": (({"kernel_size": 2, "output_size": 3},), [IMAGE]),
    "FractionalMaxPool3d": (({"kernel_size": 2, "output_size": 2},), [VOL]),
}


def build(name: str):
    """The module, in eval mode with its parameters moved, and its example inputs."""
    args, shapes = ARGS.get(name, ((), [IMAGE]))
    kwargs = dict(args[0]) if args and isinstance(args[0], dict) else {}
    for key, kind in (("encoder_layer", nn.TransformerEncoderLayer),
                      ("decoder_layer", nn.TransformerDecoderLayer)):
        if kwargs.get(key) == "layer":
            kwargs[key] = kind(8, 2, 16, batch_first=True)
    module = getattr(nn, name)(*([] if kwargs else args), **kwargs)
    rng = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randint(0, 10, (2, 5), generator=rng) if s == "ids" else
                   torch.randint(0, 10, (2,), generator=rng) if s == "labels" else
                   torch.randn(s, generator=rng) for s in shapes)
    if name.startswith("Lazy"):
        module(*inputs)  # materialise the parameters
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=rng))
        for key, b in module.named_buffers():
            if key.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif key.endswith("running_mean"):
                b.uniform_(-0.5, 0.5)
    return module.eval(), inputs


def first(y):
    return y[0] if isinstance(y, (tuple, list)) else y


def survey_one(name: str) -> tuple[str, str]:
    """("trains" | "imports" | "refused" | "export" | "differs", detail)."""
    try:
        module, inputs = build(name)
        with torch.no_grad():
            want = first(module(*inputs))
    except Exception as err:  # noqa: BLE001
        return "export", f"does not run as built here ({type(err).__name__})"
    names = [f"x{i}" for i in range(len(inputs))]
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs, buffer, dynamo=False, opset_version=17,
                              input_names=names, output_names=["y"],
                              dynamic_axes={n: {0: "batch"} for n in [*names, "y"]})
    except Exception as err:  # noqa: BLE001
        return "export", f"PyTorch cannot export it ({type(err).__name__})"
    try:
        result = read_onnx(buffer.getvalue())
        net = Network(result.graph, params=result.params)
        feeds = {n: x.numpy() for n, x in zip(names, inputs) if n in result.graph.nodes}
        ref = result.outputs["y"]
        key = ref[0] if ref[1] == net.plan.step(ref[0]).outputs[0] else f"{ref[0]}.{ref[1]}"
        got = net.forward(feeds)[key]
    except LayerloomError as err:
        return "refused", str(err)
    if not np.allclose(got, want.numpy(), rtol=1e-4, atol=1e-5):
        return "differs", f"max difference {np.abs(got - want.numpy()).max():.3g}"
    if not result.params:
        return "trains", "no parameters; back-propagates"
    return trains(result, net, feeds, ref)


def trains(result, net: Network, feeds: dict, ref: tuple) -> tuple[str, str]:
    g = result.graph
    shape = list(net.plan.shapes.shapes[ref][1:])
    g.add_node(Node("target", "Label", {"kind": "values", "shape": shape}))
    g.add_node(Node("loss", "MSELoss", {}))
    g.connect(ref, ("loss", "input"))
    g.connect(("target", "y"), ("loss", "target"))
    net = Network(g, params=result.params, dtype=np.float64)
    batch = len(next(iter(feeds.values())))
    feeds = {**feeds, "target": np.random.default_rng(2).standard_normal((batch, *shape))}
    net.forward(feeds, training=True)
    before = net.loss()
    grads = net.backward()
    if not grads or not all(np.isfinite(v).all() for v in grads.values()):
        return "imports", "gradients missing or not finite"
    for k, v in grads.items():
        net.params[k] -= 1e-3 * v
    net.forward(feeds, training=True)
    if not net.loss() < before:
        return "imports", "a small step does not lower the loss"
    return "trains", f"{len(grads)} parameters"


def main(argv: list[str]) -> int:
    names = sorted(n for n in dir(nn) if isinstance(getattr(nn, n), type)
                   and issubclass(getattr(nn, n), nn.Module) and not n.startswith("_"))
    losses = [n for n in names if n.endswith("Loss") or n == "NLLLoss2d"]
    layers = [n for n in names if n not in CONTAINERS and n not in losses]
    results = {n: survey_one(n) for n in layers}
    for n, (verdict, detail) in results.items():
        if "--verbose" in argv or verdict != "trains":
            print(f"{n:28s} {verdict:8s} {detail[:150]}")
    count = {v: sum(r[0] == v for r in results.values())
             for v in ("trains", "imports", "refused", "differs", "export")}
    print(f"\ntorch.nn module types: {len(names)} ({len(CONTAINERS)} containers, {len(losses)} "
          f"losses, {len(layers)} layers)")
    print(f"of the {len(layers)} layers: imported and trained {count['trains']}, imported only "
          f"{count['imports']}, refused by Layerloom {count['refused']}, imported but different "
          f"{count['differs']}, not exportable by PyTorch {count['export']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
