"""The headless CLI, run as a person would: a subprocess, reading its output and files."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.data.idx import encode_idx, write_idx
from layerloom.engine.export.weights import load_weights
from layerloom.engine.network import Network
from layerloom.engine.serialize import load_project

ROOT = Path(__file__).resolve().parents[2]
LENET, SPIRALS = ROOT / "samples" / "lenet5.json", ROOT / "samples" / "mlp_spirals.json"


def cli(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerloom.engine.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def assert_clean_failure(proc, *words) -> list[str]:
    """Exit 1, no traceback, and the problems as ``error:`` lines containing ``words``."""
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert errors, proc.stderr
    for w in words:
        assert any(w in ln for ln in errors), (w, proc.stderr)
    return errors


def graph_file(tmp_path, nodes, edges, **extra) -> Path:
    data = {"format": "layerloom-graph", "version": 1, "nodes": nodes, "edges": edges, **extra}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    return path


def test_check_prints_a_model_summary_of_lenet5():
    proc = cli("check", LENET)
    assert proc.returncode == 0, proc.stderr
    rows = {ln.split()[0]: ln.split() for ln in proc.stdout.splitlines()[2:-2]}
    assert rows["conv1"][1:] == ["Conv2D", "6×28×28", "156"]
    assert rows["pool2"][1:] == ["MaxPool2D", "16×5×5", "0"]
    assert rows["flatten"][1:] == ["Flatten", "400", "0"]
    assert rows["fc1"][1:] == ["Dense", "120", "48,120"]
    assert rows["loss"][1:] == ["CrossEntropyLoss", "scalar", "0"]
    assert "total parameters: 61,706 (trainable 61,706, frozen 0)" in proc.stdout


def test_check_marks_frozen_nodes(tmp_path):
    data = json.loads(SPIRALS.read_text())
    next(n for n in data["nodes"] if n["id"] == "fc1")["frozen"] = True
    (tmp_path / "f.json").write_text(json.dumps(data))
    proc = cli("check", tmp_path / "f.json")
    fc1 = next(ln for ln in proc.stdout.splitlines() if ln.startswith("fc1 "))
    assert fc1.split()[-1] == "frozen" and "frozen 192)" in proc.stdout


def test_check_lists_every_problem_of_an_invalid_graph_and_exits_1(tmp_path):
    nodes = [{"id": "image", "type": "Input", "attrs": {"shape": [1, 28, 28]}},
             {"id": "fc", "type": "Dense", "attrs": {"out_features": 10}},
             {"id": "other", "type": "Dense", "attrs": {}},
             {"id": "loss", "type": "CrossEntropyLoss"}]
    edges = [{"from": ["image", "y"], "to": ["fc", "x"]},
             {"from": ["fc", "y"], "to": ["loss", "input"]}]
    errors = assert_clean_failure(cli("check", graph_file(tmp_path, nodes, edges)),
                                  "add Flatten", "'other': input 'x' is not connected")
    assert len(errors) == 3  # fc's shape, other's input, loss's target


@pytest.mark.parametrize("text, words", [
    ('{"format": "layerloom-graph", "version": 1, "nodes": [', "not valid JSON (line 1"),
    ('{"format": "layerloom-graph", "version": 7, "nodes": []}', "version 7 is not supported"),
    ('{"format": "layerloom-graph", "version": 1, "nodes": [{"id": "a b", "type": "Dense"}]}',
     "must be a Python identifier"),
    ('{"format": "layerloom-graph", "version": 1, "nodes": [{"id": "a", "type": "Nope"}]}',
     "unknown layer type 'Nope'"),
])
def test_malformed_graph_files_give_one_line_and_exit_1(tmp_path, text, words):
    (tmp_path / "bad.json").write_text(text)
    for command in ("check", "train"):
        errors = assert_clean_failure(cli(command, tmp_path / "bad.json"), words)
        assert len(errors) == 1


def test_missing_graph_file_and_empty_graph_are_one_line(tmp_path):
    assert_clean_failure(cli("check", tmp_path / "absent.json"), "no such file")
    assert_clean_failure(cli("check", graph_file(tmp_path, [], [])), "the graph is empty")


def test_corrupt_idx_folder_gives_one_line_and_exit_1(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, n in (("train", 40), ("t10k", 10)):
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28), np.uint8))
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    raw = encode_idx(rng.integers(0, 255, (40, 28, 28), np.uint8))
    (folder / "train-images-idx3-ubyte.gz").write_bytes(raw[:-100])  # raw, truncated, ".gz" name
    errors = assert_clean_failure(cli("train", SPIRALS, "--data", f"idx:{folder}"), "truncated")
    assert len(errors) == 1 and "train-images-idx3-ubyte.gz" in errors[0]


def test_train_mlp_on_spirals_learns_and_writes_metrics_and_weights(tmp_path):
    metrics, weights = tmp_path / "m.json", tmp_path / "w.safetensors"
    proc = cli("train", SPIRALS, "--metrics-json", metrics, "--save-weights", weights)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(metrics.read_text())
    epochs = m["config"]["epochs"]
    assert m["data"] == "spirals" and m["dataset"]["classes"] == 3 and len(m["epochs"]) == epochs
    assert sum(1 for ln in proc.stdout.splitlines() if ln.startswith("epoch ")) == epochs
    assert set(m["epochs"][0]) >= {"epoch", "train_loss", "val_loss", "val_accuracy"}
    losses = m["step_losses"]
    assert len(losses) == m["steps"] > 0
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:20])
    assert m["epochs"][-1]["train_loss"] < m["epochs"][0]["train_loss"]
    assert m["test_accuracy"] > 0.9 and m["samples_per_sec"] > 0 and not m["stopped"]
    assert f"test accuracy {100 * m['test_accuracy']:.2f}%" in proc.stdout
    net = Network(load_project(SPIRALS).graph)
    net.load_params(load_weights(weights))  # every key and shape fits the graph


def test_flags_override_the_files_training_settings(tmp_path):
    proc = cli("train", SPIRALS, "--epochs", 2, "--batch-size", 100, "--lr", 0.05,
               "--optimizer", "momentum", "--seed", 3, "--max-steps", 10,
               "--metrics-json", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    assert {k: m["config"][k] for k in ("epochs", "batch_size", "lr", "optimizer", "seed")} == \
        {"epochs": 2, "batch_size": 100, "lr": 0.05, "optimizer": "momentum", "seed": 3}
    assert m["steps"] == 10 and len(m["step_losses"]) == 10


def test_train_lenet5_on_the_bundled_set_makes_the_loss_fall(tmp_path):
    proc = cli("train", LENET, "--data", "bundled", "--epochs", 1,
               "--metrics-json", tmp_path / "m.json", "--save-weights", tmp_path / "w.npz")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    losses = m["step_losses"]
    assert len(losses) == m["steps"] == -(-5400 // 64)
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])
    assert m["test_accuracy"] > 0.5 and m["dataset"]["sample_shape"] == [1, 28, 28]
    assert load_weights(tmp_path / "w.npz")["conv1.weight"].shape == (6, 1, 5, 5)


def test_data_that_does_not_fit_the_graph_is_a_clear_error():
    assert_clean_failure(cli("train", LENET, "--data", "spirals"), "samples of 2", "cannot take")
    assert_clean_failure(cli("train", SPIRALS, "--data", "bundled"), "add Flatten")
    assert_clean_failure(cli("train", SPIRALS, "--data", "moons?classes=9"), "unknown option")
    assert_clean_failure(cli("train", SPIRALS, "--data", "spirals?classes=5"),
                         "gives 3 class scores", "has 5 classes")
    assert_clean_failure(cli("train", SPIRALS, "--data", "mnist"), "use one of bundled, idx:DIR")


def test_a_run_that_diverges_says_so_and_exits_1(tmp_path):
    relu = tmp_path / "relu.json"  # unbounded activations, so an absurd step overflows
    relu.write_text(SPIRALS.read_text().replace('"Tanh"', '"ReLU"'))
    proc = cli("train", relu, "--optimizer", "sgd", "--lr", 1e8, "--epochs", 3,
               "--metrics-json", tmp_path / "m.json", "--save-weights", tmp_path / "w.npz")
    assert_clean_failure(proc, "diverged", "learning rate")
    diverged = json.loads((tmp_path / "m.json").read_text())["diverged"]
    assert diverged["node"] and diverged["step"] > 0
    # The last good weights are written, as the window keeps them, and the note says which.
    weights = load_weights(tmp_path / "w.npz")
    assert weights and all(np.isfinite(v).all() for v in weights.values())
    assert f"the last good ones: {diverged['step']:,} steps" in proc.stderr


def test_bad_flags_are_refused_before_training(tmp_path):
    assert_clean_failure(cli("train", SPIRALS, "--save-weights", tmp_path / "w.pt"), ".npz or .safetensors")
    proc = cli("train", SPIRALS, "--epochs", 0)
    assert proc.returncode == 2 and "must be at least 1" in proc.stderr


def test_ctrl_c_stops_cleanly_and_still_saves(tmp_path):
    weights, metrics = tmp_path / "w.npz", tmp_path / "m.json"
    proc = subprocess.Popen([sys.executable, "-m", "layerloom.engine.cli", "train", str(SPIRALS),
                             "--epochs", "100000", "--save-weights", str(weights),
                             "--metrics-json", str(metrics)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("epoch 1/100000")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err and "test accuracy" in out
    assert json.loads(metrics.read_text())["stopped"] is True
    assert "fc1.weight" in load_weights(weights)


def test_cli_never_imports_qt():
    code = ("import sys; from layerloom.engine.cli import main; rc = main(['check', %r]); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', "
            "'pyqtgraph') or m.startswith('layerloom.gui')]; print(rc, bad)" % str(SPIRALS))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ}, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stderr


def test_train_takes_a_learning_rate_schedule_and_refuses_an_unknown_one(tmp_path):
    proc = cli("train", SPIRALS, "--data", "spirals?n=200", "--max-steps", 3, "--schedule",
               "cosine", "--metrics-json", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert "(cosine)" in proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["config"]["schedule"] == "cosine"
    data = json.loads(SPIRALS.read_text())
    data["training"] = dict(data.get("training", {}), schedule="linear")
    (tmp_path / "bad.json").write_text(json.dumps(data))
    assert_clean_failure(cli("train", tmp_path / "bad.json", "--max-steps", 3),
                         "training.schedule: must be one of constant, cosine, step, got 'linear'")


def test_train_computes_no_histograms_since_nothing_on_the_command_line_plots_them(tmp_path,
                                                                                    monkeypatch):
    from layerloom.engine import cli as cli_module

    calls = []
    real = np.histogram
    monkeypatch.setattr(np, "histogram", lambda *a, **k: calls.append(1) or real(*a, **k))
    code = cli_module.main(["train", str(SPIRALS), "--max-steps", "30", "--runs-db",
                            str(tmp_path / "runs.db"), "--metrics-json", str(tmp_path / "m.json")])
    assert code == 0 and calls == []
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["steps"] == 30 and m["config"]["histogram_every"] == 25  # the file's setting stays
