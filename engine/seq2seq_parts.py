"""An encoder-decoder graph cut in two: the part that reads only the source, run once per
source, and the part a decoding step reruns.

A graph trained on ``pairs:`` data (``engine.data.pairs``) takes one int64 Input that packs the
source ids, the decoder input and the source's padding mask side by side, and cuts it apart with
one Chunk node of three parts. The decoder part is every step that a path of values leads to
from the Chunk's middle output (the decoder input slice); the encoder part is every other step
that the decoder part needs. The ``memory`` is what crosses: the values the decoder part reads
from the encoder part, and the source slices it reads as they are (the mask, for the
cross-attention's key padding).

The walk is over the plan's flat steps rather than ``Graph.reachable``: blocks are expanded there
(a decoder block's cross-attention reads the encoder's output from inside the block), and the
Chunk's three ports lead to different parts although they leave one node. The same ``downstream``
walk runs over a fused schedule too (``split_schedule``): decoding and the ONNX export cut the
graph the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerloom.engine.executor import run_step
from layerloom.engine.plan import Plan
from layerloom.engine.spec import LayerloomError

SOURCE, DECODER_INPUT, MASK = 0, 1, 2  # the packed parts, in the Chunk's port order


class NotEncoderDecoder(LayerloomError):
    """The graph is not an encoder-decoder over packed pairs; the message says why in one line."""


@dataclass(frozen=True)
class Partition:
    """A plan's encoder and decoder steps and the values that cross between them."""

    input_id: str
    chunk_id: str
    encoder: tuple  # the steps the decoder part needs that do not read the decoder input
    decoder: tuple  # the steps downstream of the decoder input slice
    memory: tuple  # refs the decoder steps read from outside the decoder part, in plan order

    def slice_ref(self, part: int) -> tuple:
        """The Chunk output holding a packed part (SOURCE, DECODER_INPUT or MASK)."""
        return (self.chunk_id, f"y{part}")


def downstream(steps, starts) -> set:
    """Ids of the steps (in run order) that a path of values leads to from the refs ``starts``."""
    starts, seen = set(starts), set()
    for s in steps:
        if any(r is not None and (r in starts or r[0] in seen) for r in s.inputs):
            seen.add(s.node_id)
    return seen


def upstream(steps, refs) -> set:
    """Ids of the steps (in run order) whose values ``refs`` are computed from."""
    need, seen = {r[0] for r in refs}, set()
    for s in reversed(steps):
        if s.node_id in need:
            seen.add(s.node_id)
            need |= {r[0] for r in s.inputs if r is not None}
    return seen


def _chunk(plan: Plan) -> tuple[str, str]:
    """(Input id, Chunk id) of the packed pairs layout, or NotEncoderDecoder."""
    inputs = [s for s in plan.steps if s.layer.type_id == "Input"]
    if len(inputs) != 1:
        raise NotEncoderDecoder(f"not an encoder-decoder graph: it has {len(inputs)} Input "
                                f"nodes, an encoder-decoder over pairs: data has one")
    ref = (inputs[0].node_id, inputs[0].outputs[0])
    readers = [s for s in plan.steps if ref in s.inputs]
    chunks = [s for s in readers if s.layer.type_id == "Chunk" and s.attrs["chunks"] == 3]
    if len(readers) != 1 or not chunks or inputs[0].attrs.get("dtype") != "int64":
        raise NotEncoderDecoder(
            f"not an encoder-decoder graph: its Input {ref[0]!r} must take int64 ids cut by one "
            f"Chunk of 3 (source, decoder input, source mask), as pairs: data packs them")
    return ref[0], chunks[0].node_id


def partition(plan: Plan) -> Partition:
    """The encoder and decoder parts of ``plan`` (its unfused steps); NotEncoderDecoder, in one
    line, for a graph that has no such cut."""
    input_id, chunk_id = _chunk(plan)
    steps = [s for s in plan.steps if not s.layer.is_source and not s.layer.is_loss]
    dec_ids = downstream(steps, [(chunk_id, f"y{DECODER_INPUT}")])
    decoder = tuple(s for s in steps if s.node_id in dec_ids)
    if not decoder:
        raise NotEncoderDecoder("not an encoder-decoder graph: nothing reads the decoder input "
                                "(the Chunk's middle part)")
    memory = _crossing(decoder, dec_ids, (chunk_id, f"y{DECODER_INPUT}"))
    enc_ids = upstream(steps, memory) - {chunk_id}
    if not enc_ids:
        raise NotEncoderDecoder("not an encoder-decoder graph: the decoder reads nothing "
                                "computed from the source alone (no encoder)")
    encoder = tuple(s for s in steps if s.node_id in enc_ids)
    return Partition(input_id, chunk_id, encoder, decoder, memory)


def _crossing(decoder, dec_ids: set, start: tuple) -> tuple:
    """The refs decoder steps read from steps outside ``dec_ids``, in first-read order, but the
    decoder input slice ``start``."""
    refs = [r for s in decoder for r in s.inputs
            if r is not None and r[0] not in dec_ids and r != start]
    return tuple(dict.fromkeys(refs))


def split_schedule(schedule, part: Partition) -> tuple[tuple, tuple, tuple]:
    """(encoder steps, decoder steps, memory refs) of a fused schedule cut as ``part`` cuts the
    plan. A fused step with any member in the decoder part runs with the decoder (it still
    reads only values that exist before it), so the cut never splits a kernel."""
    dec_ids = {d.node_id for d in part.decoder}
    decoder, dec_step_ids = [], set()
    for s in schedule:
        if s.node_id in dec_ids or any(m.node_id in dec_ids for m in s.members):
            decoder.append(s)
            dec_step_ids.add(s.node_id)
    memory = _crossing(decoder, dec_step_ids, part.slice_ref(DECODER_INPUT))
    body = [s for s in schedule if not s.layer.is_source and not s.layer.is_loss
            and s.node_id not in dec_step_ids]
    enc_ids = upstream(body, memory)
    encoder = tuple(s for s in body if s.node_id in enc_ids)
    return encoder, tuple(decoder), memory


@np.errstate(all="ignore")
def run_steps(steps, params: dict, values: dict, rng: np.random.Generator | None = None) -> dict:
    """Runs ``steps`` (inference) on ``values`` with the executor's own ``run_step``, so a value
    comes out bit for bit as in a whole forward; adds each output to ``values`` and returns it.
    Non-finite values are left for the caller to see."""
    rng = rng if rng is not None else np.random.default_rng(0)  # (inference draws nothing)
    for s in steps:
        run_step(s, params, values, False, rng)
    return values
