"""Every bundled sample loads, passes shape inference, fits its own data and trains two steps."""
import numpy as np
import pytest

from layerloom.engine.data import load_data
from layerloom.engine.network import Network
from layerloom.engine.paths import SAMPLES
from layerloom.engine.project import check_fit, fit_graph_to_data
from layerloom.engine.serialize import load_project
from layerloom.engine.shapes import infer_shapes
from layerloom.engine.training import StepReport, TrainConfig, train

SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))


def test_the_default_samples_exist():
    names = {p.name for p in SAMPLE_FILES}
    assert {"lenet5.json", "mlp_spirals.json"} <= names


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_sample_loads_checks_and_trains_two_steps(path):
    project = load_project(path)
    assert infer_shapes(project.graph).ok
    assert project.data.get("spec"), f"{path.name} names no data"
    data = load_data(project.data["spec"])
    fit_graph_to_data(project.graph, data)
    check_fit(project.graph, data)
    config = TrainConfig.from_dict({**project.training, "max_steps": 2, "epochs": 1})
    net = Network(project.graph, seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    steps = [r for r in train(net, data, config) if isinstance(r, StepReport)]
    assert len(steps) == 2 and all(np.isfinite(s.loss) for s in steps)
    assert any(not np.array_equal(before[k], net.params[k]) for k in net.trainable_keys)
