"""PyTorch's own ONNX exports of convolution, pooling, padding and resampling modules import and
compute what PyTorch computes, at opset 17 and at opset 9 (where PyTorch writes ceil-mode pools
as uneven padding, average pools that count their padding as Pad + AveragePool, and Upsample),
1-D pools written as Unsqueeze → 2-D pool → Squeeze among them;
what has no PyTorch equivalent is refused in one line that says why."""
import io
import warnings

import numpy as np
import pytest

from layerloom.engine.export.onnx_import import OnnxImportError, graph_from_onnx
from layerloom.engine.network import Network

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
nn = torch.nn

class PooledAsImages(nn.Module):
    """1-D pooling written as 2-D pools of a one-row image, as some models do."""

    def forward(self, x):
        x = nn.functional.max_pool2d(x.unsqueeze(2), (1, 3), (1, 2))
        return nn.functional.avg_pool2d(x, (1, 2)).squeeze(2)


# name: (module factory, input shape, layer types the import must hold, opsets)
MODULES = {
    "unsqueeze_pool_squeeze": (PooledAsImages, (3, 16), {"MaxPool2D", "AvgPool2D"}, (9, 17)),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, padding=2, dilation=2), (3, 16), {"Conv1d"}, (9, 17)),
    "conv1d_grouped_strided": (lambda: nn.Conv1d(4, 6, 5, stride=2, padding=1, groups=2),
                               (4, 17), {"Conv1d"}, (9, 17)),
    "conv1d_reflect": (lambda: nn.Conv1d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 12),
                       {"ReflectionPad1d", "Conv1d"}, (9, 17)),
    "conv2d_replicate": (lambda: nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="replicate"),
                         (2, 6, 5), {"ReplicationPad2d", "Conv2D"}, (9, 17)),
    "conv3d": (lambda: nn.Conv3d(4, 6, (2, 3, 3), stride=(1, 2, 1), padding=1, groups=2),
               (4, 5, 6, 5), {"Conv3d"}, (9, 17)),
    "depthwise": (lambda: nn.Conv2d(4, 8, 3, padding=1, groups=4), (4, 8, 7), {"Conv2D"},
                  (9, 17)),
    "dilated": (lambda: nn.Conv2d(3, 5, (3, 2), stride=(2, 1), dilation=(1, 2), padding=1),
                (3, 9, 8), {"Conv2D"}, (9, 17)),
    "same": (lambda: nn.Conv2d(2, 3, 4, padding="same"), (2, 7, 6), {"ZeroPad2d", "Conv2D"},
             (9, 17)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                                  groups=2), (4, 5, 4), {"ConvTranspose2d"},
                       (9, 17)),
    "conv_transpose1d": (lambda: nn.ConvTranspose1d(3, 2, 4, stride=3, padding=2, dilation=2),
                         (3, 6), {"ConvTranspose1d"}, (9, 17)),
    "conv_transpose3d": (lambda: nn.ConvTranspose3d(4, 2, (2, 3, 2), stride=(2, 1, 2),
                                                    padding=(1, 0, 1), output_padding=(1, 0, 0),
                                                    groups=2), (4, 3, 4, 3),
                         {"ConvTranspose3d"}, (9, 17)),
    "max_pool1d_ceil": (lambda: nn.MaxPool1d(3, 2, 1, ceil_mode=True), (3, 16), {"MaxPool1d"},
                        (9, 17)),
    "max_pool2d_ceil": (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 10, 9),
                        {"MaxPool2D"}, (9, 17)),
    "max_pool2d_dilated": (lambda: nn.MaxPool2d(3, 2, 1, dilation=2), (2, 11, 10),
                           {"MaxPool2D"}, (17,)),
    "max_pool3d": (lambda: nn.MaxPool3d((2, 3, 2), (1, 2, 2), (1, 1, 0), ceil_mode=True),
                   (2, 5, 6, 5), {"MaxPool3d"}, (9, 17)),
    "avg_pool3d": (lambda: nn.AvgPool3d(3, 2, 1, ceil_mode=True), (2, 5, 6, 5), {"AvgPool3d"},
                   (9, 17)),
    "adaptive_avg3d": (lambda: nn.AdaptiveAvgPool3d(1), (2, 3, 4, 3), {"AdaptiveAvgPool3d"},
                       (9, 17)),
    "avg_pool1d": (lambda: nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                   (3, 16), {"AvgPool1d"}, (9, 17)),
    "avg_pool2d_ceil": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), (2, 10, 9),
                        {"AvgPool2D"}, (9, 17)),
    "global_avg": (lambda: nn.AdaptiveAvgPool2d(1), (3, 5, 4), {"AdaptiveAvgPool2d"}, (9, 17)),
    "global_avg1d": (lambda: nn.AdaptiveAvgPool1d(1), (3, 7), {"AdaptiveAvgPool1d"}, (9, 17)),
    "adaptive_avg": (lambda: nn.AdaptiveAvgPool2d((2, 5)), (3, 10, 10), {"AvgPool2D"}, (9, 17)),
    "adaptive_max": (lambda: nn.AdaptiveMaxPool2d(1), (3, 6, 5), {"MaxPool2D"}, (9, 17)),
    "upsample_nearest": (lambda: nn.Upsample(scale_factor=2), (2, 3, 4), {"Upsample"}, (9, 17)),
    "upsample_bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4),
                          {"Upsample"}, (9, 17)),
    "upsample_size": (lambda: nn.Upsample(size=(7, 9)), (2, 3, 4), {"Upsample"}, (17,)),
    "upsample_corners": (lambda: nn.Upsample(size=(7, 5), mode="bilinear", align_corners=True),
                         (2, 3, 4), {"Upsample"}, (17,)),
    "upsample_signal": (lambda: nn.Upsample(scale_factor=3), (2, 5), {"Upsample"}, (9, 17)),
    "upsample_linear": (lambda: nn.Upsample(scale_factor=2, mode="linear"), (2, 5), {"Upsample"},
                        (9, 17)),
    "zero_pad": (lambda: nn.ZeroPad2d((1, 2, 0, 3)), (3, 4, 5), {"ZeroPad2d"}, (9, 17)),
    "constant_pad1d": (lambda: nn.ConstantPad1d((1, 2), 0.5), (3, 5), {"ConstantPad1d"}, (9, 17)),
    "reflection_pad": (lambda: nn.ReflectionPad2d((1, 2, 0, 3)), (3, 5, 5),
                       {"ReflectionPad2d"}, (9, 17)),
    "reflection_pad3d": (lambda: nn.ReflectionPad3d((1, 2, 0, 1, 2, 0)), (2, 3, 4, 3),
                         {"ReflectionPad3d"}, (17,)),
    "replication_pad1d": (lambda: nn.ReplicationPad1d((1, 2)), (3, 5), {"ReplicationPad1d"},
                          (9, 17)),
}
CASES = [(name, opset) for name, spec in MODULES.items() for opset in spec[3]]


def export(module, shape: tuple, opset: int) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, still exact
        torch.onnx.export(module, (torch.zeros(1, *shape),), buffer, dynamo=False,
                          opset_version=opset, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    return buffer.getvalue()


@pytest.mark.parametrize("name,opset", CASES)
def test_a_pytorch_export_imports_and_computes_what_pytorch_computes(name, opset):
    factory, shape, types, _ = MODULES[name]
    torch.manual_seed(0)
    module = factory().eval()
    graph, params = graph_from_onnx(export(module, shape, opset))
    assert types <= {n.type for n in graph.nodes.values()}
    x = np.random.default_rng(1).standard_normal((3, *shape)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = Network(graph, params=params).forward({"x": x})[graph.topological_order()[-1]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"{name} opset {opset}")


def _model(op: str, inputs: list, shape: list, **attrs) -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * (len(shape) + 1))
    node = helper.make_node(op, ["x", *[i for i, _ in inputs]], ["y"], name="n", **attrs)
    inits = [helper.make_tensor(n, TensorProto.FLOAT if v.dtype.kind == "f" else
                                TensorProto.INT64, v.shape, v.ravel().tolist()) for n, v in inputs]
    return helper.make_model(helper.make_graph([node], "g", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


SCALES = np.array([1, 1, 1.5, 1.5], np.float32)
REFUSED = {
    "4-D convolution": (_model("Conv", [("w", np.ones((2, 1, 2, 2, 2, 2), np.float32))],
                               [1, 4, 4, 4, 4]), "only 1-D, 2-D and 3-D convolutions"),
    "uneven 3-D padding": (_model("Conv", [("w", np.ones((2, 1, 2, 2, 2), np.float32))],
                                  [1, 4, 4, 4], auto_pad="SAME_UPPER"), "uneven padding"),
    "pool window past the end": (_model("MaxPool", [], [1, 6], kernel_shape=[2],
                                        strides=[2], pads=[0, 3]), "last window starts in"),
    "counted end padding": (_model("AveragePool", [], [1, 6], kernel_shape=[3], strides=[2],
                                   pads=[1, 3], count_include_pad=1), "counts in the mean"),
    "circular pad": (_model("Pad", [("p", np.array([0, 0, 1, 0, 0, 1]))], [1, 5],
                            mode="wrap"), "mode 'wrap'"),
    "batch pad": (_model("Pad", [("p", np.array([1, 0, 0, 0, 0, 0]))], [1, 5]),
                  "only the length, height"),
    "cubic": (_model("Resize", [("r", np.zeros(0, np.float32)), ("s", SCALES)], [1, 4, 4],
                     mode="cubic"), "mode 'cubic'"),
    "asymmetric linear": (_model("Resize", [("r", np.zeros(0, np.float32)), ("s", SCALES)],
                                 [1, 4, 4], mode="linear",
                                 coordinate_transformation_mode="asymmetric"),
                          "no PyTorch equivalent"),
    "half-pixel nearest at 1.5": (_model("Resize", [("r", np.zeros(0, np.float32)),
                                                     ("s", SCALES)], [1, 4, 4]), "nearest"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_pytorch_cannot_compute_is_refused_in_one_line_with_the_reason(case):
    data, reason = REFUSED[case]
    with pytest.raises(OnnxImportError) as err:
        graph_from_onnx(data)
    assert str(err.value).startswith("cannot read ONNX operator ") and reason in str(err.value)
    assert "\n" not in str(err.value)
