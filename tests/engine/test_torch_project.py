"""The exported training project on CPUs: torchrun with 2 processes trains as one process with the
doubled batch, a stopped run resumes bit for bit, bf16 autocast trains, frozen nodes stay frozen
under DDP, every sample's project runs, and the run comes back into Layerloom."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.cli import main
from layerloom.engine.export.weights import load_weights
from layerloom.engine.runs import RunStore

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def export(graph: Path, out: Path, *extra) -> Path:
    assert main(["export", str(graph), str(out), "--project", *map(str, extra)]) == 0
    return out


def shrink(project: Path, n_train: int = 256, n_other: int = 64) -> Path:
    """A CI-sized subset of the project's data, beside it."""
    with np.load(project / "data.npz") as archive:
        arrays = {k: archive[k][:n_train if "train" in k else n_other] for k in archive.files}
    np.savez(project / "small.npz", **arrays)
    return project / "small.npz"


def run(project: Path, *args, launcher=(sys.executable,), timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, "train.py", *map(str, args)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc


def why(stderr: str) -> str:
    """The lines a failing process printed about its failure (a rank's C++ abort comes before
    the launcher's long traceback), then the end of its output."""
    said = [line for line in stderr.splitlines()
            if re.search(r"terminate|what\(\)|Error|error:", line)]
    return "\n".join(said[:20]) + "\n...\n" + stderr[-1500:]


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def lenet(tmp_path_factory) -> Path:
    project = export(SAMPLES / "lenet5.json", tmp_path_factory.mktemp("lenet") / "project")
    shrink(project)
    return project


def test_the_folder_has_what_a_gpu_machine_needs_and_no_layerloom_import(lenet):
    names = {p.name for p in lenet.iterdir()}
    assert {"model.py", "train.py", "graph.json", "weights.npz", "data.npz", "requirements.txt",
            "README.md"} <= names
    for code in ("model.py", "train.py"):
        imports = [line for line in (lenet / code).read_text().splitlines()
                   if line.startswith(("import ", "from "))]
        assert imports and not [line for line in imports if "layerloom" in line]
    readme = (lenet / "README.md").read_text()
    assert "torchrun --standalone --nproc_per_node" in readme and "--rdzv-endpoint" in readme
    assert "torch" in (lenet / "requirements.txt").read_text()


def test_two_processes_train_exactly_as_one_with_the_doubled_batch(lenet):
    one = run(lenet, "--data", "small.npz", "--batch-size", 32, "--epochs", 2, "--out", "one")
    assert one.returncode == 0, why(one.stderr)
    two = run(lenet, "--data", "small.npz", "--batch-size", 16, "--epochs", 2, "--out", "two",
              launcher=TORCHRUN)
    assert two.returncode == 0, why(two.stderr)
    a, b = metrics(lenet / "one"), metrics(lenet / "two")
    assert b["world_size"] == 2 and a["world_size"] == 1 and b["status"] == "finished"
    assert len(a["steps"]) == len(b["steps"]) == 16
    np.testing.assert_allclose([s[2] for s in b["steps"]], [s[2] for s in a["steps"]], rtol=1e-5)
    wa, wb = load_weights(lenet / "one" / "weights.npz"), load_weights(lenet / "two" / "weights.npz")
    assert set(wa) == set(wb)
    for key in wa:
        np.testing.assert_allclose(wb[key], wa[key], rtol=1e-4, atol=1e-5, err_msg=key)
    # the run comes back into Layerloom with its curves, graph and weights
    store = RunStore(lenet / "runs.sqlite")
    assert main(["runs", "--db", str(lenet / "runs.sqlite"), "import", str(lenet / "two")]) == 0
    (imported,) = store.runs()
    assert imported.source == "import" and imported.status == "finished"
    assert [s[2] for s in store.steps(imported.id)] == [s[2] for s in b["steps"]]
    assert len(store.epochs(imported.id)) == 2 and imported.test_accuracy == b["test_accuracy"]
    assert imported.settings["batch_size"] == 32  # the global batch
    assert Path(imported.weights_path) == (lenet / "two" / "weights.npz").resolve()
    graph = json.loads(store.graph_json(imported.id))
    assert {n["id"] for n in graph["nodes"]} == {n["id"] for n in json.loads(
        (lenet / "graph.json").read_text())["nodes"]}


def test_a_run_stopped_by_sigterm_resumes_bit_for_bit(lenet):
    args = ["--data", "small.npz", "--batch-size", 32, "--epochs", 6]
    whole = run(lenet, *args, "--out", "whole")
    assert whole.returncode == 0, why(whole.stderr)
    out = lenet / "stopped"
    proc = subprocess.Popen([sys.executable, "train.py", *map(str, args), "--out", str(out)],
                            cwd=lenet, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while not ((out / "checkpoint.pt").exists() and (out / "metrics.json").exists()) \
            and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint after the first epoch"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGSTOP)  # hold it mid-run while the preemption notice arrives
    assert metrics(out)["status"] == "running"
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, why(err)
    assert metrics(out)["status"] == "stopped"
    resumed = run(lenet, *args, "--out", out, "--resume")
    assert resumed.returncode == 0 and "resumed at epoch" in resumed.stdout, why(resumed.stderr)
    done, reference = metrics(out), metrics(lenet / "whole")
    assert done["steps"] == reference["steps"]  # bit for bit: same losses and rates, same order
    assert done["epochs"] == reference["epochs"]
    a, b = load_weights(out / "weights.npz"), load_weights(lenet / "whole" / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_bf16_autocast_on_the_cpu_trains_to_a_similar_loss(lenet):
    plain = run(lenet, "--data", "small.npz", "--epochs", 2, "--out", "fp32")
    amp = run(lenet, "--data", "small.npz", "--epochs", 2, "--out", "bf16", "--amp", "bf16")
    assert plain.returncode == 0 and amp.returncode == 0, why(amp.stderr)
    first, last = metrics(lenet / "bf16")["epochs"][0][1], metrics(lenet / "bf16")["epochs"][-1][1]
    reference = metrics(lenet / "fp32")["epochs"][-1][1]
    assert last < first and abs(last - reference) < 0.15 * reference


def test_frozen_nodes_stay_frozen_under_ddp(tmp_path):
    graph = json.loads((SAMPLES / "lenet5.json").read_text())
    frozen = next(n for n in graph["nodes"] if n["type"] == "Conv2D")
    frozen["frozen"] = True
    path = tmp_path / "frozen.json"
    path.write_text(json.dumps(graph))
    project = export(path, tmp_path / "project")
    shrink(project, 128, 32)
    proc = run(project, "--data", "small.npz", "--batch-size", 16, "--epochs", 1,
               launcher=TORCHRUN)
    assert proc.returncode == 0, why(proc.stderr)
    before, after = load_weights(project / "weights.npz"), load_weights(project / "out" / "weights.npz")
    for key in before:
        same = np.array_equal(before[key], after[key])
        assert same == key.startswith(frozen["id"] + "."), key


DATA_FREE = {"gradient_wrt_subset.json"}  # Parameters and an Objective: nothing to iterate over


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.json")
                                          if p.name not in DATA_FREE))
def test_every_sample_exports_a_project_that_trains(sample, tmp_path):
    project = export(SAMPLES / sample, tmp_path / "project")
    shrink(project, 64, 16)
    proc = run(project, "--data", "small.npz", "--epochs", 1, "--batch-size", 16)
    assert proc.returncode == 0, why(proc.stderr)
    done = metrics(project / "out")
    assert done["status"] == "finished" and done["steps"] and np.isfinite(done["steps"][-1][2])
    assert set(load_weights(project / "out" / "weights.npz")) == set(load_weights(
        project / "weights.npz"))


@pytest.mark.parametrize("sample", sorted(DATA_FREE))
def test_a_graph_without_data_is_refused_as_a_project_in_one_line(sample, tmp_path, capsys):
    assert main(["export", str(SAMPLES / sample), str(tmp_path / "project"), "--project"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trains without data" in err, err
    assert not (tmp_path / "project").exists()  # nothing written
