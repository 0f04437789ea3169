"""When training goes wrong: an empty data set, a loss that runs away while staying finite, NaN
in the data (named as bad data, not the learning rate), and the CLI keeping the last good weights."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.data import DataError, Dataset, Split
from layerloom.engine.network import Network
from layerloom.engine.training import (Diverged, DoneReport, Exploding, GROWTH_STEPS, StepReport,
                                       TrainConfig, explosion, train)

from .test_graph import mlp
from .test_training import blobs

ROOT = Path(__file__).resolve().parents[2]
SPIRALS = ROOT / "samples" / "mlp_spirals.json"


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerloom.engine.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_an_empty_data_set_is_one_line_not_a_division_by_zero():
    empty = Split(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    data = Dataset("nothing", empty, empty, empty, class_names=["a", "b", "c"])
    with pytest.raises(DataError) as err:
        list(train(Network(mlp()), data, TrainConfig()))
    assert str(err.value) == ("data 'nothing' has no training samples: choose a larger data set "
                              "or a smaller validation fraction")


def test_a_loss_a_million_times_its_first_value_is_a_warning_and_training_goes_on():
    reports = list(train(Network(mlp(), seed=0), blobs(), TrainConfig(lr=1e6, epochs=2)))
    warnings = [r for r in reports if isinstance(r, Exploding)]
    assert isinstance(reports[-1], DoneReport) and len(warnings) == 1
    first = next(r for r in reports if isinstance(r, StepReport)).loss
    assert warnings[0].loss > 1e6 * first
    assert "over a million times its first value" in warnings[0].message
    assert "learning rate (1e+06) is probably too high" in warnings[0].message


def test_the_rules_of_a_runaway_loss():
    rising = [1.0 * 1.1**k for k in range(GROWTH_STEPS + 1)]  # ×2.6 over 10 steps, every one up
    assert "rose for 10 steps in a row, from 1 to 2.59" in explosion(rising, 0.1)
    assert explosion(rising[:-1], 0.1) is None  # nine rises are not enough
    assert explosion([1.0 + 0.001 * k for k in range(20)], 0.1) is None  # creeping, not doubling
    noisy = list(np.random.default_rng(0).uniform(0.5, 1.5, 200))
    assert all(explosion(noisy[:k], 0.1) is None for k in range(1, 200))
    assert explosion([0.0, 5.0], 0.1) is None  # a zero first loss has no multiple
    assert "over a million" in explosion([2.0, 3e6], 0.1)


def test_nan_in_the_data_is_named_as_bad_data_not_the_learning_rate():
    data = blobs()
    data.train.x[[5, 40]] = np.nan
    reports = list(train(Network(mlp(), seed=0), data, TrainConfig(batch_size=600)))
    last = reports[-1]
    assert isinstance(last, Diverged) and last.node_id == "x" and last.phase == "forward"
    assert "the data holds NaN or inf (training samples 5, 40): bad data" in last.message
    assert "learning rate (" not in last.message


def test_the_cli_writes_nothing_when_the_first_update_diverges(tmp_path):
    # (test_cli's absurd learning rate checks the last good weights written after a later step)
    proc = cli("train", SPIRALS, "--optimizer", "sgd", "--lr", 1e300, "--save-weights",
               tmp_path / "w.npz")
    assert proc.returncode == 1 and not (tmp_path / "w.npz").exists()
    lines = [line for line in proc.stderr.splitlines()[1:]  # after "training ... on ..."
             if not line.startswith("compiling kernels")]  # a slow first step says so: load
    assert lines == [f"note: no weights written to {tmp_path / 'w.npz'}: training diverged at "
                     f"its first step, before any update",
                     "error: training diverged at step 1: the update made 'fc1.weight' "
                     "non-finite: the learning rate (1e+300) is probably too high"]


def test_the_cli_warns_of_a_loss_that_explodes_without_a_nan(tmp_path):
    proc = cli("train", SPIRALS, "--lr", 1e6, "--epochs", 1, "--metrics-json", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert "warning: at step" in proc.stderr and "over a million times its first value" in proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["warnings"]
