"""Test-wide setup: offscreen Qt before any QApplication, a project-local numba cache, and a
private home for Qt's per-user settings and data and for Layerloom's image cache (a window built
on the default QSettings, as ``layerloom`` builds it, saves its layout and autosaves there, never
in the real home)."""
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
_HOME = Path(tempfile.mkdtemp(prefix="layerloom-tests-"))
os.environ["XDG_CONFIG_HOME"] = str(_HOME / "config")
os.environ["XDG_DATA_HOME"] = str(_HOME / "data")
os.environ["LAYERLOOM_CACHE_DIR"] = str(_HOME / "cache")  # decoded images (engine.data.cache)

# after the cache folder is set: the helper reads it
from tests import kernel_order, solo  # noqa: E402

_ORDER = os.environ.get("LAYERLOOM_KERNEL_ORDER", "")
CLAIMS = "LAYERLOOM_TEST_CLAIMS"  # the claims folder a controller hands its xdist workers
_state: dict = {}


def pytest_sessionstart(session):
    """A cold cache's compiling shared with the spare core (``tests/kernel_order.py``). Under
    pytest-xdist (the suite runs on two workers) the controller starts the helper and names the
    claims folder its workers share, so that no kernel compiles twice in the three processes."""
    worker = hasattr(session.config, "workerinput")  # an xdist worker (not a pytest it started)
    controller = not worker and bool(session.config.getoption("numprocesses", None))
    if worker:
        _state["locks"] = os.environ.get(solo.FOLDER)
    elif controller:
        os.environ[solo.FOLDER] = tempfile.mkdtemp(prefix="locks-", dir=_HOME)
    if _ORDER == "record":
        if worker or controller:
            raise pytest.UsageError("LAYERLOOM_KERNEL_ORDER=record needs one process: add -n 0")
        hook = kernel_order.Recorder()
    elif _ORDER != "off" and (kernels := kernel_order.read()):
        claims = os.environ.get(CLAIMS) if worker else None
        if not claims:
            claims = tempfile.mkdtemp(prefix="compile-claims-", dir=_HOME)
            os.environ[CLAIMS] = claims  # workers started after this inherit it
            _state["helpers"] = kernel_order.start(kernels, claims)
        hook = kernel_order.Claims(kernels, claims)
    else:
        return
    hook.install()
    _state["hook"] = hook


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Under xdist, a ``solo`` test runs alone (``tests/solo.py``)."""
    folder = _state.get("locks")
    if not folder:
        yield
        return
    with solo.turn(folder, item.get_closest_marker("solo") is not None):
        yield


def pytest_sessionfinish(session, exitstatus):
    from layerloom.engine.parallel_compile import end_all

    end_all(_state.pop("helpers", []))
    hook = _state.pop("hook", None)
    if hook is not None:
        hook.uninstall()
        if isinstance(hook, kernel_order.Recorder):
            hook.write()
