"""The batch loader: a background thread gives exactly the batches the synchronous path gives,
hands errors to the consumer, ends its thread when the consumer stops, and counts the waiting."""
import threading
import time

import numpy as np
import pytest

from layerloom.engine.data import DataError, Split
from layerloom.engine.data.augment import Augmentation
from layerloom.engine.data.folder import load_folder
from layerloom.engine.data.loader import BatchLoader
from tests.engine.image_folders import class_folder


def loader_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "layerloom-loader"]


@pytest.fixture
def folder_data(tmp_path):
    return load_folder(class_folder(tmp_path / "f", per_class=12), 0.0, 0, size=8, test_fraction=0.0)


def test_background_batches_equal_the_synchronous_ones_with_augmentation(folder_data):
    aug = Augmentation(flip=True, crop_padding=2, brightness=0.2)
    order = np.random.default_rng(0).permutation(len(folder_data.train))
    runs = []
    for background in (False, True):
        with BatchLoader(folder_data.train, order, 5, aug, seed=1, epoch=2,
                         background=background) as loader:
            runs.append([(b.index, b.x, b.y) for b in loader])
    sync, threaded = runs
    assert len(sync) == len(threaded) == 8  # 36 images in batches of 5
    for (i1, x1, y1), (i2, x2, y2) in zip(sync, threaded):
        assert np.array_equal(i1, i2) and np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.array_equal(np.concatenate([i for i, _, _ in sync]), order)


def test_images_from_the_cache_load_in_the_background_and_plain_arrays_on_the_spot(folder_data):
    assert BatchLoader(folder_data.train, np.arange(4), 2).background
    plain = Split(np.zeros((4, 3)), np.zeros(4))
    assert not BatchLoader(plain, np.arange(4), 2).background
    assert BatchLoader(plain, np.arange(4), 2, Augmentation(flip=True)).background
    unaugmented = [b.x for b in BatchLoader(folder_data.train, np.arange(36), 36)][0]
    assert np.array_equal(unaugmented, np.asarray(folder_data.train.x))


class Failing:
    """An array-like whose third read fails, as a cache file deleted during a run would."""

    shape, ndim, dtype = (10, 3), 2, np.dtype(np.float32)

    def __init__(self):
        self.reads = 0

    def __len__(self):
        return 10

    def __getitem__(self, idx):
        self.reads += 1
        if self.reads == 3:
            raise DataError("cache.npy: image cache shrank while reading")
        return np.zeros((len(idx), 3), np.float32)


def test_an_error_in_the_loader_thread_reaches_the_consumer():
    loader = BatchLoader(Split(Failing(), np.zeros(10)), np.arange(10), 2)
    assert loader.background
    got = []
    with pytest.raises(DataError, match="shrank"):
        with loader:
            for batch in loader:
                got.append(batch)
    assert len(got) == 2
    assert not loader_threads()


def test_a_consumer_that_stops_early_leaves_no_thread_behind(folder_data):
    before = len(loader_threads())
    with BatchLoader(folder_data.train, np.arange(36), 1, depth=2) as loader:
        for n, _ in enumerate(loader):
            if n == 1:
                assert len(loader_threads()) == before + 1
                break
    assert len(loader_threads()) == before


class Slow(Failing):
    def __getitem__(self, idx):
        time.sleep(0.05)
        return np.zeros((len(idx), 3), np.float32)


def test_the_time_spent_waiting_for_each_batch_is_reported():
    with BatchLoader(Split(Slow(), np.zeros(10)), np.arange(10), 5) as loader:
        waits = [b.waited for b in loader]
    assert len(waits) == 2 and waits[0] >= 0.04


def test_training_on_folder_data_reports_waits_and_ends_its_loader_however_it_ends(folder_data):
    from layerloom.engine.network import Network
    from layerloom.engine.project import fit_graph_to_data
    from layerloom.engine.training import DoneReport, StepReport, TrainConfig, train
    from tests.engine.test_augment import image_graph

    graph = image_graph()
    graph.set_attr("fc", "out_features", 3)
    fit_graph_to_data(graph, folder_data)
    folder_data.augment = Augmentation(flip=True)
    config = TrainConfig(epochs=3, batch_size=4, max_steps=5, histogram_every=0)
    reports = list(train(Network(graph, seed=0), folder_data, config))
    steps = [r for r in reports if isinstance(r, StepReport)]
    assert len(steps) == 5 and all(s.data_wait >= 0 for s in steps)
    assert isinstance(reports[-1], DoneReport) and not loader_threads()
    run = train(Network(graph, seed=0), folder_data, TrainConfig(epochs=3, batch_size=2))
    next(run), next(run)
    assert loader_threads()
    run.close()  # a consumer that drops the run
    assert not loader_threads()


@pytest.mark.parametrize("augment", [None, Augmentation(), Augmentation(flip=True)])
def test_a_batch_generator_is_seeded_only_for_augmentation(folder_data, augment, monkeypatch):
    from layerloom.engine.data import loader

    seeded = []
    monkeypatch.setattr(loader, "batch_seed", lambda *a: seeded.append(a)
                        or np.random.default_rng(list(a)))
    with BatchLoader(folder_data.train, np.arange(10), 5, augment, seed=1, epoch=2,
                     background=False) as batches:
        assert len(list(batches)) == 2
    assert seeded == ([(1, 2, 0), (1, 2, 1)] if augment is not None and augment.active else [])
