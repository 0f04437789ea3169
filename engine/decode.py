"""Decoding an encoder-decoder model trained on paired sequences: greedy and beam search.

The model is any graph trained on ``pairs:`` data (``engine.data.pairs``): its one Input takes
the source ids, the decoder input and the source's padding mask packed side by side, and the CrossEntropyLoss's input gives
scores for the next target token at every decoder position. Decoding starts from ``<s>`` and the
source, and feeds each chosen token back in as the next decoder input; the positions not decoded
yet hold ``<pad>``. That is exact for a causal decoder (as every Transformer decoder is): no
decoder position reads a later one, so the padding is never seen. The encoder runs once per
source: the graph is cut where the ONNX split export cuts it (``engine.seq2seq_parts``), and each
step reruns only the part downstream of the decoder input, with the same kernels on the same
values as a whole forward, so the scores are the same bit for bit. (A graph with no such cut
reruns whole.) Keeping the decoder's own earlier positions instead of recomputing them would
need a cache in every attention kernel; for the small models this is for it is not worth it.

``greedy`` takes the likeliest token at every step, for many sources at once. ``beam_search``
keeps the ``k`` likeliest partial targets (by summed log-probability) and returns the likeliest
finished one; with ``k = 1`` it makes greedy's choices. Both are pure functions over a Network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerloom.engine.data.pairs import EOS, PAD, PairFormat, packed_inputs
from layerloom.engine.network import Network
from layerloom.engine.seq2seq_parts import (DECODER_INPUT, NotEncoderDecoder, partition,
                                            run_steps, split_schedule)
from layerloom.engine.spec import LayerloomError
from layerloom.engine.training import bind


class DecodeError(LayerloomError):
    """A model, source or setting that cannot be decoded (the message says which and why)."""


@dataclass(frozen=True)
class Decoded:
    """One decoded target: its ids (without ``<s>``, up to but not including ``</s>``), its
    text and its summed log-probability (including the end token's when it ended)."""

    ids: tuple
    text: str
    log_prob: float
    ended: bool  # False when the decoder ran out of positions before choosing </s>


@dataclass(frozen=True)
class Seq2SeqModel:
    """A network with the nodes decoding feeds and reads, checked against the data's format."""

    net: Network
    fmt: PairFormat
    input_id: str
    label_id: str
    logits_ref: tuple
    parts: tuple | None = None  # (encoder steps, decoder steps, memory refs, decoder slice ref)

    @classmethod
    def of(cls, net: Network, fmt: PairFormat, reuse_encoder: bool = True) -> "Seq2SeqModel":
        """``reuse_encoder``: run the encoder once per source (False: the whole graph at every
        step, as a reference)."""
        binding = bind(net)
        if binding.logits_ref is None:
            raise DecodeError("the graph has no CrossEntropyLoss fed by the Label: there are no "
                              "next-token scores to decode with")
        step = net.plan.step(binding.input_id)
        shape = step.layer.infer(step.attrs)[1:]
        want = (3 * fmt.steps,)
        if tuple(shape) != want or step.attrs.get("dtype") != "int64":
            raise DecodeError(f"Input {binding.input_id!r} must take int64 ids of shape {want} "
                              f"(source, decoder input and source mask side by side), not "
                              f"{shape}: fit the graph to the pairs data first")
        parts = None
        try:
            part = partition(net.plan)
            if reuse_encoder and part.input_id == binding.input_id:
                parts = (*split_schedule(net.executor.schedule, part),
                         part.slice_ref(DECODER_INPUT))
        except NotEncoderDecoder:
            pass  # no encoder to keep: every step runs the whole graph
        return cls(net, fmt, binding.input_id, binding.label_id, binding.logits_ref, parts)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """(N, steps, vocab) next-token scores for packed inputs ``x``."""
        labels = np.zeros((len(x), self.fmt.steps), np.int64)
        self.net.forward({self.input_id: x, self.label_id: labels}, check=False)
        return self._checked(self.net.executor.values[self.logits_ref])

    def encode(self, x: np.ndarray) -> dict | None:
        """What every decoding step of packed inputs ``x`` reuses: the values the decoder part
        reads from the encoder part, computed once (None for a graph without an encoder part)."""
        if self.parts is None:
            return None
        encoder, _, memory, _ = self.parts
        step = self.net.plan.step(self.input_id)
        values = run_steps(encoder, self.net.params,
                           {(self.input_id, step.outputs[0]): self.net.executor.feed(step, x)},
                           self.net.rng)
        return {ref: values[ref] for ref in memory}

    def step_scores(self, memory: dict | None, x: np.ndarray) -> np.ndarray:
        """``scores(x)`` for packed inputs whose source part ``memory`` came from (``encode``),
        running only the decoder part: the same values bit for bit."""
        if memory is None:
            return self.scores(x)
        _, decoder, _, dec_slice = self.parts
        n = self.fmt.steps
        values = dict(memory)
        values[dec_slice] = np.ascontiguousarray(x[:, n:2 * n], np.int64)
        return self._checked(run_steps(decoder, self.net.params, values, self.net.rng)[
            self.logits_ref])

    def _checked(self, z: np.ndarray) -> np.ndarray:
        if z.shape[1:] != (self.fmt.steps, len(self.fmt.vocab)):
            raise DecodeError(f"the model gives scores of shape {z.shape[1:]} per sample; decoding "
                              f"needs one score per token of the {len(self.fmt.vocab)}-token "
                              f"vocabulary at each of the {self.fmt.steps} decoder positions")
        return z

    def packed(self, sources: np.ndarray) -> np.ndarray:
        """Sources (N, steps) with their masks and a decoder input of ``<s>`` and padding."""
        return packed_inputs(self.fmt, sources)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def greedy_ids(model: Seq2SeqModel, sources: np.ndarray) -> np.ndarray:
    """(N, target_len) ids chosen greedily for source ids (N, steps); after a row's
    ``</s>`` its ids mean nothing. Stops once every row has ended."""
    s, t = model.fmt.steps, model.fmt.target_len
    x = model.packed(np.asarray(sources, np.int64))
    out = np.full((len(x), t), PAD, np.int64)
    ended = np.zeros(len(x), bool)
    memory = model.encode(x)
    for i in range(t):
        out[:, i] = model.step_scores(memory, x)[:, i].argmax(axis=-1)
        ended |= out[:, i] == EOS
        if ended.all() or i + 1 == t:
            break
        x[:, s + i + 1] = out[:, i]
    return out


def _result(model: Seq2SeqModel, ids: list, log_prob: float) -> Decoded:
    ended = bool(ids) and ids[-1] == EOS
    body = tuple(ids[:-1] if ended else ids)
    return Decoded(body, model.fmt.decode(body), float(log_prob), ended)


def greedy(model: Seq2SeqModel, source: np.ndarray) -> Decoded:
    """The greedy target of one source (``steps`` ids), with its log-probability."""
    s = model.fmt.steps
    x = model.packed(np.asarray(source, np.int64)[None])
    ids, total = [], 0.0
    memory = model.encode(x)
    for i in range(model.fmt.target_len):
        logp = _log_softmax(model.step_scores(memory, x)[0, i])
        ids.append(int(logp.argmax()))
        total += logp[ids[-1]]
        if ids[-1] == EOS or i + 1 == model.fmt.target_len:
            break
        x[0, s + i + 1] = ids[-1]
    return _result(model, ids, total)


def beam_search(model: Seq2SeqModel, source: np.ndarray, k: int) -> Decoded:
    """The likeliest target that ``k`` beams find (summed log-probabilities, no length penalty:
    these tasks have one right length). Candidates tie-break by beam, then by token id, so
    ``k = 1`` chooses as ``greedy`` does."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DecodeError(f"the beam width must be a whole number >= 1, got {k!r}")
    s, t = model.fmt.steps, model.fmt.target_len
    beams = [([], 0.0)]  # (ids so far, summed log-probability), best first
    finished = []
    one = model.packed(np.asarray(source, np.int64)[None])
    # The encoder runs once per number of beams (1, then k, fewer as beams finish), not once:
    # its kernels may add up in another order for another batch size, and a repeated row of a
    # one-row memory would then differ in the last bits from what a whole forward computes.
    memories = {}
    for i in range(t):
        x = np.repeat(one, len(beams), axis=0)
        for row, (ids, _) in enumerate(beams):
            x[row, s + 1:s + 1 + i] = ids
        if len(beams) not in memories:
            memories[len(beams)] = model.encode(x)
        logp = _log_softmax(model.step_scores(memories[len(beams)], x)[:, i])
        totals = np.array([score for _, score in beams])[:, None] + logp
        order = np.argsort(-totals, axis=None, kind="stable")[:k]  # row-major: beam, then token
        beams = []
        for flat in order:
            row, token = divmod(int(flat), logp.shape[1])
            ids = x[row, s + 1:s + 1 + i].tolist() + [token]
            (finished if token == EOS else beams).append((ids, float(totals[row, token])))
        if not beams:
            break
    finished += beams  # ran out of positions: the unfinished count as they stand
    ids, score = max(finished, key=lambda b: b[1])  # max keeps the first of equals
    return _result(model, ids, score)


def decode_text(model: Seq2SeqModel, text: str, beam: int = 1) -> Decoded:
    """The decoded target of a typed source: greedy for ``beam`` 1, else beam search."""
    try:
        source = model.fmt.encode_source(text)
    except LayerloomError as err:
        raise DecodeError(f"source: {err}") from None
    return greedy(model, source) if beam == 1 else beam_search(model, source, beam)


# ------------------------------------------------------------------ cross-attention maps
def cross_attention_nodes(net: Network) -> list[str]:
    """The (flat) ids of the attention steps whose queries and keys come from different values
    and that give their weights (``MultiHeadAttention`` with ``need_weights``): where a decoder
    looks at the source. In plan order, so the last decoder layer's comes last."""
    return [s.node_id for s in net.plan.steps
            if "weights" in s.outputs and len(s.inputs) > 1 and s.inputs[0] != s.inputs[1]]


def attention_map(model: Seq2SeqModel, source: np.ndarray, decoded: Decoded,
                  node_id: str) -> np.ndarray:
    """Weights (target position × source position) with which ``node_id`` attended while each
    target token (and the end token, when it ended) was chosen, averaged over the heads; only
    the source's real (unpadded) positions. One forward with the whole decoded target as the
    decoder input gives every row at once: the decoder is causal."""
    s, t = model.fmt.steps, model.fmt.target_len
    source = np.asarray(source, np.int64)
    x = model.packed(source[None])
    ids = list(decoded.ids)[:t - 1]
    x[0, s + 1:s + 1 + len(ids)] = ids
    model.scores(x)
    ref = (node_id, "weights")
    if ref not in model.net.executor.values:
        raise DecodeError(f"{node_id!r} gives no attention weights: turn on its need_weights")
    rows = min(len(decoded.ids) + int(decoded.ended), t)
    return np.array(model.net.executor.values[ref][0, :rows, :int((source != PAD).sum())])
