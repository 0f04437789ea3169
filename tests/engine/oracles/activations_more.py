"""Oracles for the activations beyond ReLU/Sigmoid/Tanh/GELU: torch.nn.functional's own."""
import torch.nn.functional as F

ORACLES = {
    "PReLU": lambda a, p, xs, tr: F.prelu(xs[0], p["weight"]),
    "ELU": lambda a, p, xs, tr: F.elu(xs[0], a.alpha),
    "SELU": lambda a, p, xs, tr: F.selu(xs[0]),
    "CELU": lambda a, p, xs, tr: F.celu(xs[0], a.alpha),
    "SiLU": lambda a, p, xs, tr: F.silu(xs[0]),
    "Mish": lambda a, p, xs, tr: F.mish(xs[0]),
    "Softplus": lambda a, p, xs, tr: F.softplus(xs[0], a.beta, a.threshold),
    "Softsign": lambda a, p, xs, tr: F.softsign(xs[0]),
    "Hardtanh": lambda a, p, xs, tr: F.hardtanh(xs[0], a.min_val, a.max_val),
    "Hardswish": lambda a, p, xs, tr: F.hardswish(xs[0]),
    "Hardsigmoid": lambda a, p, xs, tr: F.hardsigmoid(xs[0]),
    "LogSigmoid": lambda a, p, xs, tr: F.logsigmoid(xs[0]),
    "LogSoftmax": lambda a, p, xs, tr: F.log_softmax(xs[0], dim=a.dim),
    "Softmin": lambda a, p, xs, tr: F.softmin(xs[0], dim=a.dim),
    "GLU": lambda a, p, xs, tr: F.glu(xs[0], dim=a.dim),
    "Hardshrink": lambda a, p, xs, tr: F.hardshrink(xs[0], a.lambd),
    "Softshrink": lambda a, p, xs, tr: F.softshrink(xs[0], a.lambd),
}
