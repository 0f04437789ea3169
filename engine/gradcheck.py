"""Finite-difference check of a whole network: does backward agree with nudging each parameter?

The per-layer test checks every layer type alone; this checks what only the whole graph does —
gradients summed where a tensor fans out, frozen nodes, multi-output layers, several losses. It
runs in float64 (float32 central differences are noise at eps = 1e-6) and replays the same random
stream for every forward, so stochastic layers such as Dropout draw the same mask each time.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.graph import Graph
from layerloom.engine.network import Network


def check_network(graph: Graph, inputs: dict, seed: int = 0, eps: float = 1e-6,
                  samples_per_param: int = 8, rtol: float = 1e-5, atol: float = 1e-7) -> list[str]:
    """Compare ``Network.backward`` with central differences of the loss at a few entries of every
    trainable parameter; returns one line per mismatch (an empty list when all agree)."""
    net = Network(graph, seed=seed, dtype=np.float64)
    trainable = set(net.trainable_keys)
    fixed = {k: v.copy() for k, v in net.params.items() if k not in trainable}

    def loss() -> float:
        for key, value in fixed.items():  # running statistics must not drift between probes
            net.params[key][...] = value
        net.rng = np.random.default_rng(seed)  # same dropout masks on every forward
        net.forward(inputs, training=True)
        return net.loss()

    loss()
    grads = {k: v.copy() for k, v in net.backward().items()}
    problems = [f"{k}: frozen or non-trainable, yet got a gradient" for k in grads if k not in trainable]
    pick = np.random.default_rng(seed)
    for key in net.trainable_keys:
        value, grad = net.params[key], grads.get(key)
        if grad is None or grad.shape != value.shape:
            got = "none" if grad is None else f"shape {grad.shape}"
            problems.append(f"{key}: expected a gradient of shape {value.shape}, got {got}")
            continue
        for flat in pick.choice(value.size, size=min(samples_per_param, value.size), replace=False):
            idx = np.unravel_index(flat, value.shape)
            numeric = _central_difference(value, idx, eps, loss)
            if not np.isclose(grad[idx], numeric, rtol=rtol, atol=atol):
                problems.append(f"{key}{list(map(int, idx))}: backward {grad[idx]:.8g}, "
                                f"finite difference {numeric:.8g}")
    return problems


def _central_difference(value: np.ndarray, idx: tuple, eps: float, loss) -> float:
    old = value[idx]
    value[idx] = old + eps
    hi = loss()
    value[idx] = old - eps
    lo = loss()
    value[idx] = old
    return (hi - lo) / (2 * eps)
