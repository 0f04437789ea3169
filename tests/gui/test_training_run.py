"""Press Train: the run goes off the UI thread, plots fill, the window stays responsive."""
import numpy as np
import pytest

from layerloom.gui.training import controller as ctl
from tests.gui.test_training_harness import (TickProbe, make_harness, sample_project,  # noqa: F401
                                             train_and_wait)

STEPS = 600  # long enough (~1 s) for the UI's timer to fire many times meanwhile


def test_training_the_spirals_mlp_fills_the_plots_and_keeps_the_window_responsive(qtbot,
                                                                                   make_harness):
    project = sample_project("mlp_spirals.json", epochs=30, max_steps=STEPS)
    project.graph.set_frozen("fc1", True)
    h = make_harness(project)
    probe = TickProbe(h.controller)
    done = train_and_wait(qtbot, h)
    h.plots.flush()

    assert done.steps == STEPS and not done.stopped
    losses = h.plots.loss_plot.loss.y
    assert len(losses) == STEPS and np.isfinite(losses).all()
    assert losses[-15:].mean() < 0.8 * losses[:15].mean()
    assert len(h.plots.loss_plot.loss_smooth) == STEPS
    assert len(h.plots.loss_plot.val_loss) == len(h.plots.loss_plot.val_accuracy) >= 20
    trainable = {"fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}
    assert set(h.plots.gradient_plot.curves) == trainable  # fc1 is frozen: no curve
    assert all(len(b) == STEPS for b in h.plots.gradient_plot.buffers.values())
    assert h.plots.histogram_plot.latest and set(h.plots.histogram_plot.latest) == trainable
    assert h.plots.confusion_view.matrix.sum() == len(h.controller.dataset.test)
    assert "Test accuracy" in h.training_panel.result_label.text()
    assert len(probe.ticks) > 5  # the UI thread kept running (how smoothly: bench_window.py)
    probe.timer.stop()


def test_lenet5_trains_on_the_bundled_images_from_the_window(qtbot, make_harness):
    project = sample_project("lenet5.json", max_steps=12, batch_size=32)
    h = make_harness(project)
    statuses = []
    h.controller.status.connect(statuses.append)
    done = train_and_wait(qtbot, h, timeout=120_000)
    h.plots.flush()

    assert done.steps == 12 and done.confusion.shape == (10, 10)
    losses = h.plots.loss_plot.loss.y
    assert len(losses) == 12 and losses[-3:].mean() < losses[:3].mean()
    keys = {f"{n}.{p}" for n in ("conv1", "conv2", "fc1", "fc2", "fc3") for p in ("weight", "bias")}
    assert set(h.plots.gradient_plot.curves) == keys
    assert statuses[0].startswith("Compiling kernels") and statuses[-1] == ""


def test_structural_edits_are_locked_while_training_and_unlocked_after(qtbot, make_harness):
    h = make_harness(sample_project("mlp_spirals.json", max_steps=20))
    train_and_wait(qtbot, h)
    assert h.locks[0][0] is True and "training" in h.locks[0][1]
    assert h.locks[-1] == (False, "")
    assert h.controller.state == ctl.IDLE and h.controller.thread is None


def test_pause_resume_and_stop(qtbot, make_harness):
    h = make_harness(sample_project("mlp_spirals.json", epochs=2000))
    panel, c = h.training_panel, h.controller
    with qtbot.waitSignal(c.steps, timeout=30_000):
        qtbot.mouseClick(panel.train_button, _left())
    qtbot.mouseClick(panel.pause_button, _left())
    assert c.state == ctl.PAUSED and panel.resume_button.isEnabled()
    qtbot.wait(150)  # reports of steps that ran before the pause arrive; then nothing moves
    h.plots.flush()
    seen = len(h.plots.loss_plot.loss)
    qtbot.wait(250)
    h.plots.flush()
    assert len(h.plots.loss_plot.loss) == seen
    with qtbot.waitSignal(c.steps, timeout=10_000):
        qtbot.mouseClick(panel.resume_button, _left())
    assert c.state == ctl.RUNNING
    with qtbot.waitSignal(c.finished, timeout=30_000) as blocker:
        qtbot.mouseClick(panel.stop_button, _left())
    assert blocker.args[0].stopped and blocker.args[0].test_accuracy is not None
    assert panel.progress.format() == "stopped" and panel.train_button.isEnabled()


def test_step_runs_exactly_one_mini_batch_and_pauses(qtbot, make_harness):
    h = make_harness(sample_project("mlp_spirals.json"))
    c, panel, reports = h.controller, h.training_panel, []
    c.steps.connect(reports.extend)
    with qtbot.waitSignal(c.state_changed, check_params_cb=lambda s: s == ctl.PAUSED,
                          timeout=30_000):
        qtbot.mouseClick(panel.step_button, _left())
    assert [r.global_step for r in reports] == [0]
    for expected in (1, 2):
        with qtbot.waitSignal(c.state_changed, check_params_cb=lambda s: s == ctl.PAUSED,
                              timeout=10_000):
            qtbot.mouseClick(panel.step_button, _left())
        assert [r.global_step for r in reports] == list(range(expected + 1))
    h.plots.flush()
    assert len(h.plots.loss_plot.loss) == 3
    assert panel.progress.value() == 3
    with qtbot.waitSignal(c.finished, timeout=30_000):
        c.stop()


def test_a_nan_run_names_the_node_and_keeps_the_last_good_weights(qtbot, make_harness):
    # LeNet's ReLUs let an absurd step overflow (the spirals MLP's tanh would saturate instead)
    h = make_harness(sample_project("lenet5.json", batch_size=16, max_steps=40))
    panel = h.training_panel
    panel.optimizer.setCurrentIndex(panel.optimizer.findData("sgd"))
    panel.lr.setValue(1e6)
    assert h.project.training["lr"] == 1e6 and h.project.training["optimizer"] == "sgd"
    report = train_and_wait(qtbot, h, signal=h.controller.diverged, timeout=120_000)

    assert report.node_id in h.project.graph.nodes
    text = panel.status_label.text()
    assert report.node_id in text and "learning rate" in text and "last good weights" in text
    net = h.controller.trained_network()
    assert net is not None and all(np.isfinite(v).all() for v in net.params.values())
    assert h.plots.loss_plot._markers and h.plots.gradient_plot.highlighted == report.node_id
    assert h.locks[-1] == (False, "")


def test_training_again_after_stopping_with_a_changed_learning_rate(qtbot, make_harness):
    h = make_harness(sample_project("mlp_spirals.json", epochs=2000))
    c, panel, infos = h.controller, h.training_panel, []
    c.started.connect(infos.append)
    with qtbot.waitSignal(c.steps, timeout=30_000):
        qtbot.mouseClick(panel.train_button, _left())
    with qtbot.waitSignal(c.finished, timeout=30_000):
        qtbot.mouseClick(panel.stop_button, _left())
    before = {k: v.copy() for k, v in c.trained_network().params.items()}
    panel.lr.setValue(0.002)
    panel.epochs.setValue(1)
    done = train_and_wait(qtbot, h)
    assert infos[-1].config.lr == 0.002 and infos[-1].continued
    assert not done.stopped and done.steps == infos[-1].dataset.train.x.shape[0] // 32 + 1
    after = c.trained_network().params
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_trained_weights_stay_until_the_structure_changes(qtbot, make_harness):
    h = make_harness(sample_project("mlp_spirals.json", max_steps=10))
    train_and_wait(qtbot, h)
    c, graph = h.controller, h.project.graph
    graph.move("fc1", (500.0, 300.0))
    graph.set_frozen("fc2", True)
    assert c.has_weights()  # moving and freezing are not structural
    with qtbot.waitSignal(c.weights_changed, check_params_cb=lambda ok: ok is False):
        graph.set_attr("fc2", "out_features", 32)
        assert not c.has_weights()
    assert not h.training_panel.reset_button.isEnabled()


def test_a_graph_that_cannot_train_fails_with_one_line_and_no_lock(qtbot, make_harness):
    project = sample_project("mlp_spirals.json")
    project.graph.remove_node("loss")
    h = make_harness(project)
    message = train_and_wait(qtbot, h, signal=h.controller.failed)
    assert "loss" in message and "\n" not in message
    assert h.training_panel.status_label.text() == message
    assert h.controller.state == ctl.IDLE and not h.locks


def test_closing_the_window_mid_run_ends_the_thread(qtbot, make_harness):
    h = make_harness(sample_project("mlp_spirals.json", epochs=2000))
    with qtbot.waitSignal(h.controller.steps, timeout=30_000):
        h.controller.start()
    thread = h.controller.thread
    h.close()
    assert h.controller.thread is None and thread is not None
    assert h.locks[-1] == (False, "")


def _left():
    from PySide6.QtCore import Qt

    return Qt.LeftButton


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
