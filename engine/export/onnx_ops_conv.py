"""ONNX import handlers for convolution and pooling (Conv, MaxPool, AveragePool)."""
from __future__ import annotations

from layerloom.engine.export.onnx_reader import Reader, handles, refused


def _pads(node, attrs: dict) -> list:
    """Symmetric [top, left] padding; refused otherwise."""
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or pads[:2] != pads[2:]:
        raise refused(node, "only symmetric explicit padding is supported")
    return pads[:2]


@handles("Conv")
def _conv(r: Reader, node, a: dict) -> None:
    w, b = r.const(node, 1, "weight"), r.const(node, 2, "bias")
    if w.ndim != 4 or a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise refused(node, "only 2-D convolutions without groups or dilation are supported")
    params = {"weight": w} if b is None else {"weight": w, "bias": b}
    r.add(node, "Conv2D", {"out_channels": w.shape[0], "kernel_size": list(w.shape[2:]),
                           "stride": list(a.get("strides", [1, 1])),
                           "padding": _pads(node, a), "bias": b is not None},
          [r.value(node)], params)


def _pool(type_id: str):
    def read(r: Reader, node, a: dict) -> None:
        kernel, pads = list(a["kernel_shape"]), _pads(node, a)
        if len(kernel) != 2 or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations",
                                                                                 [1, 1])):
            raise refused(node, "only 2-D pooling without ceil mode or dilation is supported")
        if type_id == "AvgPool2D" and any(pads) and not a.get("count_include_pad", 0):
            raise refused(node, "padding must count in the mean")
        r.add(node, type_id, {"kernel_size": kernel, "stride": list(a.get("strides", [1, 1])),
                              "padding": pads}, [r.value(node)])
    return read


handles("MaxPool")(_pool("MaxPool2D"))
handles("AveragePool")(_pool("AvgPool2D"))
