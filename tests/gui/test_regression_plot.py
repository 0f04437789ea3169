"""A regression run on a CSV table ends with predictions plotted against true values in the Plots
panel's Test tab, where a classifier shows its confusion matrix."""
import numpy as np

from layerloom.engine.graph import Graph, Node
from layerloom.engine.serialize import Project
from tests.gui.test_training_harness import make_harness, train_and_wait  # noqa: F401


def regression_project(tmp_path) -> Project:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    kind = np.where(a > 0, "tall", "short")
    y = 3 * a - b + rng.normal(0, 0.05, 200)
    path = tmp_path / "table.csv"
    path.write_text("a,b,kind,y\n" + "".join(f"{p:.4f},{q:.4f},{k},{t:.4f}\n"
                                             for p, q, k, t in zip(a, b, kind, y)))
    g = Graph()
    for node in [Node("x", "Input", {"shape": (4,)}), Node("fc", "Dense", {"out_features": 1}),
                 Node("t", "Label", {"kind": "values", "shape": (1,)}), Node("loss", "MSELoss", {})]:
        g.add_node(node)
    for src, dst in [(("x", "y"), ("fc", "x")), (("fc", "y"), ("loss", "input")),
                     (("t", "y"), ("loss", "target"))]:
        g.connect(src, dst)
    training = {"optimizer": "adam", "lr": 0.05, "epochs": 20, "batch_size": 32}
    return Project(g, training, {"spec": f"csv:{path}?target=y&categorical=kind"})


def test_a_regression_run_plots_predictions_against_true_values(qtbot, make_harness, tmp_path):
    h = make_harness(regression_project(tmp_path))
    done = train_and_wait(qtbot, h)
    plots = h.plots
    assert done.confusion is None and done.regression is not None
    assert plots.tabs.currentWidget() is plots.test_view
    assert plots.test_view.currentWidget() is plots.regression_view
    view = plots.regression_view
    xs, ys = view.points.getData()
    np.testing.assert_allclose(xs, done.regression.true.ravel())
    np.testing.assert_allclose(ys, done.regression.predicted.ravel())
    assert len(xs) == len(h.controller.dataset.test) == 40
    assert done.regression.r2 > 0.95 and "R² 0.9" in view.caption.text()
    assert not view.hint.isVisible() and view.caption.isVisible()
    assert plots.tabs.tabText(plots.tabs.indexOf(plots.test_view)) == "Test"
