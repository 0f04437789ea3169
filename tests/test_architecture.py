"""The architecture holds: the engine imports no Qt, and no source file outgrows 400 lines."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUI_MODULES = ("PySide6", "shiboken6", "pyqtgraph")
MAX_LINES = 400


def test_the_engine_imports_no_qt_and_no_gui():
    """A fresh interpreter: in this process a GUI test may already have imported Qt."""
    code = ("import sys, pkgutil, importlib, layerloom.engine as engine\n"
            "for m in pkgutil.walk_packages(engine.__path__, 'layerloom.engine.'):\n"
            "    importlib.import_module(m.name)\n"
            f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {GUI_MODULES!r}\n"
            "             or n.startswith('layerloom.gui'))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"engine pulled in: {out.stdout.strip()}"


def test_every_engine_module_imports_first_on_its_own():
    """Any engine module may be the first one imported (a script, a numba cache reload): none may
    depend on the registry having imported the layers in some order (circular imports)."""
    code = ("import sys, pkgutil, importlib, layerloom.engine as engine\n"
            "names = [m.name for m in pkgutil.walk_packages(engine.__path__, 'layerloom.engine.')]\n"
            "for name in names:\n"
            "    for loaded in [n for n in sys.modules if n.startswith('layerloom.engine')]:\n"
            "        del sys.modules[loaded]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError as err:\n"
            "        print(f'{name}: {err}')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", out.stdout


def test_no_python_file_is_longer_than_400_lines():
    skip = {".git", ".numba_cache", "build", "dist", ".venv", "venv"}
    long = {}
    for path in ROOT.rglob("*.py"):
        if skip.intersection(path.relative_to(ROOT).parts):
            continue
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            long[str(path.relative_to(ROOT))] = n
    assert not long, f"files over {MAX_LINES} lines: {long}"
