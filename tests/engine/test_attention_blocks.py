"""The attention kernels' causal key/query blocks (engine.kernels.attention.BLOCK) and their
batch split over cores are a specification over shape families: for every block size, batch
split, L vs S, padded keys, a gradient into the weights, float64 and float32, the kernels equal
their numpy twins (forward, weights and every gradient), and the skipped products change
nothing (the same result as whole products)."""
import numpy as np
import pytest

from layerloom.engine.kernels import attention as att
from layerloom.engine.threads import engine_threads, set_threads, get_threads

TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


@pytest.fixture(params=[1, 2, 3, 64], ids=lambda b: f"block{b}")
def block(request, monkeypatch):
    monkeypatch.setattr(att, "BLOCK", request.param)
    return request.param


@pytest.fixture(params=[1, 2], ids=lambda c: f"cores{c}")
def cores(request):
    before = get_threads()
    set_threads(request.param)
    with engine_threads(False):
        yield request.param
    set_threads(before)


def _case(dtype, n, steps, keys, heads, dh, lengths, seed=0):
    rng = np.random.default_rng(seed)
    q, do = (rng.standard_normal((n, steps, heads * dh)).astype(dtype) for _ in range(2))
    k, v = (3 * rng.standard_normal((n, keys, heads * dh))).astype(dtype), \
        rng.standard_normal((n, keys, heads * dh)).astype(dtype)
    dused = rng.standard_normal((n, steps, keys)).astype(dtype)
    pad = None if lengths is None else np.arange(keys)[None] >= np.array(lengths)[:, None]
    return q, k, v, do, dused, pad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n,steps,keys,heads,dh,lengths", [
    (3, 7, 7, 2, 3, None), (2, 9, 4, 1, 4, None), (2, 4, 9, 3, 2, None),
    (3, 8, 8, 2, 2, (8, 3, 1)), (1, 1, 1, 1, 5, None), (4, 5, 6, 2, 3, (6, 6, 2, 5))])
@pytest.mark.parametrize("weights_grad", [False, True])
def test_blocked_kernels_equal_their_twins(block, cores, dtype, causal, n, steps, keys, heads,
                                           dh, lengths, weights_grad):
    if lengths is not None:
        lengths = lengths[:n]
    q, k, v, do, dused, pad = _case(dtype, n, steps, keys, heads, dh, lengths)
    scale = 1 / np.sqrt(dh)
    o, weights_t = att.mha_forward(q, k, v, heads, dtype(scale), causal,
                                   att.no_padding(n, keys) if pad is None else pad)
    want_o, want_w = att.mha_forward_reference(q, k, v, heads, scale, causal, pad)
    np.testing.assert_allclose(weights_t.transpose(0, 1, 3, 2), want_w, **TOL[dtype])
    np.testing.assert_allclose(o, want_o, **TOL[dtype])
    dused_t = (np.ascontiguousarray(dused.transpose(0, 2, 1)) if weights_grad
               else np.empty((0, 0, 0), dtype))
    want = att.mha_backward_reference(q, k, v, want_w, do, heads, scale,
                                      dused=dused if weights_grad else None)
    whole = None
    for skip in (causal, False):  # the blocked products, then whole ones: the same result
        grads = tuple(np.full_like(z, np.nan) for z in (q, k, v))  # every entry is written
        att.mha_backward(q, k, v, weights_t, do, heads, dtype(scale), dused_t, *grads,
                         causal=skip)
        for got, w in zip(grads, want):
            tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4,
                                                              atol=1e-6 * np.abs(w).max())
            np.testing.assert_allclose(got, w, **tol)
        if whole is None:
            whole = grads
        else:
            for a, b in zip(whole, grads):
                np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_packed_self_attention_blocked_backward_equals_its_twin(block, cores, dtype):
    rng = np.random.default_rng(5)
    n, steps, heads, dh = 3, 10, 2, 4
    qkv = rng.standard_normal((n, steps, 3 * heads * dh)).astype(dtype)
    do = rng.standard_normal((n, steps, heads * dh)).astype(dtype)
    scale = 1 / np.sqrt(dh)
    o, weights_t = att.attention_forward(qkv, heads, dtype(scale), True)
    want_o, want_w = att.attention_forward_reference(qkv, heads, scale, True)
    np.testing.assert_allclose(o, want_o, **TOL[dtype])
    got = att.attention_backward(qkv, weights_t, do, heads, dtype(scale), True)
    want = att.attention_backward_reference(qkv, want_w, do, heads, scale)
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(got, want, **tol)
