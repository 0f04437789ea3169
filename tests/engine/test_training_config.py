"""Training settings have one owner: engine.training_config checks every setting's type and range,
when a graph file loads, when CLI flags apply, and whenever a TrainConfig is made."""
import json
from dataclasses import fields
from pathlib import Path

import pytest

from layerloom.engine.cli import main
from layerloom.engine.serialize import FormatError, load_project
from layerloom.engine.training_config import SETTINGS, SettingsError, TrainConfig

SPIRALS = Path(__file__).resolve().parents[2] / "samples" / "mlp_spirals.json"

BAD = [  # (setting, value, words of the one-line error)
    ("seed", "x", "training.seed: must be a whole number, got 'x'"),
    ("seed", -1, "training.seed: must be at least 0, got -1"),
    ("seed", 1.0, "training.seed: must be a whole number"),
    ("histogram_every", "x", "training.histogram_every: must be a whole number, got 'x'"),
    ("histogram_every", -1, "training.histogram_every: must be at least 0, got -1"),
    ("lr", 0, "training.lr: must be a finite number > 0"),
    ("lr", "1e-3", "training.lr: must be a number, got '1e-3'"),
    ("lr", 1e400, "training.lr: must be a finite number > 0, got inf"),
    ("optimizer", "rmsprop", "training.optimizer: must be one of sgd, momentum, adam, adamw"),
    ("optimizer", ["adam"], "training.optimizer: must be one of"),
    ("schedule", "linear", "training.schedule: must be one of constant, cosine, step"),
    ("batch_size", 0, "training.batch_size: must be at least 1"),
    ("batch_size", True, "training.batch_size: must be a whole number, got True"),
    ("epochs", 2**31, "training.epochs: must be at most 2147483647"),
    ("max_steps", 0, "training.max_steps: must be at least 1"),
    ("weight_decay", -0.1, "training.weight_decay: must be a finite number >= 0"),
    ("momentum", 1, "training.momentum: must be a finite number >= 0 and < 1, got 1"),
    ("learning_rate", 0.1, "training.learning_rate: unknown training setting (known: optimizer"),
]


def graph_with_training(tmp_path, **settings) -> Path:
    data = json.loads(SPIRALS.read_text())
    data["training"] = {**data["training"], **settings}
    path = tmp_path / "g.json"
    # inf as the number literal 1e400 (valid JSON that overflows): "Infinity" is not JSON at all
    path.write_text(json.dumps(data).replace("Infinity", "1e400"))
    return path


def test_every_setting_has_exactly_one_rule():
    assert [f.name for f in fields(TrainConfig)] == list(SETTINGS)


@pytest.mark.parametrize("name,value,words", BAD)
def test_a_bad_setting_in_a_file_is_one_line_naming_it_at_load(tmp_path, name, value, words):
    path = graph_with_training(tmp_path, **{name: value})
    with pytest.raises(FormatError) as err:
        load_project(path)
    assert str(err.value).startswith("g.json: " + words)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("command", [["train", "--max-steps", "1"], ["export", "out.onnx"],
                                     ["export", "out.py"], ["check"]])
def test_train_export_and_check_stop_at_the_bad_setting_in_one_line(tmp_path, capsys, command):
    path = graph_with_training(tmp_path, seed="x")
    outputs = [str(tmp_path / a) if a.startswith("out.") else a for a in command[1:]]
    assert main([command[0], str(path), *outputs]) == 1
    assert not list(tmp_path.glob("out.*"))
    err = capsys.readouterr().err
    assert err == "error: g.json: training.seed: must be a whole number, got 'x'\n"


def test_a_training_section_that_is_not_an_object_is_refused(tmp_path):
    data = json.loads(SPIRALS.read_text())
    data["training"] = ["adam"]
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match="^g.json: training: must be an object"):
        load_project(tmp_path / "g.json")


@pytest.mark.parametrize("flag,value,words", [("--seed", "-1", "must be at least 0"),
                                              ("--lr", "nan", "must be a finite number > 0"),
                                              ("--epochs", "1.5", "must be a whole number"),
                                              ("--max-steps", "0", "must be at least 1")])
def test_a_bad_flag_is_the_same_rule_as_argparse_usage_error(capsys, flag, value, words):
    with pytest.raises(SystemExit) as stop:
        main(["train", str(SPIRALS), flag, value])
    assert stop.value.code == 2
    assert f"argument {flag}: {words}" in capsys.readouterr().err


def test_flags_go_on_top_of_the_file_and_the_result_is_checked():
    from layerloom.engine.cli import build_parser, training_config

    args = build_parser().parse_args(["train", "g.json", "--seed", "7", "--lr", "0.5"])
    config = training_config({"lr": 0.1, "epochs": 3}, args, "g.json")
    assert (config.seed, config.lr, config.epochs, config.optimizer) == (7, 0.5, 3, "adam")


def test_every_train_config_is_valid():
    with pytest.raises(SettingsError, match="training.batch_size: must be at least 1"):
        TrainConfig(batch_size=0)
    assert TrainConfig.from_settings({"lr": 1, "max_steps": None}).lr == 1
