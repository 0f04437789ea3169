"""Text generation from a trained character language model: the next character, again and again.

The model is any graph trained with per-step cross-entropy on ``text`` data (``char_lstm``,
``tiny_gpt``): its Input takes T token ids and the CrossEntropyLoss's input gives next-character
scores at every step. To continue a text, the last (up to) T characters fill the input from the
left and the scores at the last filled position are sampled. The rest of the input is padding,
which is exact for causal models (unidirectional recurrent layers, causal attention): no step
reads a later one. A bidirectional model would see the padding, so its samples are not faithful.

A masked-LM (trained on ``text?mask=0.15``) does not continue a text: ``fill`` gives its likeliest
characters where a text has ``[MASK]`` (or ``_``), with the top candidates for each.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerloom.engine.data.masking import MASK_TOKEN, fill_masks
from layerloom.engine.data.text import decode, encode
from layerloom.engine.network import Network
from layerloom.engine.spec import LayerloomError
from layerloom.engine.training import bind


class SamplingError(LayerloomError):
    """A model, prompt or setting that cannot generate text (the message says which and why)."""


def next_id(scores: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Draw from softmax(scores / temperature); temperature 0 takes the most likely id."""
    if temperature == 0:
        return int(np.argmax(scores))
    z = scores.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def _context_length(net: Network, input_id: str) -> int:
    step = net.plan.step(input_id)
    shape = step.layer.infer(step.attrs)
    if len(shape) != 2 or step.attrs.get("dtype") != "int64":
        raise SamplingError(f"Input {input_id!r} must take int64 token ids of shape (steps,) "
                            f"to generate text")
    return shape[1]


def generate(net: Network, vocab: list[str], prompt: str, length: int,
             temperature: float = 1.0, seed: int = 0) -> str:
    """The ``length`` characters that follow ``prompt`` (the prompt itself is not repeated).

    ``vocab`` is the training data's ``class_names`` (id -> character); ``seed`` makes the draw
    reproducible.
    """
    if not prompt:
        raise SamplingError("the prompt is empty: give at least one character to continue")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise SamplingError(f"length must be a whole number >= 0, got {length!r}")
    if not (isinstance(temperature, (int, float)) and 0 <= temperature < float("inf")):
        raise SamplingError(f"temperature must be a number >= 0, got {temperature!r}")
    binding = bind(net)
    if binding.logits_ref is None:
        raise SamplingError("the graph has no CrossEntropyLoss fed by the Label: there are no "
                            "next-character scores to sample from")
    steps = _context_length(net, binding.input_id)
    label_step = net.plan.step(binding.label_id)
    label_shape = tuple(1 if d is None else d for d in label_step.layer.infer(label_step.attrs))
    try:
        ids = list(encode(prompt, vocab))
    except LayerloomError as err:
        raise SamplingError(f"prompt: {err}") from None
    rng, start = np.random.default_rng(seed), len(ids)
    x = np.zeros((1, steps), dtype=np.int64)
    for _ in range(length):
        context = ids[-steps:]
        x[0, :len(context)] = context
        net.forward({binding.input_id: x, binding.label_id: np.zeros(label_shape, np.int64)})
        scores = net.executor.values[binding.logits_ref][0]
        if scores.ndim != 2 or scores.shape[-1] != len(vocab):
            raise SamplingError(f"the model gives scores of shape {scores.shape} per sample but the "
                                f"vocabulary has {len(vocab)} characters: it needs one score per "
                                f"character at every step")
        ids.append(next_id(scores[len(context) - 1], temperature, rng))
    return decode(ids[start:], vocab)


# ------------------------------------------------------------------ masked-LM fill-in
MASK_MARKS = ("[MASK]", "_")  # what a person types for a hidden character


@dataclass(frozen=True)
class Filled:
    """A fill-in: the text with each mask replaced by its likeliest character, and per mask its
    position in that text and the top candidates as (character, probability)."""
    text: str
    guesses: list


def _mask_ids(text: str, vocab: list[str]) -> list[int]:
    """``text`` -> ids, every mark in ``MASK_MARKS`` becoming the ``[MASK]`` id (the last)."""
    mask_id, real, ids, i = len(vocab) - 1, vocab[:-1], [], 0
    while i < len(text):
        mark = next((m for m in MASK_MARKS if text.startswith(m, i) and m not in real), None)
        if mark:
            ids.append(mask_id)
            i += len(mark)
            continue
        try:
            ids.extend(int(v) for v in encode(text[i], real))
        except LayerloomError as err:
            raise SamplingError(f"text: {err}") from None
        i += 1
    return ids


def fill(net: Network, vocab: list[str], text: str, top: int = 5) -> Filled:
    """Fill in the masked characters of ``text`` with a masked-LM (``vocab`` its data's
    ``class_names``, ``[MASK]`` last). A text that fits the input fills it from the left; the rest
    is newlines, what follows a verse in the training text. A longer text is read in windows of
    the input's length: each mask is filled from the window that centres it (as far as the text
    allows), so every guess sees as much of the text on both sides as the model can."""
    if not vocab or vocab[-1] != MASK_TOKEN:
        raise SamplingError("the model was not trained on masked data (text?mask=0.15): "
                            "it has no [MASK] token to fill in")
    ids = _mask_ids(text, vocab)
    mask_id = len(vocab) - 1
    if mask_id not in ids:
        raise SamplingError(f"the text has nothing to fill in: mark characters with "
                            f"{' or '.join(MASK_MARKS)}")
    binding = bind(net)
    if binding.logits_ref is None:
        raise SamplingError("the graph has no CrossEntropyLoss fed by the Label: no scores")
    steps = _context_length(net, binding.input_id)
    label_step = net.plan.step(binding.label_id)
    label_shape = tuple(1 if d is None else d for d in label_step.layer.infer(label_step.attrs))
    pad = vocab.index("\n") if "\n" in vocab else 0
    masks = [i for i, v in enumerate(ids) if v == mask_id]
    starts = {p: min(max(p - steps // 2, 0), max(len(ids) - steps, 0)) for p in masks}
    guesses = []
    for start in sorted(set(starts.values())):
        window = ids[start:start + steps]
        x = np.full((1, steps), pad, dtype=np.int64)
        x[0, :len(window)] = window
        net.forward({binding.input_id: x, binding.label_id: np.zeros(label_shape, np.int64)})
        scores = net.executor.values[binding.logits_ref][0]
        if scores.shape != (steps, len(vocab)):
            raise SamplingError(f"the model gives scores of shape {scores.shape} per sample, not "
                                f"one per character of {len(vocab)} at each of {steps} steps")
        guesses += [(start + pos, best) for pos, best in fill_masks(scores, x[0, :len(window)],
                                                                   mask_id, top)
                    if starts[start + pos] == start]
    guesses.sort()
    chars = [vocab[i] for i in ids]
    for pos, best in guesses:
        chars[pos] = vocab[best[0][0]]
    return Filled("".join(chars), [(pos, [(vocab[i], p) for i, p in best]) for pos, best in guesses])
