"""An encoder-decoder network as two ONNX models for deployment: the encoder, run once per
source, and the decoder step, run once per generated token.

The graph is cut as decoding cuts it (``engine.seq2seq_parts``). The encoder model takes
``source`` (the source ids, padded with ``<pad>`` = 0) and ``source_mask`` (1 at a padded source
position), both int64 of the packed part's length, and gives the memory: the values the decoder
part reads, each named after the node that computes it ("enc_norm"). The decoder-step model takes
those values under the same names, ``source_mask`` when the decoder reads it (the
cross-attention's key padding), and ``decoder_input``: ``<s>`` (1) followed by the tokens chosen
so far, padded with ``<pad>`` to the same length. It gives the model's outputs ("logits": the
next-token scores at every decoder position; the decoder is causal, so the scores at position i
read only positions up to i). Feeding the encoder's outputs by name:

    memory = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {"source": s,
                                                                          "source_mask": m})))
    feed = {i.name: memory.get(i.name) for i in dec.get_inputs()} | {"decoder_input": d, ...}
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.export.onnx import Value, model_bytes
from layerloom.engine.export.outputs import ExportError, model_outputs
from layerloom.engine.network import Network
from layerloom.engine.seq2seq_parts import (DECODER_INPUT, MASK, SOURCE, NotEncoderDecoder,
                                            partition)

SLICE_NAMES = {SOURCE: "source", DECODER_INPUT: "decoder_input", MASK: "source_mask"}


def split_onnx(net: Network, title: str = "layerloom",
               metadata: dict | None = None) -> tuple[bytes, bytes]:
    """(encoder model, decoder-step model) of an encoder-decoder network; ExportError in one
    line for any other graph."""
    plan = net.plan
    try:
        part = partition(plan)
    except NotEncoderDecoder as err:
        raise ExportError(f"cannot split the model: {err}") from None
    ids = np.dtype(np.int64)
    slices = {part.slice_ref(k): Value(part.slice_ref(k), name, plan.shapes.shapes[
        part.slice_ref(k)], ids) for k, name in SLICE_NAMES.items()}
    memory = [slices.get(ref) or Value(ref, _name(plan, ref), plan.shapes.shapes[ref], net.dtype)
              for ref in part.memory]
    dec_ids = {s.node_id for s in part.decoder}
    outputs = [Value(ref, plan.public_name(ref), plan.shapes.shapes[ref], net.dtype)
               for ref in model_outputs(plan) if ref[0] in dec_ids]
    if not outputs:
        raise ExportError("cannot split the model: its outputs do not depend on the decoder "
                          "input")
    enc_feeds = [slices[part.slice_ref(SOURCE)], slices[part.slice_ref(MASK)]]
    enc_out = [v for v in memory if v.ref not in slices]
    encoder = model_bytes(net, part.encoder, enc_feeds, enc_out, f"{title}.encoder", metadata,
                          full_check=True)
    dec_feeds = [*memory, slices[part.slice_ref(DECODER_INPUT)]]
    decoder = model_bytes(net, part.decoder, dec_feeds, outputs, f"{title}.decoder", metadata,
                          full_check=True)
    return encoder, decoder


def _name(plan, ref: tuple) -> str:
    """A memory value's name: its node's id ("enc_norm"), with the port when it has several."""
    step = plan.step(ref[0])
    return ref[0] if len(step.outputs) == 1 else f"{ref[0]}.{ref[1]}"
