"""The suite's list of kernels to compile ahead (``tests/kernel_order.py``) stays true to the
engine, and its claims let each kernel compile once, here or in the helper."""
import os
import subprocess
import sys
import threading
import time

import pytest
from numba import types

from layerloom.engine import parallel_compile as pc
from tests import kernel_order

RECORD = "rebuild it: LAYERLOOM_KERNEL_ORDER=record python -m pytest -n 0"


def test_every_listed_kernel_is_an_engine_kernel_the_helper_can_compile():
    listed = kernel_order.read()
    assert len(listed) > 100, f"tests/kernel_order.json is missing or short; {RECORD}"
    gone = [name for name, _ in listed if pc.dispatcher(name) is None]
    assert not gone, f"kernels no longer in the engine: {gone[:5]}; {RECORD}"
    unread = [k for k in listed if pc.parse_signature(k[1]) is None]
    assert len(unread) <= len(listed) // 20, unread[:5]


def _claimed_by_another(mark: str) -> subprocess.Popen:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    with open(mark, "w") as f:
        f.write(str(other.pid))
    return other


def test_a_kernel_the_helper_claimed_is_loaded_once_it_is_done(tmp_path):
    name, sig = "layerloom.engine.kernels.relu.add_relu_chunks", (types.float64[:],)
    hook = kernel_order.Claims([[name, str(sig)]], str(tmp_path))
    mark = pc._mark(str(tmp_path), name, str(sig))
    other = _claimed_by_another(mark)
    calls = []
    try:
        threading.Timer(0.3, pc._finish, (mark,)).start()
        t = time.monotonic()
        hook.around(None, name, sig, lambda d, s: calls.append(time.monotonic() - t))
    finally:
        other.kill()
        other.wait()
    assert len(calls) == 1 and calls[0] >= 0.25  # it waited for the helper's mark


def test_a_kernel_the_helper_has_not_reached_is_claimed_here_and_marked_done(tmp_path):
    name, sig = "layerloom.engine.kernels.relu.add_relu_chunks", (types.float32[:],)
    hook = kernel_order.Claims([[name, str(sig)]], str(tmp_path))
    mark = pc._mark(str(tmp_path), name, str(sig))
    hook.around(None, name, sig, lambda d, s: None)
    assert open(mark).read() == str(os.getpid()) and os.path.exists(mark + ".done")
    assert not pc._claim(mark)  # the helper skips it


def test_a_helper_that_has_gone_is_not_waited_for(tmp_path):
    name, sig = "layerloom.engine.kernels.relu.add_relu_chunks", (types.int64[:],)
    hook = kernel_order.Claims([[name, str(sig)]], str(tmp_path), wait=60)
    mark = pc._mark(str(tmp_path), name, str(sig))
    other = _claimed_by_another(mark)
    other.kill()
    other.wait()
    t = time.monotonic()
    hook.around(None, name, sig, lambda d, s: None)
    assert time.monotonic() - t < 30


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's SCHED_IDLE")
def test_the_helper_compiles_on_time_no_test_wants(tmp_path):
    helpers = kernel_order.start(kernel_order.read()[:1], str(tmp_path))
    try:
        assert len(helpers) == 1
        assert os.sched_getscheduler(helpers[0].pid) == os.SCHED_IDLE
    finally:
        pc.end_all(helpers)
