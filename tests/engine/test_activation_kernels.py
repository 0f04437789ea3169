"""float32 activations, whichever kernel runs them (``kernels.activation``'s compiled passes or
numpy), follow the float64 path: every layer of the Activation category, on an input of several
kernel chunks with a wide range of values, NaN, ±inf and ±0 among them, forward and backward."""
import numpy as np
import pytest

from layerloom.engine.kernels import activation
from layerloom.engine.registry import LAYERS
from layerloom.engine.spec import Ctx

ACTIVATIONS = sorted(t for t, c in LAYERS.items() if c.category == "Activation")
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 3.0, -3.0, 1e-30, -1e-30, 90.0, -90.0, -0.4]


def _input(example, rng) -> np.ndarray:
    """The example's shape with its last axis grown (by an even factor) past two chunks."""
    shape = tuple(example.inputs[0])
    grow = 2 * -(-2 * activation.CHUNK // (2 * int(np.prod(shape))))
    x = rng.standard_normal((*shape[:-1], shape[-1] * grow)) * 6
    x.reshape(-1)[:len(SPECIAL)] = SPECIAL
    return x


def _run(cls, a, params, x, dy, dtype):
    ctx = Ctx(True, np.random.default_rng(1), (True,))
    p = {k: v.astype(dtype) for k, v in params.items()}
    y = cls.forward(a, p, ctx, x.astype(dtype))
    (dx,), grads = cls.backward(a, p, ctx, dy.astype(dtype))
    return y, dx, grads


@pytest.mark.parametrize("type_id", ACTIVATIONS)
def test_float32_activation_follows_the_float64_path(type_id):
    cls = LAYERS[type_id]
    example = cls.examples[-1]
    a = cls.validate_attrs(example.attrs)
    rng = np.random.default_rng(0)
    x = _input(example, rng)
    params = cls.init(a, ((None, *x.shape[1:]),), rng)
    dy = rng.standard_normal(cls.forward(a, params, Ctx(False, rng, (True,)), x).shape)
    y64, dx64, g64 = _run(cls, a, params, x, dy, np.float64)
    y32, dx32, g32 = _run(cls, a, params, x, dy, np.float32)
    assert y32.dtype == dx32.dtype == np.float32
    for got, want, what in [(y32, y64, "forward"), (dx32, dx64, "backward")] + \
            [(g32[k], g64[k], k) for k in g64]:
        scale = np.abs(want[np.isfinite(want)]).max(initial=1.0)
        np.testing.assert_allclose(got, want, rtol=3e-5, atol=3e-6 * scale,
                                   err_msg=f"{type_id} {what}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_activations_take_strided_inputs_and_leave_them_alone(dtype):
    x = np.random.default_rng(2).standard_normal((40, 3000)).astype(dtype).T  # not C-ordered
    before = x.copy()
    np.testing.assert_array_equal(activation.relu(x), np.maximum(x, 0))
    np.testing.assert_array_equal(activation.leaky_relu(x, 0.1),
                                  np.where(x > 0, x, dtype(0.1) * x))
    np.testing.assert_array_equal(x, before)
    assert activation.relu(x).shape == x.shape


def test_elu_near_zero_keeps_its_leading_digits_in_float32():
    """e^x − 1 for x → 0⁻ from the polynomial: e^x − 1 in float32 would keep ~3 digits."""
    x = -np.logspace(-8, np.log10(0.49), 200).astype(np.float32)
    y, _ = activation.elu32(x, 1.0)
    np.testing.assert_allclose(y, np.expm1(x.astype(np.float64)), rtol=3e-7)


def test_log1p_family_keeps_its_digits_where_the_naive_forms_lose_them():
    """ln(1 + u) for tiny u (1 + u rounds to 1 or near it) and Mish's tanh(softplus(x)) for
    very negative x: relative errors of a few ulp against float64, not a cancellation's."""
    from layerloom.engine.kernels import activation_log

    x = -np.linspace(15.0, 80.0, 300).astype(np.float32)
    soft, _ = activation_log.softplus32(x, 1.0, 20.0)
    np.testing.assert_allclose(soft, np.log1p(np.exp(x.astype(np.float64))), rtol=2e-6)
    y, t = activation_log.mish32(x)
    want = np.tanh(np.log1p(np.exp(x.astype(np.float64))))
    np.testing.assert_allclose(t, want, rtol=2e-6)
    np.testing.assert_allclose(activation_log.logsigmoid32(-x),
                               -np.log1p(np.exp(x.astype(np.float64))), rtol=2e-6)
