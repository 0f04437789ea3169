"""The recurrent-cell and attention-softmax kernels equal the numpy twins that define them."""
import numpy as np
import pytest
from numba.core import types

from engine.kernels import attention as att
from engine.kernels import recurrent as rec

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
@pytest.mark.parametrize("steps,keys", [(5, 5), (3, 6)])
def test_attention_softmax_matches_reference(dtype, causal, steps, keys):
    rng = np.random.default_rng(3)
    scores, dp = _rand(rng, (4, steps, keys), dtype, 4.0), _rand(rng, (4, steps, keys), dtype)
    p = att.attention_softmax(scores, 0.5, causal)
    np.testing.assert_allclose(p, att.attention_softmax_reference(scores, 0.5, causal), **TOL[dtype])
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-5)
    ds = att.attention_softmax_backward(p, dp, 0.5)
    np.testing.assert_allclose(ds, att.attention_softmax_backward_reference(p, dp, 0.5),
                               **TOL[dtype])
    if causal:
        hidden = att.causal_mask_reference(steps, keys)
        assert hidden.any() and not p[:, hidden].any() and not ds[:, hidden].any()


def test_attention_softmax_backward_is_the_jacobian_of_the_forward():
    rng = np.random.default_rng(4)
    scores, dp = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3, 3))
    ds = att.attention_softmax_backward(att.attention_softmax(scores, 0.7, True), dp, 0.7)
    eps, idx = 1e-6, (1, 2, 0)
    hi, lo = scores.copy(), scores.copy()
    hi[idx] += eps
    lo[idx] -= eps
    numeric = ((att.attention_softmax(hi, 0.7, True) - att.attention_softmax(lo, 0.7, True))
               * dp).sum() / (2 * eps)
    assert np.isclose(ds[idx], numeric, rtol=1e-6)
