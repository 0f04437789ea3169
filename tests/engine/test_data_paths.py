"""The data-path policy: a graph file's data path resolves against the file's folder, and a path
outside it (absolute, ``..``, a device, a symlink pointing out) is not read unless the person
says so (``--data`` or ``--allow-outside-data``); the readers read regular files only."""
import json
import os
from pathlib import Path

import pytest

from layerloom.engine.cli import main
from layerloom.engine.data.location import (OutsideDataError, graph_data_spec, place,
                                            portable_spec, rebase_spec)

ROOT = Path(__file__).resolve().parents[2]
ROWS = "".join(f"{i % 7 * 0.1},{i % 5 * 0.2},{i % 3}\n" for i in range(60))


def project_with_data(folder: Path, spec: str) -> Path:
    """The spirals MLP sample saved in ``folder`` with its data section naming ``spec``."""
    data = json.loads((ROOT / "samples" / "mlp_spirals.json").read_text())
    data["data"] = {"spec": spec, "val_fraction": 0.1}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "g.json"
    path.write_text(json.dumps(data))
    return path


def train(graph: Path, *flags) -> int:
    return main(["train", str(graph), "--epochs", "1", "--max-steps", "1", *map(str, flags)])


def test_a_relative_data_path_resolves_against_the_graph_files_folder(tmp_path, monkeypatch,
                                                                       capsys):
    graph = project_with_data(tmp_path / "proj", "csv:data/points.csv")
    (tmp_path / "proj" / "data").mkdir()
    (tmp_path / "proj" / "data" / "points.csv").write_text(ROWS)
    monkeypatch.chdir(tmp_path)  # not the graph's folder: the path must not follow the cwd
    assert train(graph) == 0, capsys.readouterr().err
    assert "points.csv" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["csv:{outside}/secret.csv", "csv:../secret.csv",
                                  "csv:/dev/zero", "text:/etc/passwd", "csv:link.csv",
                                  "idx:images"])
def test_data_outside_the_graphs_folder_is_not_read_without_a_flag(tmp_path, capsys, spec):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.csv").write_text("1,2,0\nhunter2,2,1\n" + ROWS)
    (tmp_path / "secret.csv").write_text("1,2,0\nhunter2,2,1\n")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "link.csv").symlink_to(outside / "secret.csv")
    (proj / "images").mkdir()
    (proj / "images" / "train-images-idx3-ubyte").symlink_to(outside / "secret.csv")
    graph = project_with_data(proj, spec.format(outside=outside))
    assert train(graph) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "g.json wants to read data from" in err
    assert "--allow-outside-data" in err and "hunter2" not in err


def test_allow_outside_data_and_an_explicit_data_flag_read_it(tmp_path, capsys):
    outside = tmp_path / "shared"
    outside.mkdir()
    (outside / "points.csv").write_text(ROWS)
    graph = project_with_data(tmp_path / "proj", f"csv:{outside / 'points.csv'}")
    assert train(graph, "--allow-outside-data") == 0, capsys.readouterr().err
    capsys.readouterr()
    assert train(graph, "--data", f"csv:{outside / 'points.csv'}") == 0
    assert train(graph, "--data", "spirals") == 0  # a named set (three classes, as the head)


def test_the_readers_take_regular_files_only_even_inside_the_folder(tmp_path, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    os.mkfifo(proj / "pipe.csv")  # reading a FIFO would block for ever
    graph = project_with_data(proj, "csv:pipe.csv")
    assert train(graph) == 1
    assert "not a regular file" in capsys.readouterr().err


def test_generate_follows_the_same_policy(tmp_path, capsys):
    graph = project_with_data(tmp_path / "proj", "text:/etc/hostname")
    assert main(["generate", str(graph), "--weights", str(tmp_path / "w.npz"), "--prompt", "a"]) == 1
    assert "--allow-outside-data" in capsys.readouterr().err


def test_placing_specs(tmp_path):
    graph = tmp_path / "a" / "g.json"
    graph.parent.mkdir()
    assert place("spirals?n=50", graph).path is None
    inside = place("npz:sub/../d.npz?val_fraction=0.2", graph)
    assert inside.path == (tmp_path / "a" / "d.npz").resolve() and not inside.outside
    assert inside.spec == f"npz:{(tmp_path / 'a' / 'd.npz').resolve()}?val_fraction=0.2"
    assert place("npz:../d.npz", graph).outside == "outside the graph file's folder"
    with pytest.raises(OutsideDataError) as err:
        graph_data_spec("npz:../d.npz", graph, how="choose it in the window")
    assert err.value.path == (tmp_path / "d.npz").resolve()
    assert str(err.value).endswith("choose it in the window")
    assert graph_data_spec("npz:../d.npz", graph, allowed={err.value.path}).startswith("npz:/")


def test_portable_and_rebased_specs_keep_naming_the_same_file(tmp_path):
    old, new = tmp_path / "a" / "g.json", tmp_path / "b" / "g.json"
    assert portable_spec(f"csv:{tmp_path / 'a' / 'd' / 'x.csv'}", old) == "csv:d/x.csv"
    assert portable_spec(f"csv:{tmp_path / 'x.csv'}", old) == f"csv:{(tmp_path / 'x.csv').resolve()}"
    moved = rebase_spec("csv:d/x.csv?task=regression", old, new)
    assert moved == f"csv:{(tmp_path / 'a' / 'd' / 'x.csv').resolve()}?task=regression"
    assert rebase_spec("csv:../b/y.csv", old, new) == "csv:y.csv"
    assert rebase_spec("moons?n=10", old, new) == "moons?n=10"
    assert rebase_spec("not a spec", old, new) == "not a spec"


def test_an_image_folder_with_a_link_out_at_any_depth_is_outside(tmp_path, capsys):
    from .image_folders import class_folder

    proj = tmp_path / "proj"
    class_folder(proj / "imgs", per_class=3)
    (tmp_path / "secret.png").write_bytes(b"not really")
    (proj / "imgs" / "red" / "deep").mkdir()
    (proj / "imgs" / "red" / "deep" / "x.png").symlink_to(tmp_path / "secret.png")
    placed = place("folder:imgs", proj / "g.json")
    assert placed.outside.startswith("red/deep/x.png in imgs links outside")
    assert placed.path == (tmp_path / "secret.png").resolve()
    (proj / "imgs" / "red" / "deep" / "x.png").unlink()
    assert place("folder:imgs", proj / "g.json").outside == ""


def test_a_fifo_among_the_images_is_skipped_not_read(tmp_path):
    from layerloom.engine.data import load_data

    from .image_folders import class_folder

    class_folder(tmp_path / "imgs", per_class=4)
    os.mkfifo(tmp_path / "imgs" / "red" / "pipe.png")  # opening it to decode would block
    data = load_data(f"folder:{tmp_path / 'imgs'}?size=8")
    assert len(data.train) + len(data.val) + len(data.test) == 12


def test_a_sweep_passes_the_agreement_on_to_each_combination(tmp_path, capsys):
    from layerloom.engine.runs import RunStore

    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "points.csv").write_text(ROWS)
    graph = project_with_data(tmp_path / "proj", f"csv:{tmp_path / 'shared' / 'points.csv'}")
    db = tmp_path / "runs.sqlite"
    grid = ["--grid", "lr=0.01", "--grid", "epochs=1", "--grid", "max_steps=1", "--runs-db", str(db)]
    assert main(["sweep", str(graph), *grid]) == 0
    assert "--allow-outside-data" in capsys.readouterr().err
    assert main(["sweep", str(graph), *grid, "--allow-outside-data"]) == 0
    statuses = sorted(r.status for r in RunStore(db).runs())
    assert statuses.count("finished") == 1, statuses


def test_lr_find_and_a_project_export_follow_the_same_policy(tmp_path, capsys):
    graph = project_with_data(tmp_path / "proj", "csv:/etc/hostname")
    assert main(["lr-find", str(graph), "--steps", "2"]) == 1
    assert main(["export", str(graph), str(tmp_path / "out"), "--project"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all("--allow-outside-data" in e for e in errors)
    assert not (tmp_path / "out").exists()
