"""A stride-2 convolution's input phases (``kernels.phase_planes``): split as numpy's slices
split the zero-padded copy, in both layouts the kernels use (channel-major for the packed
products, phase-major for the phases' Winograd), the margins zeroed when asked and left alone
when not; merged back as the split's inverse, from a buffer that starts at any phase row."""
import numpy as np
import pytest

from layerloom.engine.kernels import phase_planes as pl

SIDES = [(6, 6), (7, 9), (5, 4), (3, 3), (1, 2), (8, 8), (4, 16)]  # 8, 16: widths compiled in
PADS = [(0, 0), (1, 1), (2, 1), (1, 2), (3, 0)]


def every_layout(test):
    """``test`` over the sides, the paddings and both layouts."""
    for name, values in (("h,w", SIDES), ("top,left", PADS), ("channel_major", [True, False])):
        test = pytest.mark.parametrize(name, values)(test)
    return test


def _sample(c, h, w, top, left, seed):
    """(a sample (C, H, W), Hq, Wq)."""
    x = np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)
    return x, (h + 2 * top + 1) // 2, (w + 2 * left + 1) // 2


def _layout(c, hq, wq, channel_major):
    """(cs, ps, and the view of a flat buffer as (C, 2, 2, Hq, Wq))."""
    plane = hq * wq
    cs, ps = (4 * plane, plane) if channel_major else (plane, c * plane)
    return cs, ps, lambda flat: np.lib.stride_tricks.as_strided(
        flat, (c, 2, 2, hq, wq), tuple(4 * v for v in (cs, 2 * ps, ps, wq, 1)))


@every_layout
def test_the_split_is_numpy_slices_of_the_padded_copy(h, w, top, left, channel_major):
    c = 3
    x, hq, wq = _sample(c, h, w, top, left, 1)
    xp = np.pad(x, ((0, 0), (top, top), (left, left)))
    cs, ps, planes = _layout(c, hq, wq, channel_major)
    kept = np.full(c * 4 * hq * wq, np.nan, np.float32)  # margins left alone: stay NaN
    zeroed = kept.copy()
    pl.split_phases(x, kept, cs, ps, hq, wq, top, left, False)
    pl.split_phases(x, zeroed, cs, ps, hq, wq, top, left, True)
    for a in (0, 1):
        for b in (0, 1):
            want = np.zeros((c, hq, wq), np.float32)
            cut = xp[:, a::2, b::2]
            want[:, :cut.shape[1], :cut.shape[2]] = cut
            assert np.array_equal(planes(zeroed)[:, a, b], want)
            u0, u1 = pl.covered(h, top, a)
            v0, v1 = pl.covered(w, left, b)
            inside = planes(kept)[:, a, b, u0:u1, v0:v1]
            assert np.array_equal(inside, want[:, u0:u1, v0:v1])
            assert np.isnan(planes(kept)[:, a, b]).sum() == c * (hq * wq - inside[0].size)


@every_layout
def test_the_merge_inverts_the_split_from_its_first_rows(h, w, top, left, channel_major):
    c = 2
    x, hq, wq = _sample(c, h, w, top, left, 2)
    cs, ps, _ = _layout(c, hq, wq, channel_major)
    flat = np.zeros(c * 4 * hq * wq, np.float32)
    pl.split_phases(x, flat, cs, ps, hq, wq, top, left, True)
    back = np.full_like(x, np.nan)
    pl.merge_phases(flat, back, cs, ps, 0, 0, wq, top, left)
    assert np.array_equal(back, x)
    r0, r1 = pl.covered(h, top, 0)[0], pl.covered(h, top, 1)[0]
    shifted = np.zeros(flat.size + 4 * wq, np.float32)  # each phase's buffer from its first row
    for ch in range(c):
        for p in range(4):
            at, r = ch * cs + p * ps, (r1 if p // 2 else r0)
            shifted[at:at + (hq - r) * wq] = flat[at + r * wq:at + hq * wq]
    again = np.full_like(x, np.nan)
    pl.merge_phases(shifted, again, cs, ps, r0, r1, wq, top, left)
    assert np.array_equal(again, x)


@pytest.mark.parametrize("size,pad", [(1, 0), (1, 1), (4, 2), (5, 3), (6, 0)])
def test_covered_rows_are_those_an_input_row_reaches(size, pad):
    for a in (0, 1):
        rows = sorted({(y + pad) // 2 for y in range(size) if (y + pad) % 2 == a})
        first, past = pl.covered(size, pad, a)
        assert list(range(first, past)) == rows
