"""``layerloom bench``: runs the PyTorch comparison, or says how to install PyTorch."""
import json

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
