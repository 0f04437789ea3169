"""Text generation from a trained character language model: the next character, again and again.

The model is any graph trained with per-step cross-entropy on ``text`` data (``char_lstm``,
``tiny_gpt``): its Input takes T token ids and the CrossEntropyLoss's input gives next-character
scores at every step. To continue a text, the last (up to) T characters fill the input from the
left and the scores at the last filled position are sampled. The rest of the input is padding,
which is exact for causal models (unidirectional recurrent layers, causal attention): no step
reads a later one. A bidirectional model would see the padding, so its samples are not faithful.
"""
from __future__ import annotations

import numpy as np

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
