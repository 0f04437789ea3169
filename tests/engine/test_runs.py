"""The run store: what a run records, crash safety, migrations, comparisons, sweeps and the
learning-rate range test, through the engine's API and the real command line."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.cli import main
from layerloom.engine.data import load_data
from layerloom.engine.graph_diff import diff_graphs
from layerloom.engine.lr_finder import LRRange, lr_range_test
from layerloom.engine.network import Network
from layerloom.engine.run_recorder import RunRecorder, recorded
from layerloom.engine.runs import MIGRATIONS, SCHEMA_VERSION, RunMeta, RunStore, RunStoreError
from layerloom.engine.serialize import load_project
from layerloom.engine.training import Diverged, TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
SPIRALS = ROOT / "samples" / "mlp_spirals.json"


def train_cli(db, *extra):
    return main(["train", str(SPIRALS), "--runs-db", str(db), "--data", "spirals?n=300",
                 "--epochs", "2", *map(str, extra)])


def test_a_cli_run_records_everything_a_comparison_needs(tmp_path, capsys):
    db, weights = tmp_path / "runs.sqlite", tmp_path / "w.npz"
    assert train_cli(db, "--save-weights", weights, "--run-name", "first") == 0
    store = RunStore(db)
    (run,) = store.runs()
    assert (run.name, run.status, run.source, run.seed) == ("first", "finished", "cli", 0)
    assert run.settings["lr"] == 0.01 and run.settings["epochs"] == 2
    assert run.data_spec == "spirals?n=300" and run.graph_path == str(SPIRALS.resolve())
    assert run.machine and run.threads >= 1 and run.ended >= run.started
    assert run.weights_path == str(weights.resolve()) and weights.exists()
    assert json.loads(store.graph_json(run.id))["nodes"][0]["id"] == "points"
    steps, epochs = store.steps(run.id), store.epochs(run.id)
    assert len(steps) == run.steps > 0 and [s[0] for s in steps] == list(range(run.steps))
    assert all(s[4] == pytest.approx(0.01) for s in steps)  # the learning rate of each step
    assert [e[0] for e in epochs] == [0, 1] and run.best_val_accuracy is not None
    assert run.test_accuracy is not None and run.test_loss is not None
    norms = store.grad_norms(run.id)
    assert set(norms) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight",
                          "fc3.bias"}
    count, mean, high, last = norms["fc1.weight"]
    assert count == run.steps and 0 < mean <= high and last > 0


def test_no_record_leaves_the_store_alone(tmp_path):
    db = tmp_path / "runs.sqlite"
    assert train_cli(db, "--no-record") == 0
    assert RunStore(db).runs() == []


def test_a_killed_training_process_leaves_a_readable_store_with_the_run_interrupted(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "layerloom", "train", str(SPIRALS),
                             "--runs-db", str(db), "--epochs", "100000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        if con.execute("SELECT COUNT(*) FROM steps").fetchone()[0] >= 100:
                            break
                except sqlite3.OperationalError:
                    continue  # the tables are not there yet
        else:
            pytest.fail("the run recorded no steps")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    store = RunStore(db)
    (run,) = store.runs()
    assert run.status == "interrupted" and "without closing" in run.stop_reason
    assert len(store.steps(run.id)) >= 100


def test_an_older_database_migrates_and_keeps_its_runs(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(MIGRATIONS[0] + ";PRAGMA user_version = 1;")
    con.execute("INSERT INTO runs (name, status, source, started, graph_json, graph_hash, "
                "settings_json) VALUES ('old run', 'finished', 'cli', 1.0, '{}', 'h', '{}')")
    con.commit()
    con.close()
    store = RunStore(db)
    assert store.version == SCHEMA_VERSION > 1
    (run,) = store.runs()
    assert (run.name, run.tags, run.note, run.sweep_id) == ("old run", "", "", None)
    store.update(run.id, tags="baseline", note="before BatchNorm")
    assert store.run(run.id).tags == "baseline"


def test_a_newer_or_damaged_database_is_one_line(tmp_path):
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(RunStoreError, match="newer Layerloom"):
        RunStore(newer)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(RunStoreError, match="not a usable run database"):
        RunStore(junk)


def test_a_diverged_or_failed_run_says_how_it_ended(tmp_path):
    store = RunStore(tmp_path / "r.sqlite")
    meta = RunMeta(name="x", graph_json="{}", settings={})
    rec = RunRecorder(store, meta)
    list(recorded(iter([Diverged(4, "fc2", "backward", "overflow")]), rec))
    run = store.run(rec.run_id)
    assert run.status == "diverged" and "fc2" in run.stop_reason and "step 5" in run.stop_reason

    def boom():
        yield from ()
        raise RuntimeError("the data went away")

    rec = RunRecorder(store, meta)
    with pytest.raises(RuntimeError):
        list(recorded(boom(), rec))
    assert store.run(rec.run_id).status == "failed"
    assert store.run(rec.run_id).stop_reason == "the data went away"


def test_the_graph_diff_names_exactly_the_changed_nodes():
    a = json.loads(SPIRALS.read_text())
    b = json.loads(SPIRALS.read_text())
    b["nodes"][1]["attrs"]["out_features"] = 128
    b["nodes"][3]["frozen"] = True
    b["nodes"][2]["pos"] = [9, 9]  # layout only
    b["nodes"].append({"id": "drop", "type": "Dropout", "attrs": {}})
    b["edges"].append({"from": ["tanh2", "y"], "to": ["drop", "x"]})
    d = diff_graphs(a, b)
    assert set(d.changed) == {"fc1", "fc2"} and d.added == ("drop",) and not d.removed
    assert d.changed["fc1"] == (("attrs.out_features", 64, 128),)
    assert d.touched_nodes == {"fc1", "fc2", "drop", "tanh2"}
    assert diff_graphs(a, a).empty


def test_a_two_by_two_grid_sweep_records_four_runs_and_resumes_only_what_did_not_end(tmp_path,
                                                                                      capsys):
    db = tmp_path / "runs.sqlite"
    assert main(["sweep", str(SPIRALS), "--grid", "lr=0.003,0.03", "--grid", "batch_size=16,64",
                 "--data", "spirals?n=200", "--runs-db", str(db)]) == 0
    store = RunStore(db)
    runs = store.runs()
    assert len(runs) == 4 and len({r.sweep_id for r in runs}) == 1
    got = sorted((r.settings["lr"], r.settings["batch_size"]) for r in runs)
    assert got == [(0.003, 16), (0.003, 64), (0.03, 16), (0.03, 64)]
    assert all(r.status == "finished" and r.source == "sweep" for r in runs)
    sweep = runs[0].sweep_id
    with store.db:  # as if the machine went down during the third combination
        store.db.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", (runs[2].id,))
    assert main(["sweep", "--resume", sweep, "--runs-db", str(db)]) == 0
    again = RunStore(db).runs(sweep_id=sweep)
    assert len(again) == 5 and again[-1].tags == runs[2].tags
    assert again[-1].settings["lr"] == runs[2].settings["lr"]


def test_a_sweep_specification_that_cannot_run_is_one_line(tmp_path, capsys):
    assert main(["sweep", str(SPIRALS), "--grid", "learning=1,2",
                 "--runs-db", str(tmp_path / "r.sqlite")]) == 1
    assert "unknown setting 'learning'" in capsys.readouterr().err
    assert main(["sweep", str(SPIRALS), "--grid", "lr=fast",
                 "--runs-db", str(tmp_path / "r.sqlite")]) == 1
    assert "not a float" in capsys.readouterr().err


def test_the_lr_range_test_restores_the_weights_bit_for_bit_and_suggests_a_rate():
    project = load_project(SPIRALS)
    data = load_data("spirals?n=400", val_fraction=0.1, seed=0)
    net = Network(project.graph, seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    rng_before = net.rng.bit_generator.state
    reports = list(lr_range_test(net, data, "adam", 32, 1e-5, 3.0, 80))
    result = reports[-1]
    assert isinstance(result, LRRange) and len(reports) == len(result.lrs) + 1
    assert all(np.array_equal(net.params[k], v) for k, v in before.items())
    assert net.rng.bit_generator.state == rng_before
    assert result.lrs == tuple(sorted(result.lrs)) and result.lrs[0] == pytest.approx(1e-5)
    assert result.suggestion is not None and 1e-5 < result.suggestion < 3.0
    # The suggested rate trains: a few epochs beat the starting loss clearly.
    config = TrainConfig(lr=result.suggestion, epochs=3, batch_size=32)
    losses = [r.loss for r in train(net, data, config) if hasattr(r, "grad_norms")]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_runs_list_show_compare_and_export_from_the_command_line(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    assert train_cli(db) == 0 and train_cli(db, "--lr", "0.003") == 0
    capsys.readouterr()
    assert main(["runs", "--db", str(db), "list"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["runs", "--db", str(db), "compare", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "training.lr: 0.01 -> 0.003" in out and "same structure" in out
    csv_path = tmp_path / "m.csv"
    assert main(["runs", "--db", str(db), "export", "1", "2", "--out", str(csv_path)]) == 0
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("run,name,kind") and sum(r.startswith("2,") for r in rows) > 2
    assert main(["runs", "--db", str(db), "show", "7"]) == 1
    assert "no run 7" in capsys.readouterr().err
    assert main(["runs", "--db", str(db), "delete", "1"]) == 0
    assert [r.id for r in RunStore(db).runs(include_deleted=True)] == [2]
