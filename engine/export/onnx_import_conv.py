"""ONNX import of convolution, pooling, padding and resampling: the operators PyTorch writes for
Conv1d/Conv2d (groups, dilation, ``padding="same"``), ConvTranspose1d/2d, max and average pools
(1-D and 2-D, ceil mode, and the asymmetric padding old opsets write for it), adaptive and global
pools, the padding layers (and ``padding_mode`` convolutions, which export as Pad + Conv) and
Upsample (Resize; old models come upgraded to opset 17 by ``onnx_import``).

Padding ONNX splits unevenly (``SAME_UPPER``) becomes a ZeroPad node in front of a convolution
with the even part; pools read uneven padding as PyTorch's ceil mode when that gives the same
windows, and refuse it with the reason otherwise. The handlers join the table in
``onnx_reader`` (``HANDLERS`` below), which ``onnx_import`` dispatches through.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.export import onnx_reader
from layerloom.engine.export.onnx_errors import refused as _refused
from layerloom.engine.layers.image_ops import avg_divisor, extra_end

STEMS = {"Conv1d": "conv", "Conv3d": "conv", "ConvTranspose1d": "deconv",
         "ConvTranspose2d": "deconv", "ConvTranspose3d": "deconv", "MaxPool1d": "pool",
         "AvgPool1d": "pool", "AdaptiveAvgPool1d": "pool", "AdaptiveAvgPool2d": "pool",
         "AdaptiveMaxPool1d": "pool", "AdaptiveMaxPool2d": "pool", "AdaptiveAvgPool3d": "pool",
         "AdaptiveMaxPool3d": "pool", "MaxPool3d": "pool", "AvgPool3d": "pool", "Upsample": "up",
         "ZeroPad1d": "pad", "ZeroPad2d": "pad"}
PAD_TYPES = {"constant": "ZeroPad", "reflect": "ReflectionPad", "edge": "ReplicationPad"}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _shape(r, ref: tuple) -> tuple:
    """The Layerloom shape of a node output built so far (batch first, None)."""
    return r.shape(ref)


def _spatial_pads(node, a: dict, sizes: list, kernel: list, strides: list,
                  dilations: list) -> tuple[list, list]:
    """(begins, ends) per spatial axis, from explicit pads or auto_pad (ONNX's SAME rule)."""
    rank, auto = len(kernel), _text(a.get("auto_pad", "NOTSET"))
    if auto == "NOTSET":
        pads = [int(p) for p in a.get("pads", [0] * 2 * rank)]
        if any(p < 0 for p in pads):
            raise _refused(node, "negative padding (a crop) is not supported")
        return pads[:rank], pads[rank:]
    if auto == "VALID":
        return [0] * rank, [0] * rank
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
        small = total // 2
        begins.append(small if auto == "SAME_UPPER" else total - small)
        ends.append(total - begins[-1])
    return begins, ends


def _geometry(r, node, a: dict, kernel: list) -> tuple:
    rank = len(kernel)
    strides = [int(s) for s in a.get("strides", [1] * rank)]
    dilations = [int(d) for d in a.get("dilations", [1] * rank)]
    src = r.value(node)
    sizes = list(_shape(r, src)[2:])
    if len(sizes) != rank:
        raise _refused(node, f"a {rank}-D kernel over a {len(sizes)}-D input")
    begins, ends = _spatial_pads(node, a, sizes, kernel, strides, dilations)
    return src, sizes, strides, dilations, begins, ends


def _per_dim(values: list, one_d: bool):
    return values[0] if one_d else list(values)


def _conv(r, node, a: dict) -> None:
    w, b = r.const(node, 1, "weight"), r.const(node, 2, "bias")
    rank = w.ndim - 2
    if rank not in (1, 2, 3):
        raise _refused(node, f"only 1-D, 2-D and 3-D convolutions are supported ({rank}-D given)")
    kernel = list(w.shape[2:])
    src, sizes, strides, dilations, begins, ends = _geometry(r, node, a, kernel)
    params = {"weight": w} if b is None else {"weight": w, "bias": b}
    if rank == 3:
        if begins != ends:
            raise _refused(node, "uneven padding of a 3-D convolution is not supported")
        r.add(node, "Conv3d", {"out_channels": int(w.shape[0]), "kernel_size": kernel,
                               "stride": strides, "padding": begins, "dilation": dilations,
                               "groups": int(a.get("group", 1)), "bias": b is not None},
              [src], params)
        return
    even = [min(p, q) for p, q in zip(begins, ends)]
    if begins != ends:  # the uneven remainder as a ZeroPad node in front
        rest = [(p - m, q - m) for p, q, m in zip(begins, ends, even)]
        pad = [v for axis in reversed(rest) for v in axis]  # PyTorch's (left, right, top, bottom)
        src = r.chain(node, f"ZeroPad{rank}d", {"padding": pad}, src)  # part of one operator
    one_d = rank == 1
    r.add(node, "Conv1d" if one_d else "Conv2D",
          {"out_channels": int(w.shape[0]), "kernel_size": _per_dim(kernel, one_d),
           "stride": _per_dim(strides, one_d), "padding": _per_dim(even, one_d),
           "dilation": _per_dim(dilations, one_d), "groups": int(a.get("group", 1)),
           "bias": b is not None}, [src], params)


def _conv_transpose(r, node, a: dict) -> None:
    w, b = r.const(node, 1, "weight"), r.const(node, 2, "bias")
    rank = w.ndim - 2
    if rank not in (1, 2, 3):
        raise _refused(node, f"only 1-D, 2-D and 3-D transposed convolutions ({rank}-D given)")
    if "output_shape" in a:
        raise _refused(node, "an output_shape instead of pads is not supported")
    kernel = list(w.shape[2:])
    a = {**a, "auto_pad": "NOTSET"} if _text(a.get("auto_pad", "NOTSET")) == "VALID" else a
    if _text(a.get("auto_pad", "NOTSET")) != "NOTSET":
        raise _refused(node, "auto_pad SAME on a transposed convolution is not supported")
    src, sizes, strides, dilations, begins, ends = _geometry(r, node, a, kernel)
    extra = [int(o) + p - q for o, p, q in
             zip(a.get("output_padding", [0] * rank), begins, ends)]  # less cropped at the end
    if any(e < 0 or e >= max(s, d) for e, s, d in zip(extra, strides, dilations)):
        raise _refused(node, "its padding crops more at the end than PyTorch's output_padding "
                             "can express")
    one_d, group = rank == 1, int(a.get("group", 1))
    params = {"weight": w} if b is None else {"weight": w, "bias": b}
    r.add(node, f"ConvTranspose{rank}d",
          {"out_channels": int(w.shape[1]) * group, "kernel_size": _per_dim(kernel, one_d),
           "stride": _per_dim(strides, one_d), "padding": _per_dim(begins, one_d),
           "output_padding": _per_dim(extra, one_d), "dilation": _per_dim(dilations, one_d),
           "groups": group, "bias": b is not None}, [src], params)


def _onnx_pool_out(size, k, s, d, begin, end, ceil) -> int:
    span = d * (k - 1) + 1
    return (-(-(size + begin + end - span) // s) if ceil else (size + begin + end - span) // s) + 1


def _pool(kind: str):
    def read(r, node, a: dict) -> None:
        kernel = [int(k) for k in a["kernel_shape"]]
        rank = len(kernel)
        if rank not in (1, 2, 3):
            raise _refused(node, f"only 1-D, 2-D and 3-D pooling is supported ({rank}-D given)")
        src, sizes, strides, dilations, begins, ends = _geometry(r, node, a, kernel)
        average = kind == "Avg"
        if average and any(d != 1 for d in dilations):
            raise _refused(node, "a dilated average pool has no PyTorch equivalent")
        ceil_attr = bool(a.get("ceil_mode", 0))
        ceil = ceil_attr or any(q > p for p, q in zip(begins, ends))
        include = bool(a.get("count_include_pad", 0))
        for size, k, s, d, p, q in zip(sizes, kernel, strides, dilations, begins, ends):
            if q < p or 2 * p > k:
                raise _refused(node, f"padding ({p}, {q}) around a kernel of {k}: PyTorch pads "
                                     f"both ends alike, by at most half the kernel")
            ours = extra_end(size, k, s, p, d, ceil)
            out = (size + 2 * p + ours - d * (k - 1) - 1) // s + 1
            if out != _onnx_pool_out(size, k, s, d, p, q, ceil_attr):
                raise _refused(node, "its last window starts in the end padding, which "
                                     "PyTorch's pools never do")
            if average and q > p and not np.array_equal(
                    avg_divisor(size, k, s, p, out, include),
                    _onnx_divisor(size, k, s, p, q, out, include)):
                raise _refused(node, "its padding at the end counts in the mean, which "
                                     "PyTorch's average pools never do")
        one_d = rank == 1
        attrs = {"kernel_size": _per_dim(kernel, one_d), "stride": _per_dim(strides, one_d),
                 "padding": _per_dim(begins, one_d), "ceil_mode": ceil}
        if average:
            attrs["count_include_pad"] = include
        else:
            attrs["dilation"] = _per_dim(dilations, one_d)
        type_id = {1: f"{kind}Pool1d", 2: f"{kind}Pool2D", 3: f"{kind}Pool3d"}[rank]
        r.add(node, type_id, attrs, [src])
    return read


def _onnx_divisor(size, k, s, begin, end, out, include) -> np.ndarray:
    """What ONNX divides by: every pad counts with count_include_pad, none without."""
    start = np.arange(out) * s - begin
    stop = np.minimum(start + k, size + end)
    return stop - start if include else np.minimum(stop, size) - np.maximum(start, 0)


def _global(kind: str):
    def read(r, node, a: dict) -> None:
        src = r.value(node)
        rank = len(_shape(r, src)) - 2
        if rank not in (1, 2, 3):
            raise _refused(node, f"only 1-D, 2-D and 3-D global pooling ({rank}-D given)")
        r.add(node, f"Adaptive{kind}Pool{rank}d", {"output_size": 1 if rank == 1 else [1] * rank},
              [src])
    return read


def _pad(r, node, a: dict) -> None:
    mode = _text(a.get("mode", "constant"))
    if mode not in PAD_TYPES:
        raise _refused(node, f"mode {mode!r} is not supported (constant, reflect, edge are)")
    src = r.value(node)
    rank = len(_shape(r, src))
    pads = a.get("pads") if "pads" in a else r.const(node, 1, "pads")
    pads = [int(p) for p in np.asarray(pads).ravel()]
    axes = r.const(node, 3, "axes")
    if axes is not None:  # opset 18: pads for these axes only
        full = [0] * (2 * rank)
        for i, axis in enumerate(int(v) % rank for v in axes):
            full[axis], full[rank + axis] = pads[i], pads[len(axes) + i]
        pads = full
    value = a.get("value", 0.0) if "value" in a else r.const(node, 2, "value")
    value = 0.0 if value is None else float(np.asarray(value).ravel()[0])
    begins, ends = pads[:rank], pads[rank:]
    if rank not in (3, 4, 5) or any(begins[:2]) or any(ends[:2]):
        raise _refused(node, "only the length, height, width or depth after the batch and "
                             "channels can be padded")
    if any(p < 0 for p in pads):
        raise _refused(node, "negative padding (a crop) is not supported")
    padding = [v for axis in reversed(range(2, rank)) for v in (begins[axis], ends[axis])]
    name = PAD_TYPES[mode] if mode != "constant" or value == 0.0 else "ConstantPad"
    attrs = {"padding": padding, **({"value": value} if name == "ConstantPad" else {})}
    r.add(node, f"{name}{rank - 2}d", attrs, [src])


def _resize(r, node, a: dict) -> None:
    """Resize (opset 11+: X, roi, scales, sizes; 10: X, scales) and Upsample (X, scales)."""
    src = r.value(node)
    shape = _shape(r, src)
    if len(shape) not in (3, 4):
        raise _refused(node, "only signals (N×C×L) and images (N×C×H×W) are resized")
    one_d = len(shape) == 3
    shape = (*shape[:2], 1, shape[2]) if one_d else shape  # a signal is a one-row image
    legacy = node.op_type == "Upsample" or len(node.input) == 2  # Resize-10: X, scales
    scales = r.const(node, 1 if legacy else 2, "scales")
    scales = np.asarray(a["scales"]) if scales is None and "scales" in a else scales  # opset 7
    sizes = None if legacy else _sizes(r, node)
    if scales is not None and scales.size:
        if list(scales[:2]) != [1, 1]:
            raise _refused(node, "only the length, height and width can be resized")
        sh, sw = (1.0, float(scales[2])) if one_d else (float(v) for v in scales[2:])
        out = [int(np.floor(shape[2] * sh)), int(np.floor(shape[3] * sw))]
    elif sizes is not None:
        out, sh, sw = [1] * one_d + [int(v) for v in sizes[2:]], None, None
    else:
        raise _refused(node, "it gives neither scales nor sizes")
    mode = _upsample_mode(node, a, legacy, sw if one_d else sh, sw)
    if one_d and mode["mode"] == "bilinear":
        mode["mode"] = "linear"
    same = sh is not None and (one_d or sh == sw)
    size_attrs = {"scale_factor": sw} if same else {"size": out}
    r.add(node, "Upsample", {**size_attrs, **mode}, [src])


def _sizes(r, node) -> np.ndarray | None:
    """Resize's sizes, of which only the spatial entries must be fixed: PyTorch writes the batch
    and channels as the input's own Shape, so a model resized to a size runs on any batch."""
    if not r.is_const(node, 3):
        return r.const(node, 3, "sizes")  # None when absent; refused when computed
    folded = r.consts[node.input[3]]
    if not np.array_equal(folded.one[2:], folded.two[2:]):
        raise _refused(node, "its output size depends on the batch size")
    return np.asarray(folded.one)


def _upsample_mode(node, a: dict, legacy: bool, sh, sw) -> dict:
    """Upsample's mode and align_corners for ONNX's mode and coordinate transformation.
    ``legacy``: the Upsample operator, which PyTorch wrote for bilinear before opset 10 and onnx's
    version converter turns into a half-pixel Resize; read it as that."""
    mode = _text(a.get("mode", "nearest"))
    coords = "half_pixel" if legacy and mode == "linear" else _text(
        a.get("coordinate_transformation_mode", "asymmetric" if legacy else "half_pixel"))
    if mode == "linear":
        if coords in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            return {"mode": "bilinear", "align_corners": coords == "align_corners"}
        raise _refused(node, f"linear resizing with {coords} coordinates has no PyTorch "
                             f"equivalent")
    if mode != "nearest":
        raise _refused(node, f"mode {mode!r} is not supported (nearest and linear are)")
    rounding = _text(a.get("nearest_mode", "round_prefer_floor"))
    if coords == "asymmetric" and (legacy or rounding == "floor"):
        return {"mode": "nearest"}
    integral = sh is not None and float(sh).is_integer() and float(sw).is_integer()
    if coords in ("half_pixel", "pytorch_half_pixel") and rounding.startswith("round") \
            and integral:  # centres and rounding pick the same pixels at whole scales
        return {"mode": "nearest"}
    raise _refused(node, f"nearest resizing with {coords} coordinates and {rounding} rounding "
                         f"has no PyTorch equivalent")


HANDLERS = {"Conv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _pool("Max"),
            "AveragePool": _pool("Avg"), "GlobalAveragePool": _global("Avg"),
            "GlobalMaxPool": _global("Max"), "Pad": _pad, "Resize": _resize,
            "Upsample": _resize}
onnx_reader.HANDLERS.update(HANDLERS)
onnx_reader.STEMS.update(STEMS)
