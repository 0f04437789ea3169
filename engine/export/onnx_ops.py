"""ONNX import handlers for the linear, arithmetic and tensor-shape operators.

Dims are checked against the batch: ONNX counts the batch as axis 0 as Layerloom does, and an
operator that would cut, move or merge it is refused with that reason (a graph keeps one sample
per row from the Input to the loss).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.export.onnx_reader import Reader, handles, refused

NO_BOUND = 3.4028234663852886e38  # Clamp's "no bound" (float32's largest value)
INT_MAX = 2**31 - 1


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
    if (node.op_type == "Add" and i == 1
            and _bias_of_matmul(r, node, names[0], r.const(node, 1, "bias"))):
        return
    c = _scalar(r, node, i)
    if c is None:
        shape = r.const(node, i, "operand").shape
        raise refused(node, f"its constant operand is a tensor of shape {shape}; Layerloom's "
                            f"Scale, Bias, Pow and Clamp take one number")
    _with_constant(r, node, r.value(node, 1 - i), c, constant_first=i == 0)


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


# ------------------------------------------------------------------------------ shapes
@handles("Reshape")
def _reshape(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    target = r.consts.get(node.input[1])
    if target is None:
        raise refused(node, "its target shape is computed from the input's values")
    is_batch = target.batch_entries()
    one = [int(v) for v in target.one]
    moved = not target.fixed and (is_batch[1:].any() or np.any(target.one[1:] != target.two[1:]))
    first = is_batch[0] or one[0] in (0, -1) or one[0] in r.declared_batches
    if len(one) < 2 or moved or not first:
        raise refused(node, f"it reshapes the batch (target {one}); Layerloom keeps one sample "
                            f"per row")
    rest = [x[i + 1] if d == 0 and not a.get("allowzero", 0) else d
            for i, d in enumerate(one[1:])]
    if one[0] == -1 and -1 in rest:
        raise refused(node, f"it leaves two sizes open (target {one})")
    if rest == list(x[1:]):
        r.alias(node)
        return
    r.add(node, "Reshape", {"shape": rest}, [src])


@handles("Flatten")
def _flatten(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    axis = a.get("axis", 1) % max(len(x), 1)
    if axis == 0 or any(d != 1 for d in x[1:axis]):
        raise refused(node, f"flattening at axis {a.get('axis', 1)} merges the batch with dims "
                            f"1…{axis - 1} of {len(x)}-D input; Layerloom keeps one sample per row")
    r.add(node, "Flatten", {}, [src])


@handles("Transpose")
def _transpose(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    ndim = len(r.shape(src))
    perm = list(a.get("perm", range(ndim)[::-1]))
    if perm == list(range(ndim)):
        r.alias(node)
    elif perm[0] != 0:
        raise refused(node, f"perm {perm} moves the batch axis")
    else:
        moved = [i for i, p in enumerate(perm) if p != i]
        if len(moved) == 2:
            r.add(node, "Transpose", {"dim0": moved[0], "dim1": moved[1]}, [src])
        else:
            r.add(node, "Permute", {"dims": perm}, [src])


def _axes(r: Reader, node, a: dict, ndim: int) -> list | None:
    """The axes of Squeeze/Unsqueeze/Reduce* (input 1 at opset 13+), non-negative; None when
    absent."""
    axes = r.const(node, 1, "axes") if len(node.input) > 1 and node.input[1] else a.get("axes")
    return None if axes is None else [int(v) % ndim for v in np.reshape(axes, -1)]


@handles("Squeeze")
def _squeeze(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    axes = _axes(r, node, a, len(x))
    axes = [i for i, d in enumerate(x) if d == 1 and i > 0] if axes is None else axes
    if 0 in axes:
        raise refused(node, "it squeezes the batch axis")
    for k, axis in enumerate(sorted(axes, reverse=True)):  # from the back: numbers stay valid
        last = k == len(axes) - 1
        src = r.chain(node, "Squeeze", {"dim": axis}, src, last=last)
    if not axes:
        r.alias(node)


@handles("Unsqueeze")
def _unsqueeze(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    raw = r.const(node, 1, "axes") if len(node.input) > 1 and node.input[1] else a["axes"]
    raw = [int(v) for v in np.reshape(raw, -1)]
    axes = sorted(v % (len(r.shape(src)) + len(raw)) for v in raw)
    if 0 in axes:
        raise refused(node, "it inserts an axis before the batch")
    for k, axis in enumerate(axes):  # ascending: each lands where the final shape has it
        src = r.chain(node, "Unsqueeze", {"dim": axis}, src, last=k == len(axes) - 1)


@handles("Concat")
def _concat(r: Reader, node, a: dict) -> None:
    srcs = [r.value(node, i) for i in range(len(node.input))]
    if len(srcs) == 1:
        r.alias(node)
        return
    for k in range(1, len(srcs)):
        last = k == len(srcs) - 1
        node_id = r.add(node, "Concat", {"dim": int(a["axis"])}, [srcs[0], srcs[k]],
                        ports=("a", "b"), bind=None if last else ("",))
        srcs[0] = (node_id, "y")


@handles("Split")
def _split(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    axis = int(a.get("axis", 0)) % len(x)
    sizes = r.const(node, 1, "split") if len(node.input) > 1 and node.input[1] else a.get("split")
    n = len(node.output)
    if sizes is None:
        if x[axis] % n:
            raise refused(node, f"{x[axis]} entries do not split evenly in {n}")
        sizes = [x[axis] // n] * n
    sizes = [int(s) for s in np.reshape(sizes, -1)]
    if n == 1:
        r.alias(node)
        return
    for k in range(n - 1):  # two-way Splits in a chain: the first part, then the rest
        rest = None if k < n - 2 else node.output[k + 1]
        node_id = r.add(node, "Split", {"dim": axis, "split": sizes[k]}, [src],
                        bind=(node.output[k], rest or ""))
        src = (node_id, "b")


@handles("Slice")
def _slice(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    starts, ends = r.const(node, 1, "starts"), r.const(node, 2, "ends")
    axes = r.const(node, 3, "axes")
    steps = r.const(node, 4, "steps")
    axes = range(len(starts)) if axes is None else [int(v) % len(x) for v in axes]
    steps = [1] * len(starts) if steps is None else steps
    cuts = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        start, end, step = (int(min(max(v, -INT_MAX - 1), INT_MAX)) for v in (start, end, step))
        if step < 1:
            raise refused(node, "a negative step (a flip) is not a Layerloom slice")
        if axis == 0:
            if slice(start, end, step).indices(10**9) != (0, 10**9, 1):
                raise refused(node, "it slices the batch axis")
            continue
        if slice(start, end, step).indices(x[axis]) != (0, x[axis], 1):
            cuts.append({"dim": axis, "start": start, "end": end, "step": step})
    if not cuts:
        r.alias(node)
    for k, cut in enumerate(cuts):
        src = r.chain(node, "Slice", cut, src, last=k == len(cuts) - 1)


@handles("Gather")
def _gather(r: Reader, node, a: dict) -> None:
    axis = a.get("axis", 0)
    if node.input[0] in r.consts and node.input[1] in r.values and axis == 0:
        w = r.const(node, 0, "table")  # a table looked up by token ids: an embedding
        r.add(node, "Embedding", {"num_embeddings": w.shape[0], "embedding_dim": w.shape[1]},
              [r.value(node, 1)], {"weight": w})
        return
    src = r.value(node)
    x = r.shape(src)
    index = r.const(node, 1, "indices")
    axis %= len(x)
    if index.ndim != 0 or axis == 0:
        raise refused(node, "only an embedding lookup or one fixed index of an axis after the "
                            "batch is supported")
    i = int(index) % x[axis]
    if axis == 1 and i == x[1] - 1 and len(x) == 3:
        r.add(node, "TakeLast", {}, [src])
        return
    src = r.chain(node, "Slice", {"dim": axis, "start": i, "end": i + 1}, src)
    r.add(node, "Squeeze", {"dim": axis}, [src])


@handles("Tile")
def _tile(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    repeats = [int(v) for v in r.const(node, 1, "repeats")]
    if repeats[0] != 1:
        raise refused(node, "it repeats the batch")
    if all(v == 1 for v in repeats):
        r.alias(node)
        return
    r.add(node, "Repeat", {"repeats": repeats[1:]}, [src])


@handles("Expand")
def _expand(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    target = r.consts.get(node.input[1])
    if target is None:
        raise refused(node, "its target shape is computed from the input's values")
    if len(target.one) > len(x):
        raise refused(node, f"it adds {len(target.one) - len(x)} axes before the batch")
    entries = [1] * (len(x) - len(target.one)) + [int(v) for v in target.one]
    batch = [False] * (len(x) - len(target.one)) + list(target.batch_entries())
    if not (batch[0] or entries[0] == 1) or any(batch[1:]) or not target.fixed and np.any(
            target.one[1:] != target.two[1:]):
        raise refused(node, "it expands the batch axis")
    repeats = []
    for size, want in zip(x[1:], entries[1:]):
        if want in (1, size):
            repeats.append(1)
        elif size == 1:
            repeats.append(want)
        else:
            raise refused(node, f"cannot expand a dim of size {size} to {want}")
    if all(v == 1 for v in repeats):
        r.alias(node)
    else:
        r.add(node, "Repeat", {"repeats": repeats}, [src])


@handles("ReduceSum", "ReduceMean")
def _reduce(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    axes = _axes(r, node, a, len(x))
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
