"""The recurrent-cell, attention and LayerNorm kernels equal the numpy twins that define them."""
import numpy as np
import pytest
from numba.core import types

from layerloom.engine.kernels import attention as att
from layerloom.engine.kernels import norm
from layerloom.engine.kernels import recurrent as rec

TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
DTYPES = [np.float64, np.float32]


def _rand(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_step_backward_matches_reference(dtype):
    rng = np.random.default_rng(0)
    dy, drec, h = (_rand(rng, (3, 5), dtype) for _ in range(3))
    dpre = np.empty_like(h)
    rec.rnn_step_backward(dy, drec, h, dpre, dtype(1))
    np.testing.assert_allclose(dpre, rec.rnn_step_backward_reference(dy, drec, h), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_step_matches_reference(dtype):
    rng = np.random.default_rng(1)
    n, hsz = 4, 6
    act = np.tanh(_rand(rng, (n, 4 * hsz), dtype, 3.0))
    c_prev, dy, drec, dc0 = (_rand(rng, (n, hsz), dtype) for _ in range(4))
    gates, c = act.copy(), np.empty_like(c_prev)
    rec.lstm_gates(gates, c_prev, c, dtype(1))
    want_gates, want_c = rec.lstm_gates_reference(act, c_prev)
    np.testing.assert_allclose(gates, want_gates, **TOL[dtype])
    np.testing.assert_allclose(c, want_c, **TOL[dtype])
    tc = np.tanh(c)
    dpre, dc = np.empty_like(act), dc0.copy()
    rec.lstm_step_backward(dy, drec, dc, gates, c_prev, tc, dpre, dtype(1))
    want_dpre, want_dc = rec.lstm_step_backward_reference(dy, drec, dc0, gates, c_prev, tc)
    np.testing.assert_allclose(dpre, want_dpre, **TOL[dtype])
    np.testing.assert_allclose(dc, want_dc, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_step_matches_reference(dtype):
    rng = np.random.default_rng(2)
    n, hsz = 3, 5
    xg, hg = _rand(rng, (n, 3 * hsz), dtype, 2.0), _rand(rng, (n, 3 * hsz), dtype)
    act = np.tanh(_rand(rng, (n, 3 * hsz), dtype, 2.0))
    h_prev, dy, drec = (_rand(rng, (n, hsz), dtype) for _ in range(3))
    gates, hn = act.copy(), np.empty_like(h_prev)
    rec.gru_gates(gates, xg, hg, hn, dtype(1))
    want_gates, want_hn = rec.gru_gates_reference(act, xg, hg)
    np.testing.assert_allclose(gates, want_gates, **TOL[dtype])
    np.testing.assert_array_equal(hn, want_hn)
    gates[:, 2 * hsz:] = np.tanh(gates[:, 2 * hsz:])
    h = np.empty_like(h_prev)
    rec.gru_output(gates, h_prev, h, dtype(1))
    np.testing.assert_allclose(h, rec.gru_output_reference(gates, h_prev), **TOL[dtype])
    dxg, dhg, direct = np.empty_like(xg), np.empty_like(xg), np.empty_like(h_prev)
    rec.gru_step_backward(dy, drec, gates, hn, h_prev, dxg, dhg, direct, dtype(1))
    for got, want in zip((dxg, dhg, direct),
                         rec.gru_step_backward_reference(dy, drec, gates, hn, h_prev)):
        np.testing.assert_allclose(got, want, **TOL[dtype])


def test_float32_kernels_do_no_float64_arithmetic():
    """A float64 literal in float32 code promotes every operation and stops vectorisation."""
    from numba import njit

    a2, f32 = types.Array(types.float32, 2, "C"), types.float32
    kernels = {rec.lstm_gates: (a2, a2, a2, f32),
               rec.lstm_step_backward: (a2,) * 7 + (f32,),
               rec.gru_gates: (a2,) * 4 + (f32,),
               rec.gru_output: (a2,) * 3 + (f32,),
               rec.gru_step_backward: (a2,) * 8 + (f32,),
               rec.rnn_step_backward: (a2,) * 4 + (f32,)}
    for kernel, sig in kernels.items():
        fresh = njit(kernel.py_func)  # uncached: the cached one may hold no IR to inspect
        fresh.compile(sig)
        ir = fresh.inspect_llvm(sig)
        assert "fmul float" in ir, kernel.__name__
        assert not any(f"{op} double" in ir for op in ("fmul", "fadd", "fsub")), kernel.__name__


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,steps,heads,dh", [(3, 5, 2, 3), (2, 8, 3, 4), (1, 1, 1, 5)])
def test_attention_kernels_match_reference(dtype, causal, n, steps, heads, dh):
    rng = np.random.default_rng(3)
    d = heads * dh
    qkv, do = _rand(rng, (n, steps, 3 * d), dtype, 3.0), _rand(rng, (n, steps, d), dtype)
    scale = 1 / np.sqrt(dh)
    o, weights_t = att.attention_forward(qkv, heads, dtype(scale), causal)
    want_o, want_w = att.attention_forward_reference(qkv, heads, scale, causal)
    weights = weights_t.transpose(0, 1, 3, 2)
    np.testing.assert_allclose(weights, want_w, **TOL[dtype])
    np.testing.assert_allclose(o, want_o, **TOL[dtype])
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    dqkv = att.attention_backward(qkv, weights_t, do, heads, dtype(scale))
    want = att.attention_backward_reference(qkv, want_w, do, heads, scale)
    # float32: sums of products cancel, so compare against the gradient's own magnitude
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(dqkv, want, **tol)
    if causal and steps > 1:
        assert not weights[:, :, att.causal_mask_reference(steps, steps)].any()


def test_attention_backward_reference_is_the_jacobian_of_the_forward():
    rng = np.random.default_rng(4)
    qkv, do = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 4, 2))
    mask = (rng.random((2, 2, 4, 4)) > 0.3) / 0.7
    _, w = att.attention_forward_reference(qkv, 2, 0.7, True, mask)
    dqkv = att.attention_backward_reference(qkv, w, do, 2, 0.7, mask)
    eps, idx = 1e-6, (1, 2, 3)
    hi, lo = qkv.copy(), qkv.copy()
    hi[idx] += eps
    lo[idx] -= eps
    up = att.attention_forward_reference(hi, 2, 0.7, True, mask)[0]
    down = att.attention_forward_reference(lo, 2, 0.7, True, mask)[0]
    numeric = ((up - down) * do).sum() / (2 * eps)
    assert np.isclose(dqkv[idx], numeric, rtol=1e-6)


def test_float32_attention_softmax_keeps_nan_and_exact_zeros():
    qkv = np.zeros((1, 3, 6), np.float32)
    _, weights_t = att.attention_forward(qkv, 1, np.float32(1), True)
    weights = weights_t[0, 0].T
    np.testing.assert_allclose(weights, [[1, 0, 0], [.5, .5, 0], [1 / 3] * 3], rtol=1e-6)
    assert weights[0, 1] == weights[0, 2] == weights[1, 2] == 0
    qkv[0, 1, 0] = np.nan
    o, _ = att.attention_forward(qkv, 1, np.float32(1), False)
    assert np.isnan(o[0, 1]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("rows", [1, 130])
def test_layer_norm_kernels_match_reference(dtype, affine, rows):
    rng = np.random.default_rng(5)
    x, dy = _rand(rng, (rows, 7), dtype, 3.0) + dtype(2), _rand(rng, (rows, 7), dtype)
    none = np.zeros(0, dtype)
    weight = _rand(rng, 7, dtype) if affine != "none" else none
    bias = _rand(rng, 7, dtype) if affine == "both" else none
    got = norm.layer_norm_forward(x, weight, bias, 1e-5)
    want = norm.layer_norm_forward_reference(x, weight, bias, 1e-5)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, **TOL[dtype])
    _, xhat, inv_std = want
    got = norm.layer_norm_backward(dy, xhat, inv_std, weight)
    for g, w in zip(got, norm.layer_norm_backward_reference(dy, xhat, inv_std, weight)):
        assert g.dtype == dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, **(TOL[dtype] if dtype == np.float64 else
                                            dict(rtol=1e-4, atol=1e-5)))


def test_float32_exp_equals_its_twin_and_exp():
    """GELU's backward (the Transformer block's feed-forward) uses this vectorisable exp(-u)."""
    from layerloom.engine.kernels import elementwise

    u = np.linspace(0, 86, 40001).astype(np.float32)
    want = elementwise.expneg32_reference(u)
    got = np.array([elementwise.expneg32(v) for v in u[::41]], dtype=np.float32)
    np.testing.assert_allclose(got, want[::41], rtol=1e-7)
    np.testing.assert_allclose(want, np.exp(-u.astype(np.float64)), rtol=4e-7)
    x = np.linspace(-9, 9, 2001)
    got = elementwise.gelu_backward(x.astype(np.float32), np.ones(2001, np.float32), False)
    np.testing.assert_allclose(got, elementwise.gelu_backward(x, np.ones(2001), False), atol=5e-7)
