"""``layerloom bench``: runs the PyTorch comparison, or says how to install PyTorch."""
import json

import numpy as np
import pytest

from layerloom.engine import cli, cli_bench


def test_without_torch_it_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(cli_bench, "torch_available", lambda: False)
    assert cli.main(["bench", "--quick"]) == 1
    err = capsys.readouterr().err
    assert "pip install torch==2.13.0" in err and err.count("\n") == 1


def test_quick_run_of_one_row_writes_the_table_and_json(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--threads", "1", "--rows", "mlp_infer",
                     "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["row"] == "mlp_infer" and row["unit"] == "µs" and result["threads"] == 1
    assert row["ratio"] == pytest.approx(row["torch"]["median"] / row["layerloom"]["median"])
    assert 0 < row["layerloom"]["min"] <= row["layerloom"]["median"] <= row["layerloom"]["max"]
    assert result["sgemm"]["peak"] > 1
    assert "| MLP infer b1 | µs |" in capsys.readouterr().out


def test_processes_give_each_rows_median_ratio_over_fresh_processes(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--threads", "1", "--rows", "mlp_infer",
                     "--processes", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert result["processes"] == 3 and len(row["ratios"]) == 3
    assert row["ratio"] == sorted(row["ratios"])[1]
    assert row["layerloom"]["min"] <= row["layerloom"]["median"] <= row["layerloom"]["max"]
    assert "Medians over 3 processes" in capsys.readouterr().out


def test_a_failing_process_ends_the_run_with_one_line(monkeypatch, capsys):
    import subprocess

    pytest.importorskip("torch")
    from tests.benchmarks import bench_train

    monkeypatch.setattr(subprocess, "run", lambda cmd: subprocess.CompletedProcess(cmd, 3))
    with pytest.raises(SystemExit) as stop:
        bench_train.main(["--quick", "--rows", "mlp_infer", "--processes", "2"])
    assert str(stop.value) == ("error: benchmark process 1 of 2 exited with code 3 "
                               "(its output is above)")


def test_combined_rows_take_the_median_of_each_figure():
    from tests.benchmarks import bench_train

    def one(ratio, ll, pt, peak):
        row = {"row": "lenet_train", "label": "L", "unit": "samples/s", "target": 2.0,
               "ratio": ratio, "met": ratio >= 2.0, "layerloom": {"median": ll},
               "torch": {"median": pt}}
        return {"threads": 2, "quick": False, "sgemm": {"peak": peak, "numpy": peak, "torch": peak},
                "rows": [row],
                "peak_share": ratio / 10}
    merged = bench_train.combine([one(1.9, 10, 5.3, 200), one(2.2, 11, 5, 220),
                                  one(2.1, 12, 5.7, 210)])
    (row,) = merged["rows"]
    assert row["ratio"] == 2.1 and row["met"] and row["ratios"] == [1.9, 2.2, 2.1]
    assert row["layerloom"] == {"median": 11, "min": 10, "max": 12}
    assert row["torch"] == {"median": 5.3, "min": 5, "max": 5.7}
    assert merged["sgemm"]["peak"] == 210 and merged["peak_share"] == pytest.approx(0.21)
    assert "2.10× (1.90, 2.20, 2.10)" in bench_train.table(merged)


def test_unknown_row_is_refused(capsys):
    pytest.importorskip("torch")
    with pytest.raises(SystemExit):
        cli.main(["bench", "--rows", "nonsense"])
    assert "unknown row 'nonsense'" in capsys.readouterr().err


def test_windows_are_sized_after_the_warm_up_not_by_it():
    """A first call that loads kernels (slow) must not shrink every timed window to a step or
    two: that made the batch-1 rows time single cold calls."""
    import time

    from tests.benchmarks import bench_train

    calls = []

    def step():
        calls.append(1)
        time.sleep(0.2 if len(calls) == 1 else 0.001)

    count = bench_train.calibrate(step, 0.05)
    assert count >= 20  # about 50 steps of 1 ms; sized from the first call it would be 1


@pytest.mark.parametrize("name", ["vgg", "strided", "s2cnn", "cnn5", "cnn5_deep", "resnet",
                                  "resnet_s2", "resnet4", "avgcnn", "bottleneck"])
def test_each_convnet_row_is_its_pytorch_twin(name):
    """The convnet rows' Graphs and PyTorch modules: the same tensors (parameters and BatchNorm's
    running statistics, by shape) and the same logits shape, so the ratios compare like with
    like."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from layerloom.engine.network import Network
    from tests.benchmarks import conv_models

    graph = conv_models.GRAPHS[name](loss=False)
    net, twin = Network(graph, seed=0), conv_models.torch_model(name)
    ours = sorted(tuple(v.shape) for v in net.params.values())
    theirs = sorted(tuple(v.shape) for k, v in twin.state_dict().items()
                    if not k.endswith("num_batches_tracked"))
    assert ours == theirs
    x, _ = conv_models.batch(name, 2, 0, np.random.default_rng(0))
    logits = net.forward({"image": x})[list(graph.nodes)[-1]]
    assert logits.shape == tuple(twin(torch.from_numpy(x)).shape) == (2, 10)


def test_the_layer_sweep_times_one_convolution_on_both_sides():
    """bench_conv_layers runs the Conv2D layer's forward and backward and PyTorch's on the same
    shape (a 5×5 layer on a 4×4 map: the Winograd route this sweep found)."""
    pytest.importorskip("torch")
    from tests.benchmarks import bench_conv_layers

    ours, theirs = bench_conv_layers.compare(5, 1, 16, 16, 4, 2, 0.01)
    assert ours > 0 and theirs > 0


def test_family_probes_build_the_same_convnet_on_both_sides():
    """bench_family's specs: the Graph and the PyTorch module read the same layers (their Dense
    sizes come from ``_flat_size``, which a wrong map side would break on PyTorch's side)."""
    torch = pytest.importorskip("torch")
    from layerloom.engine.network import Network
    from tests.benchmarks import bench_family

    for name, spec in bench_family.CONVNETS.items():
        net = Network(bench_family.convnet_graph(spec), seed=0)
        ours = [tuple(v.shape) for v in net.params.values()]
        module = bench_family.convnet_torch(spec)
        theirs = [tuple(v.shape) for k, v in module.state_dict().items()  # BatchNorm's
                  if not k.endswith("num_batches_tracked")]  # running statistics too
        assert sorted(ours) == sorted(theirs), name
        shape = bench_family.parse(spec).shape
        assert module(torch.zeros(2, *shape)).shape == (2, 10), name
        x = np.zeros((2, *shape), np.float32)
        out = net.forward({"image": x, "label": np.zeros(2, np.int64)}, keep=["fc"])
        assert out["fc"].shape == (2, 10), name
    assert bench_family.parse("in:1x28x28 b:128 3x3/2:16bn 5x5/1:8v gap") == bench_family.Convnet(
        (1, 28, 28), 128, (("conv", 3, 2, 16, True, True), ("conv", 5, 1, 8, False, False),
                           ("gap",)))


def test_family_processes_report_each_probes_median_ratio(tmp_path, capsys):
    """``bench_family --processes``: the issue's measure (medians over fresh processes), each
    process's ratio kept beside it."""
    pytest.importorskip("torch")
    from tests.benchmarks import bench_family

    out = tmp_path / "family.json"
    assert bench_family.main(["--quick", "--threads", "1", "--probes", "s2_5x5_few",
                              "--processes", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (probe,) = result["probes"]
    assert result["processes"] == 2 and len(probe["ratios"]) == 2
    assert probe["ratio"] == pytest.approx(sum(probe["ratios"]) / 2)
    assert probe["met"] == (probe["ratio"] >= 1.5) and probe["layerloom"] > 0
    assert "| s2_5x5_few |" in capsys.readouterr().out


def test_family_combine_takes_the_median_of_each_figure():
    from tests.benchmarks import bench_family

    def one(ratio, ll, pt):
        return {"threads": 1, "quick": False, "probes": [
            {"probe": "allconv", "layerloom": ll, "torch": pt, "ratio": ratio, "target": 1.5,
             "met": ratio >= 1.5}]}
    merged = bench_family.combine([one(1.4, 10, 14), one(1.6, 12, 19), one(1.55, 11, 17)])
    (probe,) = merged["probes"]
    assert probe["ratio"] == 1.55 and probe["met"] and probe["ratios"] == [1.4, 1.6, 1.55]
    assert probe["layerloom"] == 11 and probe["torch"] == 17 and merged["processes"] == 3
    assert "| allconv | 11.0 | 17.0 | 1.55× (1.40, 1.60, 1.55) | ≥ 1.5× met |" == \
        bench_family._line(probe)


def test_a_failing_family_process_ends_the_run_with_one_line(monkeypatch):
    import subprocess

    from tests.benchmarks import bench_family

    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 3))
    with pytest.raises(SystemExit) as stop:
        bench_family.main(["--quick", "--probes", "allconv", "--processes", "2"])
    assert str(stop.value) == "error: probe process 1 of 2 exited with code 3"


def test_epoch_comparison_gives_pytorch_its_thread_count_back(monkeypatch):
    """Layerloom's first epoch starts numba's OpenMP pool, which set PyTorch's threads to two:
    bench_epoch's "1 thread" PyTorch epochs ran on two until each got its count back."""
    torch = pytest.importorskip("torch")
    from tests.benchmarks import bench_epoch

    seen = []

    def layerloom_epoch(db):
        torch.set_num_threads(2)  # what the pool's start does
        return 1.0

    def torch_epoch(splits, seed):
        seen.append(torch.get_num_threads())
        return 2.0
    monkeypatch.setattr(bench_epoch, "torch_data", lambda: None)
    monkeypatch.setattr(bench_epoch, "layerloom_epoch", layerloom_epoch)
    monkeypatch.setattr(bench_epoch, "torch_epoch", torch_epoch)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert bench_epoch.compare(2) == ([1.0, 1.0], [2.0, 2.0])
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1, 1]
