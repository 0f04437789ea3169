"""Installed like real software: a wheel built from the checkout holds the `layerloom` package with
its samples and bundled data (no screenshots), installs no generic top-level `engine` or `gui`, and
runs from outside the checkout. (`.ci/run` also installs it into a fresh venv and opens the window.)"""
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                           "-q", "-w", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("layerloom-*.whl")
    return path


def test_the_wheel_holds_the_package_its_samples_and_data_and_no_generic_names(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"layerloom", next(t for t in tops if t.endswith(".dist-info"))}
    for needed in ("layerloom/__main__.py", "layerloom/engine/cli.py", "layerloom/gui/main.py",
                   "layerloom/samples/lenet5.json",
                   "layerloom/resources/fashion-mnist-subset/train-images-idx3-ubyte.gz",
                   "layerloom/resources/text/python_docstrings.txt",
                   "layerloom/resources/text/kjv.txt.gz"):
        assert needed in names
    assert not [n for n in names if "screenshot" in n]
    samples = {p.name for p in (ROOT / "samples").glob("*.json")}
    assert samples == {n.split("/")[-1] for n in names if n.startswith("layerloom/samples/")
                       and n.endswith(".json")}


def test_every_source_package_is_listed_for_the_wheel():
    """pyproject lists the packages by hand (the folders are renamed on install): a new
    sub-package that is not listed would be missing from every installed app."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    for top in ("engine", "gui"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            if rel.parts[:2] == ("gui", "package_root"):
                continue
            assert "layerloom." + ".".join(rel.parts) in listed, rel


def test_the_installed_wheel_runs_from_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    code = ("import importlib.util, layerloom, layerloom.engine.paths as p\n"
            "assert str(p.SAMPLES).startswith(sys.argv[1]), p.SAMPLES\n"
            "assert p.DEFAULT_GRAPH.is_file()\n"
            "print(importlib.util.find_spec('engine'), importlib.util.find_spec('gui'))\n")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", "import sys\n" + code, str(target)], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None None"
    graph = str(target / "layerloom" / "samples" / "mlp_spirals.json")
    out = subprocess.run([sys.executable, "-m", "layerloom", "check", graph], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "total parameters" in out.stdout, out.stderr


@pytest.mark.parametrize("in_tree", [True, False])
def test_an_installed_app_compiles_a_kernel_once_and_loads_it_on_every_later_start(wheel, tmp_path,
                                                                                  in_tree):
    """No NUMBA_CACHE_DIR, as a person's install has: numba caches beside the installed kernels
    when it may write there (a venv), else in the user's cache folder (a read-only system
    install; simulated by a file where its ``__pycache__`` folder would go, since a test running
    as root may write anywhere). Either way the second start loads what the first compiled."""
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    kernels = target / "layerloom" / "engine" / "kernels"
    if not in_tree:
        shutil.rmtree(kernels / "__pycache__", ignore_errors=True)
        (kernels / "__pycache__").write_text("")
    code = ("import numpy as np\nfrom layerloom.engine.kernels import dense\n"
            "dense.add_bias(np.ones((2, 3), np.float32), np.ones(3, np.float32))\n"
            "print(sum(dense.add_bias._cache_hits.values()), dense.add_bias._cache._cache_path)\n")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    runs = [subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                           text=True, env=env, timeout=600) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    (first_hits, path), (hits, again) = (r.stdout.split() for r in runs)
    assert (first_hits, hits, again) == ("0", "1", path)
    where = kernels if in_tree else tmp_path / "home" / ".cache" / "numba"
    assert path.startswith(str(where)), path
