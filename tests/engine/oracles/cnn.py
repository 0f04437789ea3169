"""Oracles for the activation, shape and merge layers (convolution and pooling: conv.py)."""
import torch
import torch.nn.functional as F


ORACLES = {
    "LeakyReLU": lambda a, p, xs, tr: F.leaky_relu(xs[0], a.negative_slope),
    "Sigmoid": lambda a, p, xs, tr: torch.sigmoid(xs[0]),
    "Tanh": lambda a, p, xs, tr: torch.tanh(xs[0]),
    "GELU": lambda a, p, xs, tr: F.gelu(xs[0], approximate=a.approximate),
    "Softmax": lambda a, p, xs, tr: torch.softmax(xs[0], dim=a.dim),
    "Dropout": lambda a, p, xs, tr: F.dropout(xs[0], a.p, training=tr),
    "Flatten": lambda a, p, xs, tr: torch.flatten(xs[0], 1),
    "Reshape": lambda a, p, xs, tr: xs[0].reshape(len(xs[0]), *a.shape),
    "Add": lambda a, p, xs, tr: xs[0] + xs[1],
    "Concat": lambda a, p, xs, tr: torch.cat(xs, dim=a.dim),
    "Split": lambda a, p, xs, tr: tuple(torch.split(
        xs[0], [a.split or xs[0].shape[a.dim] // 2,
                xs[0].shape[a.dim] - (a.split or xs[0].shape[a.dim] // 2)], dim=a.dim)),
}
