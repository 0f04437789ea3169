"""Training: reproducible, frozen nodes stay put, NaN stops with a name, pause/stop from a thread."""
import threading

import numpy as np
import pytest

from layerloom.engine.data import Dataset, Split, split_off
from layerloom.engine.network import Network
from layerloom.engine.optim import SGD, Adam
from layerloom.engine.training import Control, Diverged, DoneReport, EpochReport, StepReport, TrainConfig, train

from .test_graph import mlp

torch = pytest.importorskip("torch")


def blobs(n=600, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + 3.0 * np.eye(3, 4)[y]
    train_split, val = split_off(x, y, 0.2, seed)
    return Dataset("blobs", train_split, val, Split(x[:100], y[:100]), class_names=["a", "b", "c"])


def run(config, graph=None, control=None):
    net = Network(graph or mlp(), seed=0)
    return net, list(train(net, blobs(), config, control))


def test_loss_falls_and_reports_come_in_order():
    net, reports = run(TrainConfig(epochs=3, lr=0.02, batch_size=32))
    steps = [r for r in reports if isinstance(r, StepReport)]
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert len(epochs) == 3 and isinstance(reports[-1], DoneReport)
    assert np.mean([s.loss for s in steps[-5:]]) < 0.5 * np.mean([s.loss for s in steps[:5]])
    assert reports[-1].test_accuracy > 0.9
    assert set(steps[0].grad_norms) == set(net.trainable_keys) and steps[0].histograms


def test_a_steps_histograms_are_numpys_of_its_weights_and_gradients():
    """One step with histograms (engine.kernels.histogram): the weights' are numpy's of the
    weights after the update; each gradient's counts every element of its parameter."""
    net, reports = run(TrainConfig(epochs=1, max_steps=1, histogram_every=1))
    (step,) = [r for r in reports if isinstance(r, StepReport)]
    assert set(step.histograms) == set(net.trainable_keys)
    for k, h in step.histograms.items():
        counts, edges = np.histogram(net.params[k], bins=30)
        np.testing.assert_array_equal(h["weight"][0], counts)
        np.testing.assert_array_equal(h["weight"][1], edges)
        assert h["grad"][0].sum() == net.params[k].size and len(h["grad"][1]) == 31


def test_same_seed_same_run():
    a, _ = run(TrainConfig(epochs=1, seed=3))
    b, _ = run(TrainConfig(epochs=1, seed=3))
    c, _ = run(TrainConfig(epochs=1, seed=4))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["fc1.weight"], c.params["fc1.weight"])


def test_frozen_nodes_get_no_gradient_and_do_not_move():
    g = mlp()
    g.set_frozen("fc1", True)
    before = Network(g, seed=0).params["fc1.weight"].copy()
    net, reports = run(TrainConfig(epochs=1), graph=g)
    assert "fc1.weight" not in net.trainable_keys
    assert all("fc1.weight" not in r.grad_norms for r in reports if isinstance(r, StepReport))
    assert np.array_equal(net.params["fc1.weight"], before)


def test_absurd_learning_rate_stops_naming_a_node_and_keeps_finite_weights():
    net, reports = run(TrainConfig(optimizer="sgd", lr=1e8, epochs=2))
    last = reports[-1]
    assert isinstance(last, Diverged)
    assert last.node_id in net.graph.nodes and "learning rate" in last.message
    assert all(np.isfinite(v).all() for v in net.params.values())


@pytest.mark.parametrize("lr", [1e6, 1e8])
def test_the_weights_kept_after_divergence_run_a_finite_step(lr):
    """Kept weights are those before the update that led to the blow-up, whichever pass (forward,
    backward or the update itself) noticed it: the next forward and backward stay finite."""
    net, reports = run(TrainConfig(optimizer="sgd", lr=lr, epochs=2))
    assert isinstance(reports[-1], Diverged)
    data = blobs()
    net.forward({"x": data.train.x[:64], "t": data.train.y[:64]}, training=True)
    assert np.isfinite(net.loss())
    assert all(np.isfinite(g).all() for g in net.backward().values())


def test_control_stops_from_another_thread():
    control = Control()
    net = Network(mlp(), seed=0)
    gen = train(net, blobs(), TrainConfig(epochs=50, batch_size=8), control)
    first = next(gen)
    threading.Thread(target=control.stop).start()
    rest = list(gen)
    assert isinstance(first, StepReport)
    assert isinstance(rest[-1], DoneReport) and rest[-1].stopped
    assert rest[-1].steps < 50 * 60


def test_pause_blocks_until_resumed():
    control = Control()
    gen = train(Network(mlp(), seed=0), blobs(), TrainConfig(max_steps=3), control)
    next(gen)
    control.pause()
    got = []
    worker = threading.Thread(target=lambda: got.append(next(gen)))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and not got  # paused: no step was taken
    control.resume()
    worker.join(5)
    assert isinstance(got[0], StepReport) and got[0].global_step == 1


def test_optimizers_match_pytorch():
    rng = np.random.default_rng(0)
    p0, grads = rng.normal(size=(5, 3)), [rng.normal(size=(5, 3)) for _ in range(4)]
    cases = [(SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
              lambda t: torch.optim.SGD([t], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
             (Adam(0.01, weight_decay=0.01, decoupled=True),
              lambda t: torch.optim.AdamW([t], lr=0.01, weight_decay=0.01)),
             (Adam(0.01), lambda t: torch.optim.Adam([t], lr=0.01))]
    for ours, make in cases:
        p, t = {"w": p0.copy()}, torch.tensor(p0.copy(), requires_grad=True)
        opt = make(t)
        for g in grads:
            ours.step(p, {"w": g})
            t.grad = torch.tensor(g)
            opt.step()
        np.testing.assert_allclose(p["w"], t.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
def test_the_learning_rate_follows_the_schedule_over_the_run(schedule):
    from layerloom.engine.optim import lr_factor

    _, reports = run(TrainConfig(epochs=2, lr=0.01, batch_size=60, schedule=schedule))
    steps = [r for r in reports if isinstance(r, StepReport)]
    lrs = np.array([s.lr for s in steps])
    total = steps[0].total_steps
    np.testing.assert_allclose(lrs, [0.01 * lr_factor(schedule, i / total) for i in range(total)])
    assert lrs[0] == 0.01
    if schedule == "cosine":
        assert np.all(np.diff(lrs) < 0) and lrs[-1] < 0.01 * 0.01
    if schedule == "step":
        assert sorted(set(np.round(lrs / 0.01, 6))) == [0.01, 0.1, 1.0]
        assert lrs[total // 2] == pytest.approx(0.001) and lrs[total // 2 - 1] == 0.01
    if schedule == "constant":
        assert np.all(lrs == 0.01)


def test_an_unknown_schedule_is_refused_before_the_first_step():
    from layerloom.engine.spec import LayerloomError

    net = Network(mlp(), seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(LayerloomError, match=r"training.schedule: must be one of"):
        list(train(net, blobs(), TrainConfig(schedule="linear")))
    assert all(np.array_equal(before[k], net.params[k]) for k in before)


def test_a_graph_without_a_label_binds_for_predictions_only():
    from layerloom.engine.graph import Graph, Node
    from layerloom.engine.spec import LayerloomError
    from layerloom.engine.training import bind, bind_for_predictions

    g = mlp()
    assert bind_for_predictions(Network(g)) == bind(Network(g))  # a trainable graph: the same
    for node_id in [n for n in g.nodes if g.nodes[n].type in ("Label", "CrossEntropyLoss")]:
        g.remove_node(node_id)
    binding = bind_for_predictions(Network(g))
    last = g.topological_order()[-1]
    assert (binding.label_id, binding.logits_ref) == (None, (last, "y"))
    g.add_node(Node("other", "Input", {"shape": [4]}))
    with pytest.raises(LayerloomError, match="predictions need exactly one Input node, found 2"):
        bind_for_predictions(Network(g))
