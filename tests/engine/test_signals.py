"""The synthetic signals set (sine, square, sawtooth, noise) and the 1-D CNN sample learning it."""
import numpy as np
import pytest

from layerloom.engine.data import DataError, load_data
from layerloom.engine.data.synthetic import SIGNAL_CLASSES, signals
from layerloom.engine.network import Network
from layerloom.engine.paths import SAMPLES
from layerloom.engine.project import load_project
from layerloom.engine.threads import get_threads, set_threads
from layerloom.engine.training import DoneReport, EpochReport, TrainConfig, train


def test_signals_are_balanced_seeded_channels_first_and_named():
    data = load_data("signals?n=400&length=64")
    assert data.sample_shape == (1, 64) and data.class_names == list(SIGNAL_CLASSES)
    y = np.concatenate([data.train.y, data.val.y, data.test.y])
    assert np.bincount(y).tolist() == [100] * 4
    x, labels = signals(n=40, seed=3)
    again, _ = signals(n=40, seed=3)
    other, _ = signals(n=40, seed=4)
    assert x.dtype == np.float32 and np.array_equal(x, again) and not np.array_equal(x, other)
    assert x.shape == (40, 1, 128) and sorted(set(labels.tolist())) == [0, 1, 2, 3]


def test_without_noise_each_class_has_its_waveform():
    x, y = signals(n=200, noise=0.0, length=256)
    x = x[:, 0]
    for wave in x[y == 1]:  # square: two levels, ± its amplitude
        assert np.allclose(np.abs(wave), np.abs(wave[0]))
    steps = np.diff(x[y == 2], axis=1)  # sawtooth: a constant rise, then a drop
    rise = np.median(steps, axis=1, keepdims=True)
    assert np.all((np.isclose(steps, rise, atol=1e-5)) | (steps < -0.5))
    peaks = np.abs(x).max(axis=1)  # every class: its amplitude, drawn from 0.5 to 1.5
    assert peaks.min() >= 0.5 - 1e-6 and peaks.max() <= 1.5 + 1e-6


@pytest.mark.parametrize("spec, words", [("signals?length=8", "length must be an integer"),
                                         ("signals?n=2", "n must be an integer"),
                                         ("signals?noise=-1", "noise must be a number"),
                                         ("signals?classes=3", "unknown option 'classes'")])
def test_bad_signal_options_are_refused_in_one_line(spec, words):
    with pytest.raises(DataError) as err:
        load_data(spec)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_signal_cnn_sample_learns_its_task_with_its_own_settings():
    project = load_project(SAMPLES / "signal_cnn.json")
    types = {n.type for n in project.graph.nodes.values()}
    assert {"Conv1d", "MaxPool1d", "ReflectionPad1d", "AdaptiveAvgPool1d"} <= types
    assert any(n.attrs.get("groups", 1) > 1 for n in project.graph.nodes.values())  # depthwise
    data = load_data(project.data["spec"])
    net_config = TrainConfig.from_dict(project.training)
    threads = get_threads()
    set_threads(1)  # the suite runs beside other work: one thread keeps this fast everywhere
    try:
        reports = list(train(Network(project.graph, seed=net_config.seed), data, net_config))
    finally:
        set_threads(threads)
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert len(epochs) == net_config.epochs and isinstance(reports[-1], DoneReport)
    assert reports[-1].test_accuracy >= 0.9, reports[-1].test_accuracy
