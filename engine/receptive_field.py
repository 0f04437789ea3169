"""Where one output element of a convolution comes from: its receptive field on the input and
each input position's share of its value, for the Explain tab's heat-map overlay.

``y[f, i, j] = b[f] + Σ_{c, u, v} W[f, c, u, v] · x[c, i·sh − ph + u·dh, j·sw − pw + v·dw]``
(PyTorch's Conv2d, groups included). Summing each tap's term over the channels it reads gives a
map over the input that adds up, with the bias, to exactly the output the network computed: the
overlay shows which pixels pushed the value up (red) and which down (blue).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerloom.engine.spec import LayerloomError
from layerloom.engine.tensor_pictures import enlarge

FIELD_EDGE = np.array((255, 170, 0), np.float64)  # the field's outline: orange on grey and colour


@dataclass(frozen=True)
class Field:
    rows: tuple  # (first, last + 1) input rows the taps read, padding included
    cols: tuple
    contribution: np.ndarray  # H×W: Σ over channels of W·x at each input position, 0 elsewhere
    bias: float

    @property
    def value(self) -> float:
        """The output element: the contributions plus the bias."""
        return float(self.contribution.sum() + self.bias)


def conv_field(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, attrs, f: int,
               i: int, j: int) -> Field:
    """The receptive field of output ``y[f, i, j]`` of one sample ``x`` (C×H×W)."""
    x, w = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    n_out, c_per_group, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = attrs["stride"], attrs["padding"], attrs["dilation"]
    if not 0 <= f < n_out:
        raise LayerloomError(f"filter {f} is outside 0..{n_out - 1}")
    first = (f // (n_out // attrs.get("groups", 1))) * c_per_group
    contribution = np.zeros(x.shape[1:])
    r0, c0 = i * sh - ph, j * sw - pw
    for u in range(kh):
        r = r0 + u * dh
        for v in range(kw):
            s = c0 + v * dw
            if 0 <= r < x.shape[1] and 0 <= s < x.shape[2]:
                contribution[r, s] += float(w[f, :, u, v] @ x[first:first + c_per_group, r, s])
    return Field((r0, r0 + (kh - 1) * dh + 1), (c0, c0 + (kw - 1) * dw + 1), contribution,
                 float(bias[f]) if bias is not None else 0.0)


def field_pixels(x: np.ndarray, field: Field) -> np.ndarray:
    """RGBA: the input (mean over channels) in grey, the contributions over it in red (up) and
    blue (down) by their size, and the field's outline in orange."""
    img = np.asarray(x, np.float64).mean(axis=0)
    low, high = float(img.min()), float(img.max())
    grey = (img - low) / (high - low) if high > low else np.zeros_like(img)
    rgb = np.repeat((60 + 160 * grey)[..., None], 3, axis=2)
    c = field.contribution
    top = float(np.abs(c).max()) or 1.0
    alpha = (0.85 * np.abs(c) / top)[..., None]
    tint = np.where((c >= 0)[..., None], np.array((215.0, 40.0, 40.0)), np.array((40.0, 90.0, 215.0)))
    rgb = rgb * (1 - alpha) + tint * alpha
    rgba = np.full((*img.shape, 4), 255, np.uint8)
    rgba[..., :3] = np.rint(rgb).astype(np.uint8)
    big = enlarge(rgba)
    k = big.shape[0] // img.shape[0]
    top_r, bottom_r = (max(0, min(img.shape[0], e)) * k for e in field.rows)
    left, right = (max(0, min(img.shape[1], e)) * k for e in field.cols)
    if bottom_r > top_r and right > left:  # an outline two pixels wide, inside the field
        edge = FIELD_EDGE.astype(np.uint8)
        big[top_r:top_r + 2, left:right, :3] = edge
        big[bottom_r - 2:bottom_r, left:right, :3] = edge
        big[top_r:bottom_r, left:left + 2, :3] = edge
        big[top_r:bottom_r, right - 2:right, :3] = edge
    return big
