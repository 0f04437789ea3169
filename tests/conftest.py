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
