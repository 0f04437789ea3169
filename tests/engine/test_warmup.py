"""Compile ahead: which kernels a graph's warm-up needs is recorded (and shipped for the samples),
so progress can say "n of m" before anything compiles."""
import json
import subprocess
import sys
from pathlib import Path

from layerloom.engine import warmup
from layerloom.engine.data import load_data
from layerloom.engine.network import Network
from layerloom.engine.project import fit_graph_to_data
from layerloom.engine.serialize import load_project
from layerloom.engine.training import TrainConfig

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_a_fresh_process_records_the_kernels_a_warm_up_calls_from_python():
    out = subprocess.run([sys.executable, "-m", "layerloom.engine.warmup",
                          str(SAMPLES / "mlp_spirals.json")], capture_output=True, text=True,
                         timeout=600, check=True)
    key, found = json.loads(out.stdout.strip().splitlines()[-1])
    names = {name.rsplit(".", 1)[-1] for name, _sig in found}
    assert {"xent_forward", "xent_backward", "adam_update_kept", "all_finite"} <= names
    assert all(name.startswith("layerloom.engine.") for name, _sig in found)
    assert "float32" in found[0][1]
    project = load_project(SAMPLES / "mlp_spirals.json")
    net = Network(project.graph)
    assert key == warmup.structure_key(net, project.training["optimizer"])


def test_the_shipped_census_names_every_sample():
    shipped = warmup.Census(learned=None)
    for path in sorted(SAMPLES.glob("*.json")):
        project = load_project(path)
        if not project.data.get("spec", "").startswith(("spirals", "text", "seq", "bundled")):
            continue  # image folders are drawn on first use: not worth it here
        data = load_data(project.data["spec"])
        fit_graph_to_data(project.graph, data)
        key = warmup.structure_key(Network(project.graph), project.training.get("optimizer"))
        assert shipped.get(key), f"{path.name}: rebuild with python -m layerloom.engine.warmup --ship samples/*.json"


def test_the_structure_key_follows_what_decides_the_kernels():
    graph = load_project(SAMPLES / "mlp_spirals.json").graph
    key = warmup.structure_key(Network(graph), "adam")
    assert key == warmup.structure_key(Network(graph.copy()), "adamw")
    assert key != warmup.structure_key(Network(graph), "sgd")  # no Adam update kernel
    graph.set_attr("fc1", "out_features", 32)
    assert key != warmup.structure_key(Network(graph), "adam")


def test_a_learned_census_persists_and_only_grows(tmp_path):
    census = warmup.Census(learned=tmp_path / "c.json", shipped=tmp_path / "none.json")
    census.add("k", [("a.f", "(int64,)")])
    census.add("k", [("b.g", "(float32,)")])
    again = warmup.Census(learned=tmp_path / "c.json", shipped=tmp_path / "none.json")
    assert again.get("k") == [["a.f", "(int64,)"], ["b.g", "(float32,)"]]
    (tmp_path / "c.json").write_text('{"k": "not a list", "j": [["x", "y"]]}')
    assert warmup.Census(learned=tmp_path / "c.json", shipped=tmp_path / "n").get("k") is None


def test_progress_counts_the_census_kernels_that_are_ready():
    project = load_project(SAMPLES / "mlp_spirals.json")
    data = load_data("spirals?n=60")
    warmup.warm_up(Network(project.graph), data.train.x[:8], data.train.y[:8],
                   TrainConfig(batch_size=8))
    known = sorted(warmup.loaded())
    assert any(name.endswith("xent_forward") for name, _sig in known)
    made_up = ("layerloom.engine.kernels.losses.xent_forward", "(not, compiled)")
    tracker = warmup.Tracker([made_up, *known])
    try:
        p = tracker.progress()
    finally:
        tracker.close()
    assert (p.ready, p.total, p.compiled) == (len(known), len(known) + 1, 0)
    assert p.text().startswith(f"Compiling kernels: {len(known)} of {len(known) + 1} · ")
    unknown = warmup.Tracker(None)  # a graph never warmed up: what compiled so far
    unknown.close()
    assert unknown.progress().text().startswith("Compiling kernels: 0 done · ")
