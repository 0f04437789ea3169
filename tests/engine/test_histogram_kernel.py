"""The training loop's histograms (``kernels.histogram``) are numpy's, count for count."""
import numpy as np
import pytest

from layerloom.engine.kernels.histogram import histogram


def _cases():
    rng = np.random.default_rng(7)
    yield "normal", rng.standard_normal(48_000)
    yield "tiny range", 1 + rng.standard_normal(5_000) * 1e-6
    yield "huge values", rng.standard_normal(3_000) * 1e30
    yield "constant", np.full(100, 0.25)
    yield "one value", np.array([-3.0])
    yield "on the edges", np.linspace(-1, 1, 31).repeat(3)  # every value an edge of 30 bins
    yield "integers as floats", rng.integers(-5, 5, 4_000).astype(float)
    yield "signed zeros", np.array([0.0, -0.0, 1.0, -1.0, -0.0])
    yield "2-D, strided", rng.standard_normal((60, 80))[:, ::3]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bins", [30, 7, 1])
@pytest.mark.parametrize("name,values", list(_cases()), ids=[n for n, _ in _cases()])
def test_counts_and_edges_equal_numpys(name, values, dtype, bins):
    a = values.astype(dtype)
    counts, edges = histogram(a, bins)
    want_counts, want_edges = np.histogram(a, bins=bins)
    assert counts.dtype == want_counts.dtype and edges.dtype == want_edges.dtype
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_array_equal(edges, want_edges)


def test_values_a_rounding_away_from_an_edge_land_where_numpy_puts_them():
    """float32 values one ulp either side of every edge: the index's corrections decide."""
    edges = np.linspace(np.float32(-0.37), np.float32(2.9), 31, dtype=np.float32)
    near = np.concatenate([np.nextafter(edges, np.float32(-np.inf)), edges,
                           np.nextafter(edges, np.float32(np.inf))])
    a = near[(near >= edges[0]) & (near <= edges[-1])]
    np.testing.assert_array_equal(histogram(a)[0], np.histogram(a, bins=30)[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_raises_numpys_error(bad):
    a = np.array([0.0, 1.0, bad], np.float32)
    with pytest.raises(ValueError, match="range of .* is not finite"):
        histogram(a)


def test_empty_and_integer_arrays_are_numpys():
    for a in (np.zeros(0, np.float32), np.arange(12, dtype=np.int32)):
        got, want = histogram(a), np.histogram(a, bins=30)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
