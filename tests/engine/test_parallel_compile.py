"""Compile on every core: helper processes compile a graph's census kernels into numba's cache
while the warm-up compiles them from the other end; they start only when something compiles."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from numba import njit

from layerloom.engine import parallel_compile as pc
from layerloom.engine import warmup

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ADD_BIAS = ["layerloom.engine.kernels.dense.add_bias",
            "(Array(float32, 2, 'C', False, aligned=True), Array(float32, 1, 'C', False, "
            "aligned=True))"]


def test_census_signatures_read_back_exactly_and_other_forms_are_refused():
    census = warmup.Census(learned=None)
    sigs = {sig for kernels in census.entries.values() for _name, sig in kernels}
    assert sigs
    for sig in sigs:  # a literal argument (a callee's constant) is left to the warm-up itself
        assert str(pc.parse_signature(sig)) == sig or ("Literal[" in sig and
                                                       pc.parse_signature(sig) is None)
    nested = "(Tuple((int64, Array(float32, 2, 'C', False, aligned=True))), UniTuple(int64, 3))"
    assert str(pc.parse_signature(nested)) == nested
    ro = "(Array(int64, 1, 'A', True, aligned=False), float64)"  # a read-only IDX array
    (array, scalar) = pc.parse_signature(ro)
    assert (array.mutable, array.layout, str(scalar), str((array, scalar))) == (False, "A",
                                                                               "float64", ro)
    for bad in ("int64", "(os.system, )", "(Array(object, 1, 'C', False, aligned=True),)",
                "(__import__('os'),)", "(Literal[int](0),)"):
        assert pc.parse_signature(bad) is None, bad
    assert pc.dispatcher("os.path.join") is None
    assert pc.dispatcher("layerloom.engine.kernels.dense.no_such_kernel") is None


def _lenet_census() -> list:
    from layerloom.engine.data import load_data
    from layerloom.engine.network import Network
    from layerloom.engine.project import fit_graph_to_data
    from layerloom.engine.serialize import load_project

    project = load_project(SAMPLES / "lenet5.json")
    fit_graph_to_data(project.graph, load_data(project.data["spec"]))
    key = warmup.structure_key(Network(project.graph), project.training["optimizer"])
    return warmup.Census(learned=None).get(key)


def test_the_costliest_kernels_come_first_and_those_sharing_their_callees_late():
    lenet = _lenet_census()
    order = pc.balanced(lenet)
    assert sorted(order) == sorted(lenet)
    names = [name.rsplit(".", 1)[1] for name, _ in order]
    assert set(names[:2]) == {"chunks_part", "crm_part"} and "adam_update_kept" in names, names
    # its pooling (relu_maxpool_flat) compiles inside crm_part, no pass of its own
    assert "relu_maxpool_part" not in names and "gemm_part" not in names
    assert pc.cost(order[0][0]) == max(pc.cost(name) for name, _ in lenet)
    tree = pc._tree(order[0][0])
    assert pc.cost(order[0][0], known=set(tree)) == 0 < pc.cost(order[0][0])
    assert pc.cost("layerloom.engine.kernels.dense.no_such_kernel") == 0


def _run_child(code: str, cache, stdin: str = "") -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], input=stdin, env=env, capture_output=True,
                         text=True, timeout=900, check=True)
    return out.stdout.strip()


def test_a_helper_fills_the_cache_that_the_next_process_loads(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "layerloom.engine.parallel_compile"],
                          input=json.dumps([ADD_BIAS, ["os.system", "(int64,)"]]), env=env,
                          capture_output=True, text=True, timeout=900, check=True)
    assert done.stdout.strip() == "1"  # the one engine kernel; the other name is refused
    code = ("from layerloom.engine import parallel_compile as pc\n"
            f"name, sig = {ADD_BIAS!r}\n"
            "d = pc.dispatcher(name)\n"
            "d.compile(pc.parse_signature(sig))\n"
            "print(sum(d._cache_hits.values()), sum(d._cache_misses.values()))\n")
    assert _run_child(code, tmp_path) == "1 0"  # loaded from the helper's work, not compiled


def test_helpers_start_at_the_first_compilation_only_and_end_on_close(tmp_path):
    pc.compile_all([ADD_BIAS])  # without helpers: the test run alone on an empty cache compiles
    helpers = pc.Helpers([ADD_BIAS], str(tmp_path), count=1)
    with helpers:
        pc.compile_all([ADD_BIAS])  # in memory already: no compilation
        assert helpers.procs == []
    with pc.Helpers([ADD_BIAS], str(tmp_path), count=1) as helpers:

        @njit
        def fresh(x):  # never compiled before: a compilation starts
            return x + 1

        assert fresh(np.int64(1)) == 2
        procs = list(helpers.procs)
        assert len(procs) == 1
    assert all(p.returncode is not None for p in procs) and helpers.procs == []


def test_a_claim_is_taken_once_and_settles_when_done_or_when_its_claimer_has_gone(tmp_path):
    mark = pc._mark(str(tmp_path), *ADD_BIAS)
    assert pc._claim(mark) and not pc._claim(mark)
    assert pc._settled(mark)  # claimed by this very process: numba's lock orders its threads
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other_mark = pc._mark(str(tmp_path), "layerloom.engine.kernels.dense.matvec", "()")
        with open(other_mark, "w") as f:
            f.write(str(other.pid))
        assert not pc._settled(other_mark)  # still compiling it elsewhere
        pc._finish(other_mark)
        assert pc._settled(other_mark)
        os.remove(other_mark + ".done")
    finally:
        other.kill()
        other.wait()
    assert pc._settled(other_mark)  # its claimer has gone without finishing: compile it here


def test_the_warm_up_waits_for_a_kernel_another_process_claimed_then_loads_it(tmp_path):
    cache, claims = tmp_path / "cache", tmp_path / "claims"
    claims.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-m", "layerloom.engine.parallel_compile"],
                   input=json.dumps([ADD_BIAS]), env=env, capture_output=True, text=True,
                   timeout=900, check=True)  # the other process's work, in the cache
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open(pc._mark(str(claims), *ADD_BIAS), "w") as f:
            f.write(str(other.pid))  # ... claimed, and not yet marked done
        code = ("import threading, time\n"
                "from layerloom.engine import parallel_compile as pc\n"
                f"name, sig = {ADD_BIAS!r}\n"
                f"mark = pc._mark({str(claims)!r}, name, sig)\n"
                "threading.Timer(0.5, pc._finish, [mark]).start()\n"
                "t = time.monotonic()\n"
                f"done = pc.compile_all([[name, sig]], claims={str(claims)!r}, wait=True)\n"
                "d = pc.dispatcher(name)\n"
                "print(done, time.monotonic() - t >= 0.5, sum(d._cache_hits.values()),\n"
                "      sum(d._cache_misses.values()))\n")
        assert _run_child(code, cache) == "1 True 1 0"  # waited, then loaded: not compiled
    finally:
        other.kill()
        other.wait()


def test_helpers_started_at_launch_compile_the_graphs_census_and_claim_it(tmp_path):
    cache, claims = tmp_path / "cache", tmp_path / "claims"
    claims.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "LAYERLOOM_CACHE_DIR": str(tmp_path)}
    graph = SAMPLES / "mlp_spirals.json"
    out = subprocess.run([sys.executable, "-m", "layerloom.engine.warmup", "--early",
                          str(os.getpid()), str(claims), str(graph)],
                         env=env, capture_output=True, text=True, timeout=900, check=True)
    code = ("from layerloom.engine import warmup\n"
            f"print(len(warmup.census_in_order({str(graph)!r})))\n")
    n = int(_run_child(code, cache))
    assert n > 3 and out.stdout.strip() == str(n)
    assert len([f for f in os.listdir(claims) if f.endswith(".done")]) == n
    none = subprocess.run([sys.executable, "-m", "layerloom.engine.warmup", "--early",
                           str(os.getpid()), str(claims), str(tmp_path / "missing.json")],
                          env=env, capture_output=True, text=True, timeout=900, check=True)
    assert none.stdout.strip() == "0"


def test_no_more_helpers_start_while_those_started_at_launch_work(tmp_path, monkeypatch):
    early = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(pc, "EARLY", [early])
    try:
        with pc.Helpers([ADD_BIAS], str(tmp_path), count=1) as helpers:

            @njit
            def fresh(x):  # a compilation starts
                return x + 2

            assert fresh(np.int64(1)) == 3
            assert helpers.procs == []
    finally:
        early.kill()
        early.wait()


def test_every_kernel_the_shipped_census_names_exists():
    names = {name for kernels in warmup.Census(learned=None).entries.values()
             for name, _ in kernels}
    gone = sorted(name for name in names if pc.dispatcher(name) is None)
    assert not gone, f"rebuild: python -m layerloom.engine.warmup --ship samples/*.json ({gone})"
