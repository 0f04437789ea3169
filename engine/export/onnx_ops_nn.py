"""ONNX import handlers for activations, softmax and the normalisations."""
from __future__ import annotations

import numpy as np

from layerloom.engine.export.onnx_reader import Reader, handles, refused

SELU = (1.6732632423543772, 1.0507009873554805)  # PyTorch's fixed alpha and scale


def _plain(value, default):
    """An ONNX attribute as the type of its default (strings come as bytes)."""
    return value.decode() if isinstance(value, bytes) else type(default)(value)


def _simple(type_id: str, **attr_map):
    """An operator that is one Layerloom layer, its attributes renamed (ours=(theirs, default))."""
    def read(r: Reader, node, a: dict) -> None:
        attrs = {ours: _plain(a.get(theirs, default), default)
                 for ours, (theirs, default) in attr_map.items()}
        r.add(node, type_id, attrs, [r.value(node)])
    return read


for _op, _type, _attrs in (
        ("Relu", "ReLU", {}), ("Sigmoid", "Sigmoid", {}), ("Tanh", "Tanh", {}),
        ("Exp", "Exp", {}), ("Log", "Log", {}), ("Sqrt", "Sqrt", {}), ("Abs", "Abs", {}),
        ("Softsign", "Softsign", {}), ("HardSwish", "Hardswish", {}),
        ("LeakyRelu", "LeakyReLU", {"negative_slope": ("alpha", 0.01)}),
        ("Elu", "ELU", {"alpha": ("alpha", 1.0)}), ("Celu", "CELU", {"alpha": ("alpha", 1.0)}),
        ("Softmax", "Softmax", {"dim": ("axis", -1)}), ("Gelu", "GELU", {"approximate": ("approximate", "none")}),
        ("LogSoftmax", "LogSoftmax", {"dim": ("axis", -1)}), ("Mish", "Mish", {}),
        # put back together from several operators by engine.export.onnx_patterns_act:
        ("ll.SiLU", "SiLU", {}), ("ll.Mish", "Mish", {}), ("ll.LogSigmoid", "LogSigmoid", {}),
        ("ll.Softmin", "Softmin", {"dim": ("dim", -1)}), ("ll.GLU", "GLU", {"dim": ("dim", -1)})):
    handles(_op)(_simple(_type, **_attrs))


@handles("Softplus")
def _softplus(r: Reader, node, a: dict) -> None:
    """ONNX's softplus is log(1 + eˣ) everywhere; PyTorch's switches to x above its threshold
    (20 by default), where the two differ by less than 2e-9. ``beta`` and ``threshold`` come
    from the sequences ``onnx_patterns_act`` matches."""
    r.add(node, "Softplus", {"beta": float(a.get("beta", 1.0)),
                             "threshold": float(a.get("threshold", 20.0))}, [r.value(node)])


@handles("Shrink")
def _shrink(r: Reader, node, a: dict) -> None:
    """Shrink with bias 0 is Hardshrink, with bias equal to lambd Softshrink."""
    lambd, bias = float(a.get("lambd", 0.5)), float(a.get("bias", 0.0))
    if bias not in (0.0, lambd):
        raise refused(node, f"bias {bias} is neither 0 (Hardshrink) nor lambd {lambd} "
                            f"(Softshrink)")
    r.add(node, "Softshrink" if bias else "Hardshrink", {"lambd": lambd}, [r.value(node)])


@handles("Selu")
def _selu(r: Reader, node, a: dict) -> None:
    alpha, gamma = a.get("alpha", 1.67326319217681884765625), a.get("gamma", 1.05070102214813232421875)
    if not np.allclose((alpha, gamma), SELU, rtol=1e-6):
        raise refused(node, f"alpha {alpha} and gamma {gamma} are not SELU's fixed constants")
    r.add(node, "SELU", {}, [r.value(node)])


@handles("HardSigmoid")
def _hard_sigmoid(r: Reader, node, a: dict) -> None:
    alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
    src = r.value(node)
    if np.isclose(alpha, 1 / 6, rtol=1e-6) and beta == 0.5:
        r.add(node, "Hardsigmoid", {}, [src])
        return
    src = r.chain(node, "Scale", {"factor": float(alpha)}, src)  # max(0, min(1, αx + β))
    src = r.chain(node, "Bias", {"value": float(beta)}, src)
    r.add(node, "Hardtanh", {"min_val": 0.0, "max_val": 1.0}, [src])


@handles("PRelu")
def _prelu(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    slope = r.const(node, 1, "slope")
    if slope.size == 1:
        r.add(node, "PReLU", {"num_parameters": 1}, [src], {"weight": slope.reshape(1)})
        return
    if not (slope.ndim == len(x) - 1 and slope.shape[0] == x[1] and slope.size == x[1]):
        raise refused(node, f"its slope {slope.shape} is not one value or one per channel "
                            f"(dim 1) of {x}")
    r.add(node, "PReLU", {"num_parameters": x[1]}, [src], {"weight": slope.reshape(-1)})


# ----------------------------------------------------------------------- normalisations
def _affine(r: Reader, node, scale, shift) -> bool:
    """Whether a norm learns its gain and shift: PyTorch writes them as initializers (its
    parameters) and a norm without them as Constant ones and zeros (Layerloom as initializers
    named "<node>/const_<n>")."""
    named = any(i < len(node.input) and node.input[i] in r.learned for i in (1, 2))
    return named or not (np.all(scale == 1) and (shift is None or np.all(shift == 0)))


BATCH_NORMS = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
INSTANCE_NORMS = {3: "InstanceNorm1d", 4: "InstanceNorm2d", 5: "InstanceNorm3d"}


@handles("BatchNormalization")
def _batch_norm(r: Reader, node, a: dict) -> None:
    if a.get("training_mode", 0):
        raise refused(node, "it normalises with the batch's own statistics (training mode)")
    src = r.value(node)
    rank = len(r.shape(src))
    if rank not in BATCH_NORMS:
        raise refused(node, f"batch norm of {rank}-D input; Layerloom's BatchNorm1d/2d/3d take "
                            f"2- to 5-D")
    scale, shift, mean, var = (r.const(node, i, what) for i, what in
                               enumerate(("scale", "bias", "mean", "variance"), 1))
    r.add(node, BATCH_NORMS[rank],
          {"eps": float(a.get("epsilon", 1e-5)),  # ONNX keeps the old statistics' share
           "momentum": round(1.0 - float(a.get("momentum", 0.9)), 12)},
          [src], {"weight": scale, "bias": shift, "running_mean": mean, "running_var": var})


@handles("LayerNormalization")
def _layer_norm(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    rank = len(r.shape(src))
    scale, shift = r.const(node, 1, "scale"), r.const(node, 2, "bias")
    if a.get("axis", -1) % rank != rank - 1:
        raise refused(node, "it normalises over several axes; Layerloom's LayerNorm normalises "
                            "the last")
    affine = _affine(r, node, scale, shift)
    params = {}
    if affine:
        params = {"weight": scale} if shift is None else {"weight": scale, "bias": shift}
    r.add(node, "LayerNorm", {"eps": float(a.get("epsilon", 1e-5)), "elementwise_affine": affine,
                              "bias": shift is not None}, [src], params)


@handles("InstanceNormalization")
def _instance_norm(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    rank = len(r.shape(src))
    if rank not in INSTANCE_NORMS:
        raise refused(node, f"instance norm of {rank}-D input; Layerloom's InstanceNorm1d/2d/3d "
                            f"take 3- to 5-D")
    scale, shift = r.const(node, 1, "scale"), r.const(node, 2, "bias")
    affine = _affine(r, node, scale, shift)
    r.add(node, INSTANCE_NORMS[rank], {"eps": float(a.get("epsilon", 1e-5)), "affine": affine},
          [src], {"weight": scale, "bias": shift} if affine else None)


@handles("GroupNormalization")
def _group_norm(r: Reader, node, a: dict) -> None:
    """Per-channel scale and bias (opset 21, and the form ``onnx_patterns`` builds from PyTorch's
    export), or per group (opsets 18 to 20), each group's value then shared by its channels."""
    src = r.value(node)
    scale, shift = r.const(node, 1, "scale"), r.const(node, 2, "bias")
    channels, groups = r.shape(src)[1], int(a["num_groups"])
    if node.domain != "layerloom" and r.opset < 21 and channels % groups == 0:
        scale, shift = (np.repeat(np.reshape(v, -1), channels // groups) for v in (scale, shift))
    if scale.size != channels or shift.size != channels:
        raise refused(node, f"its scale and bias must hold one value per channel ({channels})")
    affine = _affine(r, node, scale, shift)
    r.add(node, "GroupNorm", {"num_groups": int(a["num_groups"]),
                              "eps": float(a.get("epsilon", 1e-5)), "affine": affine},
          [src], {"weight": scale.reshape(-1), "bias": shift.reshape(-1)} if affine else None)
