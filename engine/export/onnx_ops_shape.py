"""ONNX import handlers for the tensor-shape operators: Reshape, Flatten, Transpose, Squeeze,
Unsqueeze, Concat, Split, Slice, Gather, Tile, Expand.

Dims are checked against the batch: ONNX counts the batch as axis 0 as Layerloom does, and an
operator that would cut, move or merge it is refused with that reason (a graph keeps one sample
per row from the Input to the loss). Their shape inputs are constants by the time they are read
(``onnx_fold``), so a target that follows the batch size is recognised as the batch.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.export.onnx_reader import Reader, handles, refused
from layerloom.engine.spec import fmt_shape

INT_MAX = 2**31 - 1


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
    if -1 not in rest and int(np.prod(rest)) != int(np.prod(x[1:])):
        raise refused(node, f"it moves values between samples (target {one} for "
                            f"{fmt_shape(x)} per sample); Layerloom keeps one sample per row")
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
        dims = "every dim" if axis == 0 else "dim 1" if axis == 2 else f"dims 1…{axis - 1}"
        raise refused(node, f"flattening at axis {a.get('axis', 1)} merges the batch with "
                            f"{dims} of {len(x)}-D input; Layerloom keeps one sample per row")
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


def axes_input(r: Reader, node, a: dict, ndim: int) -> list | None:
    """The axes of Squeeze/Unsqueeze/Reduce* (input 1 at opset 13+), non-negative; None when
    absent."""
    axes = r.const(node, 1, "axes") if len(node.input) > 1 and node.input[1] else a.get("axes")
    return None if axes is None else [int(v) % ndim for v in np.reshape(axes, -1)]


@handles("Squeeze")
def _squeeze(r: Reader, node, a: dict) -> None:
    src = r.value(node)
    x = r.shape(src)
    axes = axes_input(r, node, a, len(x))
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
    chunk = -(-x[axis] // n)  # torch.chunk's piece, and opset 18's num_outputs
    if sizes is None:
        if x[axis] % n and "num_outputs" not in a:
            raise refused(node, f"{x[axis]} entries do not split evenly in {n}")
        sizes = [min(chunk, x[axis] - start) for start in range(0, x[axis], chunk)]
    sizes = [int(s) for s in np.reshape(sizes, -1)]
    if n == 1:
        r.alias(node)
        return
    if n > 2 and sizes == [min(chunk, x[axis] - s) for s in range(0, x[axis], chunk)]:
        r.add(node, "Chunk", {"chunks": n, "dim": axis}, [src])
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
