"""A convolution's output element, taken apart over its receptive field: the contributions plus
the bias are the value Conv2D's forward computed, for strides, padding, dilation and groups."""
import numpy as np
import pytest

from layerloom.engine.registry import LAYERS
from layerloom.engine.receptive_field import conv_field, field_pixels
from layerloom.engine.spec import Ctx


@pytest.mark.parametrize("attrs", [
    {"out_channels": 4, "kernel_size": (3, 3)},
    {"out_channels": 2, "kernel_size": (3, 3), "stride": (2, 1), "padding": (1, 2)},
    {"out_channels": 4, "kernel_size": (2, 3), "stride": (2, 1), "dilation": (2, 2),
     "groups": 2, "padding": (1, 0)},
])
def test_the_field_adds_up_to_the_networks_output(attrs):
    conv = LAYERS["Conv2D"]
    a = conv.validate_attrs(attrs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 6))
    params = {k: v + 0.1 * rng.standard_normal(v.shape)
              for k, v in conv.init(a, ((None, 4, 7, 6),), rng).items()}
    y = conv.forward(a, params, Ctx(False, rng, (True,)), x)
    last = (a.out_channels - 1, y.shape[2] - 1, y.shape[3] - 1)
    for f, i, j in [(0, 0, 0), last, (1, 1, min(2, last[2]))]:
        field = conv_field(x[0], params["weight"], params.get("bias"), a, f, i, j)
        assert field.value == pytest.approx(float(y[0, f, i, j]), abs=1e-9)
        (sh, sw), (ph, pw), (dh, dw) = a.stride, a.padding, a.dilation
        kh, kw = a.kernel_size
        assert field.rows == (i * sh - ph, i * sh - ph + (kh - 1) * dh + 1)
        assert field.cols == (j * sw - pw, j * sw - pw + (kw - 1) * dw + 1)
        outside = np.ones(x.shape[2:], bool)
        outside[max(field.rows[0], 0):field.rows[1], max(field.cols[0], 0):field.cols[1]] = False
        assert not field.contribution[outside].any()


def test_the_picture_outlines_the_field_over_the_input():
    conv = LAYERS["Conv2D"]
    a = conv.validate_attrs({"out_channels": 1, "kernel_size": (3, 3)})
    x = np.zeros((1, 8, 8))
    x[0, 2, 3] = 1.0
    w = np.ones((1, 1, 3, 3))
    field = conv_field(x, w, None, a, 0, 1, 2)
    assert field.value == 1.0 and field.contribution[2, 3] == 1.0
    px = field_pixels(x, field)
    k = px.shape[0] // 8
    assert px.shape == (8 * k, 8 * k, 4)
    assert tuple(px[1 * k, 2 * k + k // 2, :3]) == (255, 170, 0)  # the outline's top edge
    red = px[2 * k + k // 2, 3 * k + k // 2]
    assert red[0] > 150 and red[2] < 100  # the one pixel that pushed y up
