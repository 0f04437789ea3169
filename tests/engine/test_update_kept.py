"""A training step's update with its statistics (``optim.update_kept``): Adam's one compiled call
a parameter keeps the old value, updates, and reports the gradient's norm and whether the result
is finite; it must equal the plain update and the separate passes it replaced, for every
optimizer, and still catch an update that overflows.
"""
import numpy as np
import pytest

from layerloom.engine.kernels.optim import adam_update, adam_update_kept
from layerloom.engine.optim import Adam, make_optimizer, update_kept

DTYPES = [np.float32, np.float64]


def _params(dtype, rng):
    shapes = {"fc.weight": (7, 300), "fc.bias": (7,), "conv.weight": (4, 3, 5, 5),
              "bn.running_mean": (4,)}  # the last: a buffer, no gradient
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    grads = {k: rng.standard_normal(params[k].shape).astype(dtype) for k in shapes
             if k != "bn.running_mean"}
    return params, grads


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_kept_kernel_equals_the_plain_update_and_reports_norm_and_finiteness(dtype):
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(1001).astype(dtype), rng.standard_normal(1001).astype(dtype)
    mv = np.abs(rng.standard_normal((2, 1001))).astype(dtype)
    f = np.dtype(dtype).type
    sc = np.array([f(0.9), f(0.1), f(0.999), f(0.001), f(0.01), f(0.001), f(1e-8),
                   np.finfo(dtype).tiny], dtype)
    p0, p2, m2, v2, kept = p.copy(), p.copy(), mv[0].copy(), mv[1].copy(), np.empty_like(p)
    norm, finite = adam_update_kept(p, g, mv, sc, kept)
    adam_update(p2, g, m2, v2, *sc)
    np.testing.assert_array_equal(p, p2)
    np.testing.assert_array_equal(mv[0], m2)
    np.testing.assert_array_equal(mv[1], v2)
    assert finite and norm == pytest.approx(np.linalg.norm(g.astype(np.float64)), rel=1e-12)
    np.testing.assert_array_equal(kept, p0)
    for bad in (np.inf, -np.inf, np.nan):  # a parameter that is (or becomes) non-finite
        q = p.copy()
        q[500] = bad
        assert not adam_update_kept(q, g, mv.copy(), sc, np.empty_like(q))[1]
    huge = sc.copy()
    huge[4] = np.finfo(dtype).max  # a step so large the update overflows
    assert not adam_update_kept(p.copy(), g, mv.copy(), huge, np.empty_like(p))[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,decay", [("adam", 0.0), ("adam", 1e-2), ("adamw", 1e-2),
                                        ("sgd", 0.0), ("momentum", 1e-2)])
def test_update_kept_equals_the_separate_passes(dtype, name, decay):
    """Three steps through ``update_kept`` against the passes it replaced (norm, copy, step,
    finiteness): the same parameters bit for bit, the kept values the ones before the last
    update (the buffer's too), the same norms."""
    rng = np.random.default_rng(1)
    params, grads = _params(dtype, rng)
    ours, theirs = make_optimizer(name, 1e-2, weight_decay=decay), \
        make_optimizer(name, 1e-2, weight_decay=decay)
    mine = {k: v.copy() for k, v in params.items()}
    kept = {k: np.zeros_like(v) for k, v in params.items()}
    keys = ("conv.weight", "fc.weight", "fc.bias")
    for _ in range(3):
        before = {k: v.copy() for k, v in mine.items()}
        norms, bad = update_kept(ours, mine, grads, kept, keys)
        expected = {k: float(np.sqrt(np.vdot(grads[k], grads[k]))) for k in keys}
        theirs.step(params, grads)
        assert bad is None and list(norms) == list(keys)
        for k in keys:
            assert norms[k] == pytest.approx(expected[k], rel=1e-6)
        for k in params:
            np.testing.assert_array_equal(mine[k], params[k])
            np.testing.assert_array_equal(kept[k], before[k])


def test_update_kept_names_the_first_parameter_an_update_made_non_finite():
    rng = np.random.default_rng(2)
    params, grads = _params(np.float32, rng)
    params["fc.weight"][3, 4] = np.float32(3e38)
    grads["fc.weight"][3, 4] = np.float32(-1e30)
    opt = make_optimizer("sgd", 1e10)
    kept = {k: np.zeros_like(v) for k, v in params.items()}
    _, bad = update_kept(opt, params, grads, kept, ("conv.weight", "fc.weight", "fc.bias"))
    assert bad == "fc.weight" and kept["fc.weight"][3, 4] == np.float32(3e38)
    adam = Adam(np.finfo(np.float32).max)
    params, grads = _params(np.float32, rng)
    _, bad = update_kept(adam, params, grads, kept, ("fc.bias", "conv.weight", "fc.weight"))
    assert bad == "fc.bias"  # every one overflowed: the first of the keys' order
