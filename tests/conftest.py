"""Test-wide setup: offscreen Qt before any QApplication, a project-local numba cache."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
