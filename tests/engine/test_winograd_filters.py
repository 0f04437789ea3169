"""The Winograd filter side (``kernels/winograd_filters``): U = (G ⊗ G) · g and dW = (Σ dU)ᵀ ·
(G ⊗ G) for F(4×4, 3×3) and F(4×4, 5×5) equal the matrices' float64 products, sum the chunks
in order, and give the same bits at one and two threads, across the blocks of filters the
cores take (more filters than one block, and a part block)."""
import numpy as np
import pytest

from layerloom.engine.kernels import conv_winograd5 as wg5, conv_winograd_plan as plan
from layerloom.engine.kernels import winograd_filters as wf

from .test_split_kernels import at_threads

SIDES = {3: plan.KRON[4], 5: wg5.KRON}


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filters_transform_as_the_matrices_at_any_thread_count(k, dtype):
    rng = np.random.default_rng(k)
    nf, c = 37, 2 * wf.BLOCK // 37 + 5  # 37 × 18 = 666 filters: two blocks and a part
    w = rng.standard_normal((nf, c, k, k)).astype(dtype)
    kron = SIDES[k]
    want = (kron @ w.astype(np.float64).reshape(nf * c, k * k).T).reshape(-1, nf, c)
    one, two = (at_threads(n, lambda: wf.transform_filters(w, kron)) for n in (1, 2))
    assert one.dtype == dtype and one.shape == (len(kron), nf, c)
    np.testing.assert_allclose(one, want, rtol=1e-5 if dtype == np.float32 else 1e-13,
                               atol=1e-5 if dtype == np.float32 else 1e-13)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("chunks", [1, 4])
def test_weight_gradient_sums_the_chunks_then_takes_the_matrices(k, chunks):
    rng = np.random.default_rng(10 + k)
    nf, c = 29, 23  # 667 filters
    kron = SIDES[k]
    du = rng.standard_normal((chunks, len(kron), nf, c)).astype(np.float32)
    summed = du[0].copy()
    for more in du[1:]:
        summed += more  # float32, in chunk order: the sums the kernel must make
    want = (summed.astype(np.float64).reshape(len(kron), nf * c).T @ kron).reshape(nf, c, k, k)
    one, two = (at_threads(n, lambda: wf.filters_grad(du, kron, k, k)) for n in (1, 2))
    assert one.dtype == np.float32 and one.shape == (nf, c, k, k)
    scale = np.abs(want).max()
    assert np.abs(one - want).max() < 1e-5 * scale
    assert np.array_equal(one, two)
