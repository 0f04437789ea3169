"""Oracles for the per-sample normalisations: torch.nn.functional's instance and group norm."""
import torch.nn.functional as F


def _instance_norm(a, p, xs, training):
    return F.instance_norm(xs[0], p.get("running_mean"), p.get("running_var"), p.get("weight"),
                           p.get("bias"), training or not a.track_running_stats, a.momentum,
                           a.eps)


ORACLES = {
    "InstanceNorm1d": _instance_norm,
    "InstanceNorm2d": _instance_norm,
    "InstanceNorm3d": _instance_norm,
    "GroupNorm": lambda a, p, xs, tr: F.group_norm(xs[0], a.num_groups, p.get("weight"),
                                                   p.get("bias"), a.eps),
    "BatchNorm3d": lambda a, p, xs, tr: F.batch_norm(
        xs[0], p.get("running_mean"), p.get("running_var"), p.get("weight"), p.get("bias"),
        tr or not a.track_running_stats, a.momentum, a.eps),
}
