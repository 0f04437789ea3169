"""Masked-language-model data (BERT's pretraining task): hide some tokens, predict them back.

Of every window's tokens a share ``rate`` (BERT: 15 %) is *chosen*; a chosen token becomes the
``[MASK]`` token in 80 % of cases, a random real token in 10 % and stays itself in 10 % (Devlin
et al. 2019, §3.1: the model cannot learn that only ``[MASK]`` positions matter). The target is the
original token at chosen positions and ``IGNORE_INDEX`` (-100, PyTorch's default ``ignore_index``)
everywhere else, so CrossEntropyLoss averages over the chosen positions only.

The masking is drawn once, from the seed, when the data is read (BERT's original static
masking): the same spec and seed give the same samples, run after run.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.data import DataError

IGNORE_INDEX = -100  # as engine.layers.losses and PyTorch: the target of a position not scored
MASK_TOKEN = "[MASK]"  # the extra class name (last id) of a masked-LM vocabulary
REPLACE_MASK, REPLACE_RANDOM = 0.8, 0.1  # the rest (10 %) keep their token


def check_rate(rate: object, where: str) -> float:
    """The ``mask`` option: a share in [0, 1) (0: no masking, a next-token model)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise DataError(f"{where}: mask must be a share from 0 to below 1 (BERT: 0.15), got {rate!r}")
    return float(rate)


def mask_tokens(ids: np.ndarray, vocab_size: int, rate: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) for windows ``ids`` (N, T) of ids in ``0..vocab_size-1``.

    The ``[MASK]`` id is ``vocab_size`` (one past the real tokens). Every window gets at least one
    chosen position, so no sample's loss is a mean over nothing.
    """
    rng = np.random.default_rng((seed, 0x4D41534B))  # its own stream: not the splits' shuffle
    chosen = rng.random(ids.shape) < rate
    if ids.size:
        empty = np.flatnonzero(~chosen.any(axis=1))
        chosen[empty, rng.integers(0, ids.shape[1], size=len(empty))] = True
    how = rng.random(ids.shape)
    inputs = ids.copy()
    inputs[chosen & (how < REPLACE_MASK)] = vocab_size
    shuffled = chosen & (how >= REPLACE_MASK) & (how < REPLACE_MASK + REPLACE_RANDOM)
    inputs[shuffled] = rng.integers(0, vocab_size, size=int(shuffled.sum()))
    targets = np.where(chosen, ids, IGNORE_INDEX).astype(np.int64)
    return inputs, targets


def masked_windows(ids: np.ndarray, seq_len: int, vocab_size: int, rate: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of ``seq_len`` ids, masked: (inputs, targets) as ``mask_tokens``."""
    count = len(ids) // seq_len
    windows = ids[:count * seq_len].reshape(count, seq_len)
    return mask_tokens(windows, vocab_size, rate, seed)


def fill_masks(scores: np.ndarray, ids: np.ndarray, mask_id: int, top: int = 5):
    """For each ``mask_id`` position of ``ids`` (T,), the ``top`` likeliest real tokens from
    ``scores`` (T, V) as [(position, [(id, probability), ...]), ...], likeliest first. The
    ``[MASK]`` class itself is never offered: it is not a token of the text."""
    out = []
    for pos in np.flatnonzero(ids == mask_id):
        z = scores[pos].astype(np.float64)
        z[mask_id:] = -np.inf
        p = np.exp(z - z.max())
        p /= p.sum()
        best = np.argsort(-p, kind="stable")[:top]
        out.append((int(pos), [(int(i), float(p[i])) for i in best]))
    return out
