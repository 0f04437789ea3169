"""Kernels compile in the background from the moment a graph is open, with a progress item in
the status bar; Train pressed meanwhile waits, visibly, for them and then runs."""
from pathlib import Path

import pytest

from layerloom.gui.training import controller as ctl

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_opening_a_sample_compiles_its_kernels_in_the_background(qtbot, window):
    t = window.training
    compiler, progress = t.compiler, []
    compiler.progress.connect(progress.append)
    known = dict(compiler.census.entries)  # the run may add kernels this machine's cores call
    with qtbot.waitSignal(compiler.idle, timeout=600_000):
        assert window.open_path(SAMPLES / "lenet5.json", ask=False)
    shown = [p for p in progress if p is not None]
    expected = known.get(compiler._key)
    assert shown and expected and shown[0].total == len(expected)  # shipped: "n of m" at once
    assert shown[-1].ready <= shown[-1].total and shown[-1].text().startswith("Compiling kernels")
    assert progress[-1] is None and not t.compile_status.isVisible()


def test_train_pressed_while_kernels_compile_waits_for_them_then_runs(qtbot, window):
    t, doc = window.training, window.document
    c, compiler, panel = t.controller, t.compiler, t.training_panel
    with qtbot.waitSignal(compiler.idle, timeout=600_000):
        assert window.open_path(SAMPLES / "mlp_spirals.json", ask=False)
    panel.max_steps.setValue(5)
    doc.set_attr("fc1", "out_features", 48)  # a new structure: its kernels are looked up again
    compiler._debounce.stop()
    assert compiler.start() and compiler.busy
    assert t.compile_status.isVisible() and "Compiling kernels" in t.compile_status.label.text()
    statuses = []
    c.status.connect(statuses.append)
    with qtbot.waitSignal(c.finished, timeout=600_000) as done:
        assert c.start()  # as the Train button does
        assert c.state == ctl.PREPARING and statuses[-1] == ctl.WAITING
        assert c.thread is not None and not c.thread.isRunning()  # not before the kernels
        assert panel.status_label.text() in (ctl.WAITING, t.compile_status.label.text())
    assert done.args[0].steps == 5 and not compiler.busy and not t.compile_status.isVisible()
