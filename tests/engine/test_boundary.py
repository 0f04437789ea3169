"""Decision regions over two-feature data: the grid covers the data, the map is the network's
own class probabilities, and only two-feature classification data gets one."""
import numpy as np

from layerloom.engine.boundary import applies, boundary_map, class_map, make_grid
from layerloom.engine.data import Dataset, Split
from layerloom.engine.network import Network
from layerloom.engine.serialize import load_project
from layerloom.engine.training import bind

from .graph_cases import SAMPLES


def spirals() -> tuple[Network, Dataset]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2)).astype(np.float32) * [3.0, 0.5]
    y = rng.integers(0, 3, 90)
    data = Dataset("blobs", Split(x, y), Split(x[:9], y[:9]), Split(x[:9], y[:9]),
                   class_names=["a", "b", "c"])
    return Network(load_project(SAMPLES / "mlp_spirals.json").graph, seed=1), data


def test_the_grid_covers_the_data_with_a_margin_row_by_row_from_the_bottom():
    _, data = spirals()
    grid = make_grid(data.train.x, n=8, margin=0.1)
    x0, x1, y0, y1 = grid.extent
    lo, hi = data.train.x.min(axis=0), data.train.x.max(axis=0)
    assert x0 < lo[0] and x1 > hi[0] and y0 < lo[1] and y1 > hi[1]
    assert np.isclose(x1 - x0, (hi[0] - lo[0]) * 1.2) and np.isclose(y1 - y0, (hi[1] - lo[1]) * 1.2)
    assert grid.points.shape == (64, 2) and grid.points.dtype == np.float32
    assert grid.points[0, 1] == grid.points[7, 1] < grid.points[8, 1]  # a row shares its y
    assert grid.points[0, 0] < grid.points[1, 0]


def test_the_map_is_the_networks_own_class_probabilities():
    net, data = spirals()
    binding = bind(net)
    probs = class_map(net, binding, data.train.x[:20])
    net.forward({binding.input_id: data.train.x[:20], binding.label_id: data.train.y[:20]})
    logits = net.executor.values[binding.logits_ref]
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, want / want.sum(axis=1, keepdims=True), rtol=1e-5)
    grid = make_grid(data.train.x, n=16)
    m = boundary_map(net, binding, grid)
    assert m.probs.shape == (16, 16, 3) and np.allclose(m.probs.sum(axis=-1), 1)
    assert m.extent == grid.extent


def test_only_two_feature_classification_data_gets_a_map():
    net, data = spirals()
    binding = bind(net)
    assert applies(data, binding)
    regression = Dataset("r", data.train, data.val, data.test, task="regression")
    assert not applies(regression, binding) and not applies(None, binding)
    images = Dataset("i", Split(np.zeros((4, 1, 2, 2), np.float32), np.zeros(4, int)),
                     data.val, data.test)
    assert not applies(images, binding)
