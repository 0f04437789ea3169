"""Test-wide setup: offscreen Qt before any QApplication, a project-local numba cache, and a
private home for Qt's per-user settings and data and for Layerloom's image cache (a window built
on the default QSettings, as ``layerloom`` builds it, saves its layout and autosaves there, never
in the real home)."""
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
_HOME = Path(tempfile.mkdtemp(prefix="layerloom-tests-"))
os.environ["XDG_CONFIG_HOME"] = str(_HOME / "config")
os.environ["XDG_DATA_HOME"] = str(_HOME / "data")
os.environ["LAYERLOOM_CACHE_DIR"] = str(_HOME / "cache")  # decoded images (engine.data.cache)

from tests import kernel_order  # noqa: E402 (after the cache folder is set: the helper reads it)

_ORDER = os.environ.get("LAYERLOOM_KERNEL_ORDER", "")
_state: dict = {}


def pytest_sessionstart(session):
    """A cold cache's compiling shared with the spare core (``tests/kernel_order.py``)."""
    if _ORDER == "record":
        hook = kernel_order.Recorder()
    elif _ORDER != "off" and (kernels := kernel_order.read()):
        claims = tempfile.mkdtemp(prefix="compile-claims-", dir=_HOME)
        hook = kernel_order.Claims(kernels, claims)
        _state["helpers"] = kernel_order.start(kernels, claims)
    else:
        return
    hook.install()
    _state["hook"] = hook


def pytest_sessionfinish(session, exitstatus):
    from layerloom.engine.parallel_compile import end_all

    end_all(_state.pop("helpers", []))
    hook = _state.pop("hook", None)
    if hook is not None:
        hook.uninstall()
        if isinstance(hook, kernel_order.Recorder):
            hook.write()
