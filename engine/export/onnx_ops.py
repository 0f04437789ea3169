"""ONNX import handlers for the linear and arithmetic operators, reductions, and operators that
pass their input through (Identity, Dropout, a float Cast)."""
from __future__ import annotations

import numpy as np

from layerloom.engine.export.onnx_ops_shape import axes_input
from layerloom.engine.export.onnx_reader import Reader, handles, refused

NO_BOUND = 3.4028234663852886e38  # Clamp's "no bound" (float32's largest value)


def _dense(r: Reader, node, src: tuple, weight: np.ndarray, bias) -> None:
    params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    r.add(node, "Dense", {"out_features": weight.shape[0], "bias": bias is not None}, [src],
          params)


@handles("Gemm")
def _gemm(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    if a.get("transA", 0):
        raise refused(node, "transA transposes the batch into the features")
    w, c = r.const(node, 1, "weight"), r.const(node, 2, "bias")
    w = (w if a.get("transB", 0) else w.T) * np.float64(a.get("alpha", 1.0))
    bias = None
    if c is not None:
        c = np.asarray(c) * np.float64(a.get("beta", 1.0))
        if c.size not in (1, w.shape[0]) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
            raise refused(node, f"its bias {c.shape} must hold one value per output "
                                f"({w.shape[0]})")
        bias = np.broadcast_to(c.reshape(-1), (w.shape[0],))
    _dense(r, node, src, w, bias)


@handles("MatMul")
def _matmul(r: Reader, node, a: dict) -> None:
    if node.input[1] not in r.consts:
        raise refused(node, "it multiplies two computed tensors; Layerloom's Dense needs fixed "
                            "weights")
    w = r.const(node, 1, "weight")
    if w.ndim != 2:
        raise refused(node, f"its weight must be a matrix, got shape {w.shape}")
    _dense(r, node, r.value(node), w.T, None)


def _scalar(r: Reader, node, i: int) -> float | None:
    """Input ``i`` as one number, or None when it is a tensor of several values."""
    c = r.const(node, i, "operand")
    return float(c.reshape(-1)[0]) if c.size == 1 and c.ndim <= len(r.shape(r.value(
        node, 1 - i))) else None


def _bias_of_matmul(r: Reader, node, src_name: str, bias: np.ndarray) -> bool:
    """MatMul then Add of a vector: one Dense with a bias (how Linear exports at old opsets)."""
    dense = r.values[src_name][0]
    n = r.graph.nodes[dense]
    if (n.type != "Dense" or n.attrs["bias"] or r.uses[src_name] != 1
            or bias.reshape(-1).shape != (n.attrs["out_features"],) or bias.ndim > 2):
        return False
    r.graph.set_attr(dense, "bias", True)
    r.params[f"{dense}.bias"] = np.asarray(bias.reshape(-1), dtype=np.float32)
    r.values[node.output[0]] = (dense, "y")
    return True


BINARY = {"Add": "Add", "Sub": "Subtract", "Mul": "Multiply", "Div": "Divide", "Max": "Maximum",
          "Min": "Minimum"}


@handles("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow")
def _binary(r: Reader, node, a: dict) -> None:
    if len(node.input) != 2:
        raise refused(node, f"Layerloom's {BINARY.get(node.op_type, 'Pow')} takes two inputs")
    names = list(node.input)
    if all(n in r.values for n in names):
        if node.op_type == "Pow":
            raise refused(node, "Layerloom's Pow raises to a fixed exponent, not a computed one")
        r.add(node, BINARY[node.op_type], {}, [r.values[n] for n in names], ports=("a", "b"))
        return
    i = 0 if names[0] in r.consts else 1  # the constant's side
    fixed = r.consts[names[i]].fixed  # else the same row for every sample (an initial state)
    if (fixed and node.op_type == "Add" and names[1 - i] in r.values
            and _bias_of_matmul(r, node, names[1 - i], r.const(node, i, "bias"))):
        return
    c = _scalar(r, node, i) if fixed else None
    if c is not None:
        _with_constant(r, node, r.value(node, 1 - i), c, constant_first=i == 0)
        return
    if node.op_type == "Pow":
        raise refused(node, "Layerloom's Pow raises to one fixed exponent, not a tensor of them")
    src = r.value(node, 1 - i)  # a tensor of the model's own: a Parameter node wired in
    const = r.parameter(node, names[i], len(r.shape(src)))
    r.add(node, BINARY[node.op_type], {}, [const, src] if i == 0 else [src, const],
          ports=("a", "b"))


def _with_constant(r: Reader, node, src: tuple, c: float, constant_first: bool) -> None:
    op = node.op_type
    if op == "Add":
        r.add(node, "Bias", {"value": c}, [src])
    elif op == "Mul":
        r.add(node, "Scale", {"factor": c}, [src])
    elif op == "Sub" and not constant_first:
        r.add(node, "Bias", {"value": -c}, [src])
    elif op == "Sub":  # c - x
        r.add(node, "Bias", {"value": c}, [r.chain(node, "Scale", {"factor": -1.0}, src)])
    elif op == "Div" and not constant_first:
        r.add(node, "Scale", {"factor": 1.0 / c}, [src])
    elif op == "Div":  # c / x
        r.add(node, "Scale", {"factor": c}, [r.chain(node, "Pow", {"exponent": -1.0}, src)])
    elif op == "Pow" and not constant_first:
        r.add(node, "Pow", {"exponent": c}, [src])
    elif op == "Max":
        r.add(node, "Clamp", {"min": c, "max": NO_BOUND}, [src])
    elif op == "Min":
        r.add(node, "Clamp", {"min": -NO_BOUND, "max": c}, [src])
    else:
        raise refused(node, "a constant raised to a computed power is not a Layerloom layer")


@handles("Neg")
def _neg(r: Reader, node, a: dict) -> None:
    r.add(node, "Scale", {"factor": -1.0}, [r.value(node)])


@handles("Reciprocal")
def _reciprocal(r: Reader, node, a: dict) -> None:
    r.add(node, "Pow", {"exponent": -1.0}, [r.value(node)])


@handles("Clip")
def _clip(r: Reader, node, a: dict) -> None:
    low, high = r.const(node, 1, "min"), r.const(node, 2, "max")
    low = -NO_BOUND if low is None else max(float(low), -NO_BOUND)
    high = NO_BOUND if high is None else min(float(high), NO_BOUND)
    if low == 0.0 and high == NO_BOUND:
        r.add(node, "ReLU", {}, [r.value(node)])
    elif low < high and -NO_BOUND < low and high < NO_BOUND:
        r.add(node, "Hardtanh", {"min_val": low, "max_val": high}, [r.value(node)])
    else:  # one-sided, or an empty interval (torch.clamp's rule: everything becomes max)
        r.add(node, "Clamp", {"min": min(low, high), "max": high}, [r.value(node)])


@handles("ReduceSum", "ReduceMean")
def _reduce(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    axes = axes_input(r, node, a, len(x))
    keep = bool(a.get("keepdims", 1))
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            r.alias(node)
            return
        raise refused(node, "it reduces every axis, the batch too")
    if 0 in axes:
        raise refused(node, "it reduces over the batch axis")
    if node.op_type == "ReduceMean" and axes == [1] and not keep and len(x) == 3:
        r.add(node, "MeanPool", {}, [src])
        return
    r.add(node, "Sum" if node.op_type == "ReduceSum" else "Mean",
          {"dim": sorted(axes), "keepdim": keep}, [src])


@handles("Identity", "Dropout")
def _alias(r: Reader, node, a: dict) -> None:
    r.alias(node)  # Dropout in inference: its input passes through


@handles("Cast")
def _cast(r: Reader, node, a: dict) -> None:
    if a.get("to") not in (1, 10, 11, 16):
        raise refused(node, "it casts computed values to integers or booleans")
    r.alias(node)
