"""The language-model samples learn language, not just letter frequencies: a CI-sized run of each
(its own graph, optimizer, learning rate, schedule and batch; a shorter text and fewer steps)
must beat what a model that knows only how often each character occurs can reach.

The frequency-only bounds are computed from the data: a next-character model that ignores
context scores at best the entropy of the characters' frequencies (about 2.9 nats on the King
James Bible, against ln 63 = 4.1 for a uniform guess); a masked-LM that ignores context is right
at best as often as the most frequent character (the space, about 19 % of hidden characters).
The samples' full runs (README, "How long until it writes words") go far beyond these bounds;
the short runs here must already clear them by a margin that needs context.
"""
import math

import numpy as np
import pytest

from layerloom.engine.data import load_data
from layerloom.engine.data.masking import IGNORE_INDEX
from layerloom.engine.network import Network
from layerloom.engine.paths import SAMPLES
from layerloom.engine.project import fit_graph_to_data, load_project
from layerloom.engine.threads import engine_threads
from layerloom.engine.training import DoneReport, TrainConfig, train

SHORT = "text?seq_len=64&chars=300000"


def unigram_entropy(y: np.ndarray, classes: int) -> float:
    """Cross-entropy (nats) of the best context-free guess: the targets' own frequencies."""
    counts = np.bincount(y[y != IGNORE_INDEX].ravel(), minlength=classes).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def short_run(name: str, spec: str, steps: int):
    """``name`` trained at its own settings for ``steps`` steps on ``spec`` (its cosine schedule
    ends with them): (data, the test report)."""
    project = load_project(SAMPLES / name)
    data = load_data(spec, seed=project.data.get("seed", 0))
    fit_graph_to_data(project.graph, data)
    config = TrainConfig.from_dict({**project.training, "epochs": 1, "max_steps": steps,
                                    "histogram_every": 0})
    net = Network(project.graph, seed=config.seed)
    with engine_threads():
        reports = list(train(net, data, config))
    assert isinstance(reports[-1], DoneReport) and reports[-1].steps == steps
    return data, reports[-1]


@pytest.mark.parametrize("name", ["tiny_gpt.json", "char_lstm.json"])
def test_a_short_run_of_a_character_model_beats_any_frequency_only_model(name):
    data, done = short_run(name, SHORT, steps=100)
    frequency_only = unigram_entropy(data.test.y, data.num_classes)
    assert 2.7 < frequency_only < 3.1  # what the bound below is measured against
    assert math.log(data.num_classes) > 4  # a fresh model starts here
    assert done.test_loss < frequency_only - 0.5, (done.test_loss, frequency_only)
