"""Large tensors in the Explain tab: heat maps laid out as matrices, rows or grids of maps,
coloured by sign, shrunk by block means, and histograms over every value."""
import numpy as np
import pytest

from layerloom.engine.explain import stats
from layerloom.engine.tensor_pictures import (MAX_SIDE, MAX_TILES, colour, is_small, picture,
                                              shrink, tiles)


def test_a_matrix_is_itself_a_vector_wraps_and_maps_tile_with_gaps():
    m = np.arange(12.0).reshape(3, 4)
    grid, note = tiles(m)
    assert np.array_equal(grid, m) and note == "3 rows × 4 columns"
    grid, note = tiles(np.arange(300.0))
    assert grid.shape == (17, 18) and note == "300 values in rows of 18"
    assert np.array_equal(grid.ravel()[:300], np.arange(300.0)) and np.isnan(grid.ravel()[300:]).all()
    maps = np.arange(5 * 2 * 3.0).reshape(5, 2, 3)
    grid, note = tiles(maps)
    assert note == "5 maps of 2×3" and grid.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert np.array_equal(grid[3:5, 4:7], maps[4]) and np.isnan(grid[2]).all()
    _, note = tiles(np.zeros((100, 3, 4, 4)))
    assert note == f"the first {MAX_TILES} of 300 maps of 4×4"


def test_shrink_averages_blocks_and_colour_follows_the_sign():
    grid, k = shrink(np.ones((2 * MAX_SIDE + 1, 4)))
    assert k == 3 and grid.shape == (171, 2)
    assert np.allclose(grid, 1.0)
    px = colour(np.array([[-2.0, 0.0, 2.0, np.nan]]))
    blue, white, red, gap = px[0]
    assert blue[2] > blue[0] and red[0] > red[2] and tuple(white[:3]) == (247, 247, 247)
    assert gap[3] == 0 and blue[3] == red[3] == 255


def test_a_picture_holds_the_whole_tensors_numbers_and_the_first_samples_map():
    a = np.random.default_rng(0).standard_normal((8, 6, 12, 12))
    pic = picture("y", a, batched=True)
    assert pic.stats == stats(a) and pic.counts.sum() == a.size
    assert pic.note == "first sample: 6 maps of 12×12" and pic.heat.dtype == np.uint8
    assert pic.heat.shape[2] == 4 and max(pic.heat.shape[:2]) <= 256
    assert pic.edges[0] == pytest.approx(a.min()) and pic.edges[-1] == pytest.approx(a.max())
    small = picture("b", np.arange(6.0))
    assert small.heat is None and small.histogram is None and is_small(np.zeros((8, 3)), True)
    assert is_small(np.zeros((8, 3))) and not is_small(np.zeros((8, 33)), batched=True)
