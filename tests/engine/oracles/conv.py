"""Oracles for the convolution, pooling, padding and resampling layers."""
import torch.nn.functional as F


def _pool_args(a):
    if isinstance(a.kernel_size, tuple):
        k = tuple(a.kernel_size)
        return k, tuple(si or ki for si, ki in zip(a.stride, k)), tuple(a.padding)
    return a.kernel_size, a.stride or a.kernel_size, a.padding


def _conv(fn):
    return lambda a, p, xs, tr: fn(xs[0], p["weight"], p.get("bias"), a.stride, a.padding,
                                   a.dilation, a.groups)


def _max(fn):
    return lambda a, p, xs, tr: fn(xs[0], *_pool_args(a), a.dilation, ceil_mode=a.ceil_mode)


def _avg(fn):
    return lambda a, p, xs, tr: fn(xs[0], *_pool_args(a), ceil_mode=a.ceil_mode,
                                   count_include_pad=a.count_include_pad)


def _pad(mode):
    return lambda a, p, xs, tr: F.pad(xs[0], tuple(a.padding), mode=mode,
                                      **({"value": a.value} if "value" in a else {}))


def _conv_t(fn):
    return lambda a, p, xs, tr: fn(xs[0], p["weight"], p.get("bias"), a.stride, a.padding,
                                   a.output_padding, a.groups, a.dilation)


def _adaptive(fn):
    return lambda a, p, xs, tr: fn(xs[0], a.output_size)


def _upsample(a, p, xs, tr):
    size = tuple(a.size)[4 - xs[0].ndim:] if tuple(a.size) != (0, 0) else None
    return F.interpolate(xs[0], size=size, scale_factor=None if size else a.scale_factor,
                         mode=a.mode, align_corners=a.align_corners if a.mode != "nearest"
                         else None)


ORACLES = {
    "Conv2D": _conv(F.conv2d),
    "Conv1d": _conv(F.conv1d),
    "Conv3d": _conv(F.conv3d),
    "MaxPool2D": _max(F.max_pool2d),
    "MaxPool1d": _max(F.max_pool1d),
    "AvgPool2D": _avg(F.avg_pool2d),
    "AvgPool1d": _avg(F.avg_pool1d),
    "MaxPool3d": _max(F.max_pool3d),
    "AvgPool3d": _avg(F.avg_pool3d),
    "ConvTranspose2d": _conv_t(F.conv_transpose2d),
    "ConvTranspose1d": _conv_t(F.conv_transpose1d),
    "ConvTranspose3d": _conv_t(F.conv_transpose3d),
    "AdaptiveAvgPool2d": _adaptive(F.adaptive_avg_pool2d),
    "AdaptiveMaxPool2d": _adaptive(F.adaptive_max_pool2d),
    "AdaptiveAvgPool1d": _adaptive(F.adaptive_avg_pool1d),
    "AdaptiveMaxPool1d": _adaptive(F.adaptive_max_pool1d),
    "AdaptiveAvgPool3d": _adaptive(F.adaptive_avg_pool3d),
    "AdaptiveMaxPool3d": _adaptive(F.adaptive_max_pool3d),
    "Upsample": _upsample,
    **{f"{kind}Pad{d}": _pad(mode) for kind, mode in
       (("Zero", "constant"), ("Constant", "constant"), ("Reflection", "reflect"),
        ("Replication", "replicate")) for d in ("1d", "2d", "3d")},
}
