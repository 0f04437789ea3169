"""Direct 2-D convolution, plain and fused with ReLU + max-pool: the entry points the layers use.

``conv_forward`` / ``conv_backward`` / ``conv_input_grad`` take any stride, dilation and groups:
plain convolutions (no groups, no dilation) run the tuned kernels below, the others those of
``conv_grouped``; strided ones with a fair number of taps and filters per group go to the matrix
products of ``conv_gemm_strided``, and so do float32 stride-1 ones with 5×5 or larger kernels
over many filters. float32 ones with ≥ 16 channels in and out, 5×5-and-up at stride 1 on maps
of ≥ 256 outputs and stride-2 ones, run ``conv_kn2row`` instead (a product per tap on the input
or its phases in place, no im2col; ``prefers_kn2row`` has the measured rule; its 3×3 forwards
from ≤ 64 channels, and stride-2 ones of few channel pairs, run ``conv_phases_packed``, one
tile-kernel product), except float32 5×5 ones at stride 1 with ≥ 16 channels in and out on maps
of ≥ 4×4: those run Winograd's
F(4×4, 5×5) (``conv_winograd5``, 2.5-3.5× the product kernel's speed; ``conv_winograd5_batch``).
``conv_input_grad`` alone is also ConvTranspose2d's forward.

A direct loop beats im2col + BLAS for the few-channel convolutions of small image networks
(PLATFORM-NOTES: ~3× on LeNet's first layer). Stride-1 convolutions run the numba kernels of
``conv_flat`` (flat layout forward, chunked row layout backward), the forward of those with
many taps and filters as matrix products (``conv_gemm``), and their backward too when the rows
are short (``conv_gemm_back``: Conv1d); other strides take the
row-by-row path in ``conv_strided``. The numpy twins that define them live in
``conv_reference``; all three are re-exported here.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.kernels.conv_flat import (  # noqa: F401  the kernels, re-exported for tests and tools
    conv_relu_maxpool_forward, flat_offsets, forward_flat, relu_maxpool_batch, relu_maxpool_flat,
    taps_forward, taps_weight_grad)
from layerloom.engine.kernels.conv_flat_back import (  # noqa: F401  re-exported beside the forward
    backward_flat,
    conv_relu_maxpool_backward,
)
from layerloom.engine.kernels.conv_pointwise import (pointwise, pointwise_backward,
                                                     pointwise_forward)
from layerloom.engine.kernels.conv_reference import (  # noqa: F401  the numpy twins, beside the kernels
    conv2d_forward_reference,
    conv2d_input_grad_reference,
    conv2d_weight_grad_reference,
    conv_relu_maxpool_reference,
    grouped_forward_reference,
    grouped_input_grad_reference,
    grouped_weight_grad_reference,
)
from layerloom.engine.kernels.conv_gemm import gemm_forward_flat, gemm_forward_image, prefers_gemm
from layerloom.engine.kernels.conv_gemm_back import (gemm_backward_flat, gemm_backward_pooled,
                                                     prefers_gemm_backward, wide)
from layerloom.engine.kernels.conv_grouped import (flipped_transposed, grouped_forward_flat,
                                                   grouped_forward_rows, grouped_input_grad_rows,
                                                   grouped_weight_grad_flat,
                                                   grouped_weight_grad_rows)
from layerloom.engine.kernels.conv_gemm_strided import (SMALL_MAP, gemm_backward_strided,
                                                        gemm_forward_strided,
                                                        gemm_input_grad_strided,
                                                        prefers_gemm_strided)
from layerloom.engine.kernels.conv_kn2row import kn2row_backward, kn2row_forward, prefers_kn2row
from layerloom.engine.kernels.conv_phases_back import phases_packed_backward
from layerloom.engine.kernels.conv_phases_packed import (few_pairs, packed_phases,
                                                         phases_packed_forward)
from layerloom.engine.kernels.conv_rows import pad_sides
from layerloom.engine.kernels.conv_taps_grad import prefers_taps_grad, taps_grad
from layerloom.engine.kernels.conv_strided import backward_strided, forward_strided
from layerloom.engine.kernels.conv_polyphase import (phases_backward, phases_forward, polyphase,
                                                     polyphase_backward, polyphase_forward)
from layerloom.engine.kernels.conv_winograd import winograd_forward_flat
from layerloom.engine.kernels.conv_winograd5 import (filter_transform as filter_transform5,
                                                     weight_grad as weight_grad5, winograd5)
from layerloom.engine.kernels.conv_winograd_tile import winograd5_image, winograd5_image_grads
from layerloom.engine.kernels.conv_winograd_back import winograd_backward
from layerloom.engine.kernels.conv_winograd_batch import (whole_image, winograd_image,
                                                          winograd_image_grads)
from layerloom.engine.kernels.conv_winograd_plan import (filter_transform, tile_of, unpool,
                                                         weight_grad, winograd_tile)


def packed_direct(w_shape: tuple, dtype) -> bool:
    """float32 stride-1 convolutions the direct kernels run on the packed tile kernel
    (``conv_flat``: the taps' windows read in place) rather than as ``conv_gemm``'s im2col
    products. Measured against those at batch 64, one core (two alike), plain / fused with
    ReLU + 2×2 max-pool: LeNet's 6 → 16 5×5 on 14×14 0.53 → 0.45 / 0.59 → 0.54 ms, 3 → 16 5×5 on
    32×32 3.0 → 1.45 / 3.4 → 1.9, 16 → 32 7×7 on 16×16 8.0 → 4.7, 12 → 12 5×5 on 20×20 (fused)
    3.6 → 1.5; 1 × 1 kernels (no windows to share) lost on 32 × 32 maps (5.9 vs 6.8 ms)."""
    return np.dtype(dtype) == np.float32 and w_shape[2] * w_shape[3] > 1


def _direct_not_im2col(w_shape: tuple, dtype, out_hw) -> bool:
    """A float32 stride-1 forward with 5×5-or-larger kernels that ``conv_gemm_strided`` would
    take, run by the packed direct kernel instead: from fewer than 16 channels, or onto maps of
    more than ``SMALL_MAP`` outputs. Measured at batch 64, one core: 1.1-2.4× faster over 36
    shapes (1-12 → 16-64 channels, 5×5 and 7×7, 14×14 and 32×32 maps; 3 → 16 5×5 on 32×32 3.6 →
    1.8 ms, 12 → 32 7×7 on 14×14 10.0 → 6.4, 32 → 32 7×7 on 10×10 13.6 → 9.4) but 3 → 64 5×5 on
    14×14 (1.70 vs 1.55 ms); many channels on maps of ≤ 6×6 lost (64 → 64 5×5 on 4×4 3.8 vs
    3.2 ms, 128 → 128 on 6×6 29.8 vs 23.8), the flat rows being mostly gaps there."""
    return packed_direct(w_shape, dtype) and w_shape[2] * w_shape[3] >= 25 and \
        (w_shape[1] < 16 or out_hw[0] * out_hw[1] > SMALL_MAP)


def out_size(size: int, k: int, stride: int) -> int:
    return (size - k) // stride + 1


def _conv_out(xp: np.ndarray, w: np.ndarray) -> tuple[int, int]:
    """(OH, OW) of a stride-1 convolution of the padded batch ``xp``."""
    return out_size(xp.shape[2], w.shape[2], 1), out_size(xp.shape[3], w.shape[3], 1)


def conv2d_forward(xp: np.ndarray, w: np.ndarray, b: np.ndarray, sh: int, sw: int,
                   relu: bool = False) -> np.ndarray:
    """conv(xp) + b over an already zero-padded, C-contiguous batch (N, C, Hp, Wp); ``relu``:
    then max(·, 0) as ``np.maximum`` (in the kernel's own pass where it has one)."""
    if sh == 1 and sw == 1:
        oh, ow = _conv_out(xp, w)
        m = winograd_tile(w.shape, xp.dtype, oh, ow)
        if m:
            return winograd_image(xp, filter_transform(w, m), b, (0, 0), relu)
        if not packed_direct(w.shape, xp.dtype) and \
                (prefers_gemm(w.shape, len(xp)) or (len(xp) > 1 and wide(w.shape))):
            return gemm_forward_image(xp, w, b, relu)
        return forward_flat(xp, w, b, relu)
    else:
        y = forward_strided(xp, w, b, sh, sw)
    return np.maximum(y, 0, out=y) if relu else y


def conv2d_backward(xp, w, dy, sh: int, sw: int, need_dx: bool) -> tuple:
    """(d padded input or None, d weight, d bias) for ``conv2d_forward``."""
    dy = np.ascontiguousarray(dy)
    m = winograd_tile(w.shape, xp.dtype, *dy.shape[2:]) if sh == sw == 1 else 0
    if m:
        dxp, du, db = winograd_image_grads(xp, filter_transform(w, m), dy, need_dx)
        return (dxp if need_dx else None), weight_grad(du, m), db
    if sh == 1 and sw == 1 and prefers_gemm_backward(w.shape, dy.shape[2] * dy.shape[3], xp.dtype):
        dxp, dw, db = gemm_backward_flat(xp, w, dy, need_dx)
    elif sh == 1 and sw == 1:
        dxp, dw, db = backward_flat(xp, w, dy, need_dx)
    else:
        dxp, dw, db = backward_strided(xp, w, dy, sh, sw, need_dx)
    return (dxp if need_dx else None), dw, db


def pooled_filters(xp, w, pad: tuple = (0, 0)):
    """The filters' Winograd transform the next two run on for this input (None where another
    kernel runs): the fused step makes it once for both (F(4×4, 5×5)'s of 128 → 128: 2 ms)."""
    oh, ow = (s + 2 * p - k + 1 for s, p, k in zip(xp.shape[2:], pad, w.shape[2:]))
    m = winograd_tile(w.shape, xp.dtype, oh, ow)
    if m:
        return filter_transform(w, m)
    return filter_transform5(w) if winograd5(w.shape, xp.dtype, oh, ow) else None


def conv_relu_maxpool(xp, w, b, pkh: int, pkw: int, psh: int, psw: int, want_arg: bool,
                      pad: tuple = (0, 0), u=None):
    """The fused forward: parallel over the batch (a single sample on the calling thread), with
    the convolution as matrix products where that is faster (``conv_gemm``, ``conv_winograd``).
    ``pad``: xp is still to be zero-padded by (ph, pw); Winograd reads it so, the others pad;
    ``u``: ``pooled_filters``' transform, if made already."""
    (ph, pw), (hp, wp) = pad, (xp.shape[2] + 2 * pad[0], xp.shape[3] + 2 * pad[1])
    oh, ow = hp - w.shape[2] + 1, wp - w.shape[3] + 1
    u = pooled_filters(xp, w, pad) if u is None else u
    m = winograd_tile(w.shape, xp.dtype, oh, ow)
    if m:
        if whole_image(m, xp.shape[1], len(w), len(xp), oh, ow):  # pooled at pitch OW
            y, pitch = winograd_image(xp, u, b, pad).reshape(len(xp), len(w), oh * ow), ow
        else:
            y, pitch = winograd_forward_flat(xp, u, b, wp, ph, pw), wp
        return relu_maxpool_batch(y, pitch, pkh, pkw, psh, psw, out_size(oh, pkh, psh),
                                  out_size(ow, pkw, psw))
    if winograd5(w.shape, xp.dtype, oh, ow):  # pooled at pitch OW
        y = winograd5_image(xp, u, b, pad=pad).reshape(len(xp), len(w), oh * ow)
        return relu_maxpool_batch(y, ow, pkh, pkw, psh, psw, out_size(oh, pkh, psh),
                                  out_size(ow, pkw, psw))
    xp = pad_sides(xp, ph, ph, pw, pw)
    if _kn2row(w.shape, (1, 1), (1, 1), 1, xp.dtype, (oh, ow)):  # pooled at pitch OW
        y = kn2row_forward(xp, w, b).reshape(len(xp), len(w), oh * ow)
        return relu_maxpool_batch(y, ow, pkh, pkw, psh, psw, out_size(oh, pkh, psh),
                                  out_size(ow, pkw, psw))
    if not packed_direct(w.shape, xp.dtype) and prefers_gemm(w.shape, len(xp)):
        return relu_maxpool_batch(gemm_forward_flat(xp, w, b), xp.shape[3], pkh, pkw, psh, psw,
                                  out_size(oh, pkh, psh), out_size(ow, pkw, psw))
    return conv_relu_maxpool_forward(xp, w, b, pkh, pkw, psh, psw, want_arg)


def conv_relu_maxpool_grads(xp, w, dp, arg, need_dx: bool, pad: tuple = (0, 0), u=None):
    """(d input or empty, d weight, d bias) of ``conv_relu_maxpool`` from the pooled gradient:
    as matrix products where the plain backward would take them too. With a ``pad`` the input
    gradient is the unpadded xp's (Winograd's), else the padded one's; ``u`` as the forward's."""
    (ph, pw), (hp, wp) = pad, (xp.shape[2] + 2 * pad[0], xp.shape[3] + 2 * pad[1])
    oh, ow = hp - w.shape[2] + 1, wp - w.shape[3] + 1
    u = pooled_filters(xp, w, pad) if u is None else u
    m = winograd_tile(w.shape, xp.dtype, oh, ow)
    if m:
        if whole_image(m, xp.shape[1], len(w), len(xp), oh, ow):  # pooled at pitch OW
            dxp, du, db = winograd_image_grads(xp, u, unpool(dp, arg, oh, ow, ow), need_dx, pad)
        else:
            dxp, du, db = winograd_backward(xp, u, np.ascontiguousarray(dp), need_dx, ph, pw,
                                            np.ascontiguousarray(arg), wp)
        return dxp, weight_grad(du, m), db
    if winograd5(w.shape, xp.dtype, oh, ow):
        dxp, du, db = winograd5_image_grads(xp, u, unpool(dp, arg, oh, ow, ow), need_dx, pad)
        return dxp, weight_grad5(du), db
    if pad != (0, 0):
        raise ValueError(f"a padding {pad} is read in place only by Winograd; pad the input")
    if _kn2row(w.shape, (1, 1), (1, 1), 1, xp.dtype, (oh, ow), backward=True):
        return kn2row_backward(xp, w, unpool(dp, arg, oh, ow, ow), need_dx)
    if prefers_gemm_backward(w.shape, oh * ow):
        return gemm_backward_pooled(xp, w, dp, arg, oh, ow, need_dx)
    return conv_relu_maxpool_backward(xp, w, dp, arg, need_dx)


def winograd_pad_free(x_shape: tuple, w_shape: tuple, dtype, pad: tuple, stride: tuple,
                      dilation: tuple = (1, 1), groups: int = 1) -> int:
    """m when ``conv_forward`` of x zero-padded by ``pad`` would run Winograd, 0 otherwise: the
    layers then hand x over unpadded (``pad_free_route``), as Winograd reads the padding in
    place; the padded copy cost ~12 % of a ResNet stage's inference."""
    out_hw = (x_shape[2] + 2 * pad[0] - w_shape[2] + 1, x_shape[3] + 2 * pad[1] - w_shape[3] + 1)
    if tuple(stride) != (1, 1) or not _plain(dilation, groups) or \
            _strided_gemm(w_shape, stride, groups, dtype, out_hw):
        return 0
    return winograd_tile(w_shape, dtype, *out_hw)


def pad_free_route(x_shape: tuple, w_shape: tuple, dtype, pad: tuple, stride: tuple,
                   dilation: tuple = (1, 1), groups: int = 1) -> str:
    """"winograd", "phases", "winograd5" or "packed" when ``conv_forward`` of x zero-padded by
    ``pad`` would run Winograd, the phases' Winograd (``conv_polyphase``), F(4×4, 5×5) or the
    stride-2 phases' product (``conv_phases_packed``), "" otherwise: the layers then hand x
    over unpadded (``conv_forward_unpadded``: Winograd reads the padding in place, the phases
    are padded as made) and the backward takes the forward's transform (or, "packed", the
    phases' products again: ``conv_phases_back``)."""
    if winograd_pad_free(x_shape, w_shape, dtype, pad, stride, dilation, groups):
        return "winograd"
    out_hw = [out_size(s + 2 * p, k, st) for s, p, k, st in
              zip(x_shape[2:], pad, w_shape[2:], stride)]
    if _winograd5(w_shape, stride, dilation, groups, dtype, out_hw):
        return "winograd5"
    if _packed_phases(w_shape, stride, dilation, groups, dtype, out_hw):
        return "packed"
    return "phases" if polyphase(w_shape, dtype, stride, dilation, groups, out_hw,
                                   x_shape[0]) else ""


def conv_forward_unpadded(x, w, b, pad: tuple, route: str, relu: bool = False) -> tuple:
    """(``conv_forward`` of x zero-padded by ``pad`` [then max(·, 0) when ``relu``, in the
    kernel's own pass, as ``np.maximum`` bit for bit], what ``conv_backward_unpadded`` takes)
    for C-contiguous x on ``pad_free_route``'s route. What it keeps holds the filters'
    transform, so the backward does not make it again."""
    if route == "phases":
        return phases_forward(x, w, b, pad, relu)
    if route == "packed":
        return phases_packed_forward(x, w, b, relu, pad), (x, w)
    if route == "winograd5":
        u = filter_transform5(w)
        return winograd5_image(x, u, b, relu, pad), (x, u)
    u = filter_transform(w, winograd_pad_free(x.shape, w.shape, x.dtype, pad, (1, 1)))
    return winograd_image(x, u, b, pad, relu), (x, u)


def conv_backward_unpadded(kept: tuple, w_shape: tuple, dy, pad: tuple, route: str,
                           x_shape: tuple, need_dx: bool) -> tuple:
    """(d x (unpadded) or None, d weight, d bias) of ``conv_forward_unpadded``."""
    if route == "phases":
        return phases_backward(kept, w_shape, dy, x_shape[2:], need_dx)
    if route == "packed" and prefers_taps_grad(w_shape, dy.dtype, (2, 2), (1, 1), 1, need_dx):
        return (None, *taps_grad(pad_sides(kept[0], pad[0], pad[0], pad[1], pad[1]), dy,
                                 *w_shape[2:], (2, 2)))  # a stem's: x padded, it is small
    if route == "packed":  # the phases' products again, no padded copy
        return phases_packed_backward(*kept, dy, pad, need_dx)
    if route == "winograd5":
        x, u = kept
        dx, du, db = winograd5_image_grads(x, u, dy, need_dx, pad)
        return (dx if need_dx else None), weight_grad5(du), db
    x, u = kept
    dx, du, db = winograd_image_grads(x, u, dy, need_dx, pad)
    return (dx if need_dx else None), weight_grad(du, tile_of(u)), db


# ------------------------------------------------------------- any stride, dilation and groups
def _plain(dilation: tuple, groups: int) -> bool:
    return groups == 1 and tuple(dilation) == (1, 1)


def _strided_gemm(w_shape: tuple, stride: tuple, groups: int, dtype, out_hw: tuple) -> bool:
    return prefers_gemm_strided(w_shape, groups, stride, dtype, out_hw[0] * out_hw[1])


def _kn2row(w_shape: tuple, stride: tuple, dilation: tuple, groups: int, dtype, out_hw: tuple,
            backward: bool = False) -> bool:
    return prefers_kn2row(w_shape, groups, stride, dilation, dtype, *out_hw, backward)


def _packed_phases(w_shape: tuple, stride: tuple, dilation: tuple, groups: int, dtype,
                   out_hw) -> bool:
    """kn2row's 3×3 stride-2 forwards that ``conv_phases_packed`` runs instead, and its
    stride-2 ones of few channel pairs (``few_pairs``)."""
    return (_kn2row(w_shape, stride, dilation, groups, dtype, out_hw)
            and packed_phases(w_shape, dtype, stride, dilation, groups)) or \
        few_pairs(w_shape, dtype, stride, dilation, groups, out_hw)


def _winograd5(w_shape: tuple, stride: tuple, dilation: tuple, groups: int, dtype,
               out_hw) -> bool:
    return tuple(stride) == (1, 1) and _plain(dilation, groups) and \
        winograd5(w_shape, dtype, *out_hw)


def conv_forward(xp, w, b, stride: tuple, dilation: tuple = (1, 1), groups: int = 1,
                 relu: bool = False):
    """conv(xp) + b over an already padded, C-contiguous batch; ``w`` is (F, C/groups, KH, KW);
    ``relu``: then max(·, 0) as ``np.maximum`` (``conv2d_forward``)."""
    w = np.ascontiguousarray(w)
    out_hw = [out_size(p, d * (k - 1) + 1, s)
              for p, k, s, d in zip(xp.shape[2:], w.shape[2:], stride, dilation)]
    if pointwise(w.shape, groups, out_hw, dtype=np.result_type(xp, w), stride=stride):
        return pointwise_forward(xp, w, b, stride, relu)
    if _winograd5(w.shape, stride, dilation, groups, xp.dtype, out_hw):
        return winograd5_image(xp, filter_transform5(w), b, relu)
    if _packed_phases(w.shape, stride, dilation, groups, xp.dtype, out_hw):
        return phases_packed_forward(xp, w, b, relu)
    if polyphase(w.shape, xp.dtype, stride, dilation, groups, out_hw, len(xp)):
        return polyphase_forward(xp, w, b, relu)
    if _kn2row(w.shape, stride, dilation, groups, xp.dtype, out_hw):
        return kn2row_forward(xp, w, b, stride, relu)
    gemm = _strided_gemm(w.shape, stride, groups, xp.dtype, out_hw) and not (
        tuple(stride) == (1, 1) and _plain(dilation, groups)
        and _direct_not_im2col(w.shape, xp.dtype, out_hw))
    if _plain(dilation, groups) and not gemm:
        return conv2d_forward(xp, w, b, *stride, relu)
    if gemm:
        return gemm_forward_strided(xp, w, b, *stride, *dilation, groups, relu)
    if tuple(stride) == (1, 1):
        y = grouped_forward_flat(xp, w, b, *dilation, groups)
    else:
        y = grouped_forward_rows(xp, w, b, *stride, *dilation, groups)
    return np.maximum(y, 0, out=y) if relu else y


def conv_input_grad(dy, w, hp: int, wp: int, stride: tuple, dilation: tuple = (1, 1),
                    groups: int = 1) -> np.ndarray:
    """The gradient of the (Hp, Wp) padded input of ``conv_forward``, from its output gradient.
    Rows and columns past the last window (``hp`` may exceed what the windows cover: a
    ConvTranspose2d's output_padding) get zeros."""
    dy = np.ascontiguousarray(dy)
    nf, cpg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    if _strided_gemm(w.shape, stride, groups, dy.dtype, dy.shape[2:]):
        return gemm_input_grad_strided(dy, np.ascontiguousarray(w), hp, wp, sh, sw, dh, dw,
                                       groups)
    if (sh, sw) != (1, 1):
        return grouped_input_grad_rows(dy, np.ascontiguousarray(w), hp, wp, sh, sw, dh, dw, groups)
    ph, pw = dh * (kh - 1), dw * (kw - 1)  # a full correlation with the flipped filters
    eh, ew = hp - dy.shape[2] - ph, wp - dy.shape[3] - pw
    dyp = pad_sides(dy, ph, ph + eh, pw, pw + ew)
    wt = flipped_transposed(w, groups)
    return conv_forward(dyp, wt, np.zeros(len(wt), dy.dtype), (1, 1), dilation, groups)


def conv_backward(xp, w, dy, stride: tuple, dilation: tuple = (1, 1), groups: int = 1,
                  need_dx: bool = True, pad: tuple = (0, 0), need_db: bool = True) -> tuple:
    """(d input without ``pad`` on each side, or None; d weight; d bias) for ``conv_forward`` of
    the padded ``xp``: a view into the padded gradient, or (im2col's strided route) cropped.
    ``need_db=False`` (no bias) lets a route skip the bias gradient: zeros then."""
    w = np.ascontiguousarray(w)
    (ph, pw), (hp, wp) = pad, xp.shape[2:]

    def cut(dxp, dw, db) -> tuple:
        return (dxp[:, :, ph:hp - ph, pw:wp - pw] if need_dx else None), dw, db

    if pointwise(w.shape, groups, dy.shape[2:], backward=True):
        return cut(*pointwise_backward(xp, w, dy, stride, need_dx, need_db))
    if prefers_taps_grad(w.shape, xp.dtype, stride, dilation, groups, need_dx):  # a stem's
        return (None, *taps_grad(xp, dy, w.shape[2], w.shape[3], stride))
    if _winograd5(w.shape, stride, dilation, groups, xp.dtype, dy.shape[2:]):
        dxp, du, db = winograd5_image_grads(xp, filter_transform5(w), dy, need_dx)
        return cut(dxp, weight_grad5(du), db)
    if polyphase(w.shape, xp.dtype, stride, dilation, groups, dy.shape[2:], len(xp)):
        return cut(*polyphase_backward(xp, w, dy, need_dx))
    if _kn2row(w.shape, stride, dilation, groups, xp.dtype, dy.shape[2:], backward=True):
        return cut(*kn2row_backward(xp, w, dy, need_dx, stride))
    if _strided_gemm(w.shape, stride, groups, xp.dtype, dy.shape[2:]):
        dx, dw, db = gemm_backward_strided(xp, w, np.ascontiguousarray(dy), *stride,
                                           *dilation, groups, need_dx, (ph, pw))
        return (dx if need_dx else None), dw, db
    if _plain(dilation, groups):
        return cut(*conv2d_backward(xp, w, dy, *stride, need_dx))
    dy = np.ascontiguousarray(dy)
    kh, kw = w.shape[2], w.shape[3]
    if tuple(stride) == (1, 1):
        dw, db = grouped_weight_grad_flat(xp, dy, kh, kw, *dilation, groups)
    else:
        dw, db = grouped_weight_grad_rows(xp, dy, kh, kw, *stride, *dilation, groups)
    dxp = conv_input_grad(dy, w, xp.shape[2], xp.shape[3], stride, dilation, groups) \
        if need_dx else None
    return cut(dxp, dw, db)
