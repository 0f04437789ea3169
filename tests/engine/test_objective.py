"""The founding example: f(x, y, z) = 2x² + y³ + z on the canvas, its gradient, and training it
without data (a step is one forward, one backward and one update θ ← θ − γ∇θ f)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from layerloom.engine.analyze import analyze
from layerloom.engine.data import DataError
from layerloom.engine.network import Network
from layerloom.engine.objective import graph_needs_no_data, update_rule
from layerloom.engine.paths import SAMPLES
from layerloom.engine.serialize import load_project
from layerloom.engine.training import DoneReport, EpochReport, StepReport, TrainConfig, train

SAMPLE = SAMPLES / "gradient_wrt_subset.json"


def sample():
    project = load_project(SAMPLE)
    xyz = tuple(float(project.graph.nodes[n].attrs["init"]) for n in "xyz")
    return project, xyz


def f(x, y, z):
    return 2 * x ** 2 + y ** 3 + z


def test_the_sample_gives_the_gradient_4x_3y2_1_at_its_own_values():
    project, (x, y, z) = sample()
    net = Network(project.graph, dtype=np.float64)
    net.forward({})
    assert net.loss() == pytest.approx(f(x, y, z))
    grads = net.backward()
    got = tuple(float(grads[f"{n}.value"][0]) for n in "xyz")
    assert got == pytest.approx((4 * x, 3 * y ** 2, 1.0))


@pytest.mark.parametrize("frozen", ["z", "x"])
def test_freezing_a_variable_gives_the_gradient_with_respect_to_the_others(frozen):
    project, _ = sample()
    project.graph.set_frozen(frozen, True)
    net = Network(project.graph)
    net.forward({})
    assert set(net.backward()) == {f"{n}.value" for n in "xyz" if n != frozen}


def test_the_sample_needs_no_data_and_analyze_finds_nothing_wrong():
    project, _ = sample()
    assert graph_needs_no_data(project.graph)
    assert analyze(project.graph, training=project.training).findings == []
    for n in "xyz":
        project.graph.set_frozen(n, True)
    assert any("frozen" in e.message for e in analyze(project.graph).errors)
    assert not graph_needs_no_data(load_project(SAMPLES / "mlp_spirals.json").graph)


def test_training_with_z_frozen_walks_x_and_y_downhill_and_leaves_z_bit_identical():
    project, (x0, y0, z0) = sample()
    project.graph.set_frozen("z", True)
    config = TrainConfig.from_settings(project.training)
    assert config.optimizer == "sgd"
    net = Network(project.graph)
    z_before = net.params["z.value"].copy()
    reports = list(train(net, None, config))
    steps = [r for r in reports if isinstance(r, StepReport)]
    assert len(steps) == config.epochs and isinstance(reports[-1], DoneReport)
    assert len([r for r in reports if isinstance(r, EpochReport)]) == config.epochs
    assert net.params["z.value"].tobytes() == z_before.tobytes()
    losses = [s.loss for s in steps]
    assert all(b < a for a, b in zip(losses, losses[1:])), "f falls at every SGD step"
    x, y = (float(net.params[f"{n}.value"][0]) for n in "xy")
    assert abs(x) < abs(x0) and y < y0 and f(x, y, z0) < f(x0, y0, z0)
    # each step's report is the update written out: the next value is value − γ·gradient
    for a, b in zip(steps, steps[1:]):
        assert set(a.variables) == {"x.value", "y.value"} and a.lr == config.lr
        for key, (value, grad) in a.variables.items():
            assert b.variables[key][0] == pytest.approx(value - config.lr * grad, rel=1e-6)
    first = steps[0].variables
    assert first["x.value"] == pytest.approx((x0, 4 * x0))
    assert first["y.value"] == pytest.approx((y0, 3 * y0 ** 2))


def test_max_steps_limits_a_data_free_run_and_a_graph_with_data_still_needs_it():
    project, _ = sample()
    config = TrainConfig.from_settings({**project.training, "max_steps": 3})
    steps = [r for r in train(Network(project.graph), None, config) if isinstance(r, StepReport)]
    assert [s.global_step for s in steps] == [0, 1, 2]
    spirals = load_project(SAMPLES / "mlp_spirals.json")
    with pytest.raises(DataError, match="needs a data set"):
        next(train(Network(spirals.graph), None, config))


def test_update_rule_names_the_step_size():
    assert update_rule("sgd") == "θ ← θ − γ·∇<sub>θ</sub>f(θ)"
    assert "μ" in update_rule("momentum") and "√v̂" in update_rule("adam")


def test_cli_trains_the_sample_without_data(tmp_path):
    metrics, weights = tmp_path / "m.json", tmp_path / "w.npz"
    proc = subprocess.run([sys.executable, "-m", "layerloom.engine.cli", "train", str(SAMPLE),
                           "--no-record", "--metrics-json", str(metrics), "--save-weights",
                           str(weights)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "without data" in proc.stderr and "θ ← θ − γ·∇_θf(θ)" in proc.stderr
    _, (x, y, z) = sample()
    assert f"step 1/40: f = {f(x, y, z):.6g}; x = {x:.6g} (∂f/∂x = {4 * x:.6g})" in proc.stdout
    m = json.loads(metrics.read_text())
    assert m["data"].startswith("none") and len(m["step_losses"]) == m["steps"] == 40
    assert m["final_loss"] < m["step_losses"][0]
    assert m["variables"][0] == {"x.value": x, "y.value": y, "z.value": z}
    assert weights.exists()


def test_cli_refuses_data_for_a_graph_that_needs_none():
    proc = subprocess.run([sys.executable, "-m", "layerloom.engine.cli", "train", str(SAMPLE),
                           "--no-record", "--data", "spirals"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1 and "trains without data" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_gradient_is_written_as_formulas_4x_3y2_1():
    from layerloom.engine.explain import objective_gradient

    project, (x, y, z) = sample()
    g = objective_gradient(project.graph)
    assert g.formula == "2x² + y³ + z" and g.partials == ("4x", "3y²", "1")
    assert [float(v[0]) for v in g.gradient.values()] == pytest.approx([4 * x, 3 * y ** 2, 1])
    project.graph.set_frozen("x", True)
    g = objective_gradient(project.graph)
    assert g.partials == ("3y²", "1") and g.frozen == ("x.value",)


def test_polynomials_simplify_and_anything_else_has_no_formula():
    from layerloom.engine.graph import Graph, Node
    from layerloom.engine.polynomial import gradient_text

    g = Graph()
    for node in (Node("a", "Parameter", {"shape": (1,)}), Node("rate", "Parameter", {"shape": (1,)}),
                 Node("prod", "Multiply"), Node("sq", "Pow", {"exponent": 2.0}),
                 Node("less", "Subtract"), Node("shift", "Bias", {"value": -3.0}),
                 Node("obj", "Objective")):
        g.add_node(node)
    for src, dst in ((("a", "y"), ("prod", "a")), (("rate", "y"), ("prod", "b")),
                     (("prod", "y"), ("sq", "x")), (("sq", "y"), ("less", "a")),
                     (("rate", "y"), ("less", "b")), (("less", "y"), ("shift", "x")),
                     (("shift", "y"), ("obj", "x"))):
        g.connect(src, dst)
    f, (da, drate) = gradient_text(g, ["a", "rate"])
    assert f == "a²·rate² − rate − 3"
    assert da == "2a·rate²" and drate == "2a²·rate − 1"
    g.set_attr("sq", "exponent", 0.5)  # a fractional power: numbers only
    assert gradient_text(g, ["a"]) is None
