"""Oracles for the source, dense, activation and loss layers."""
import torch
import torch.nn.functional as F


def _linear(a, p, xs, training):
    return F.linear(xs[0], p["weight"], p.get("bias"))


ORACLES = {
    "Dense": _linear,
    "ReLU": lambda a, p, xs, training: torch.relu(xs[0]),
    "CrossEntropyLoss": lambda a, p, xs, training: F.cross_entropy(
        xs[0].reshape(-1, xs[0].shape[-1]), xs[1].reshape(-1), ignore_index=a.ignore_index),
    "MSELoss": lambda a, p, xs, training: F.mse_loss(xs[0], xs[1]),
    "Objective": lambda a, p, xs, training: xs[0].sum() / xs[0].shape[0],
}
