"""The architecture holds: the engine imports no Qt, no modules import each other round a loop,
kernels sit below layers, no source file outgrows 400 lines, no GUI class outgrows 25 methods, and
no kernel reads an array through its address after numba may have freed it.

These replace the import-linter contract pyproject used to hold: lint-imports cannot see packages
mapped by ``package-dir`` (``engine/`` installs as ``layerloom.engine``), so it checked nothing.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.import_graph import cycles, import_graph, modules_of, reachable

ROOT = Path(__file__).resolve().parents[1]
GUI_MODULES = ("PySide6", "shiboken6", "pyqtgraph")
MAX_LINES = 400
MAX_METHODS = 25  # per GUI class, properties and Qt overrides included


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


PACKAGES = {"engine": "layerloom.engine", "gui": "layerloom.gui"}


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_no_modules_import_each_other_round_a_loop(folder):
    """A cycle makes the import order matter (a module half-initialised when the other reads it)
    and makes the two one unit: break it by moving what both need below both."""
    graph = import_graph(ROOT / folder, PACKAGES[folder])
    if folder == "gui":  # installed as plain ``layerloom``, not part of layerloom.gui
        graph = {m: t for m, t in graph.items() if not m.startswith("layerloom.gui.package_root")}
    assert len(graph) > 20  # the scan found the package
    assert not cycles(graph), f"import cycles: {cycles(graph)}"


def test_kernels_never_import_layers():
    """Kernels are the bottom (numba functions beside numpy twins); layers build on them, and
    plan-level fusion (engine/fusion.py) on both. The registry imports every layer."""
    graph = import_graph(ROOT / "engine", "layerloom.engine")
    kernels = [m for m in graph if m.startswith("layerloom.engine.kernels")]
    assert len(kernels) > 5
    bad = {k: sorted(m for m in reachable(graph, k) if m.startswith("layerloom.engine.layers")
                     or m == "layerloom.engine.registry")
           for k in kernels}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_the_import_scan_sees_every_kind_of_import_and_finds_a_loop(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import c\n")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub.c import g\n")  # lazy
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                      "    from ..b import B\n")
    (pkg / "b.py").write_text("import pkg.a\nimport os\n")
    graph = import_graph(pkg, "pkg")
    assert set(modules_of(pkg, "pkg")) == {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"}
    assert graph == {"pkg": set(), "pkg.a": {"pkg.sub.c"}, "pkg.b": {"pkg.a"},
                     "pkg.sub": {"pkg.sub.c"}, "pkg.sub.c": {"pkg.b"}}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert reachable(graph, "pkg.sub") == {"pkg.a", "pkg.b", "pkg.sub.c"}
    (pkg / "b.py").write_text("import os\n")
    assert not cycles(import_graph(pkg, "pkg"))


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


def parallel_uses(path: Path) -> list[str]:
    """Where a file asks numba for its own thread pool: ``parallel=True`` or ``prange``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "parallel" and \
                isinstance(node.value, ast.Constant) and node.value.value is True:
            found.append(f"{path.name}:{node.value.lineno} parallel=True")
        if isinstance(node, ast.ImportFrom) and any(a.name == "prange" for a in node.names):
            found.append(f"{path.name}:{node.lineno} prange")
    return found


def test_no_engine_kernel_starts_numba_s_own_thread_pool(tmp_path):
    """One pool: kernels split over the engine's workers (engine.threads.split_rows); an
    OpenMP pool beside them spins and takes their cores (engine/threads.py says how much)."""
    uses = [u for path in (ROOT / "engine").rglob("*.py") for u in parallel_uses(path)]
    assert not uses, f"numba parallel kernels in the engine: {uses}"
    probe = tmp_path / "probe.py"
    probe.write_text("from numba import njit, prange\n@njit(parallel=True)\ndef f(): pass\n")
    assert sorted(parallel_uses(probe)) == ["probe.py:1 prange", "probe.py:2 parallel=True"]


def methods_per_class(path: Path) -> dict[str, int]:
    """``{"Class": n}`` for every class in a file, counting the functions in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name: sum(isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))
                           for b in node.body)
            for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}


def test_method_count_sees_every_kind_of_method(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("class A:\n    x = 1\n    def a(self): pass\n    @property\n"
                      "    def b(self): return 1\n    async def c(self): pass\n"
                      "    class Inner:\n        def d(self): pass\n")
    assert methods_per_class(source) == {"A": 3, "Inner": 1}


def test_no_gui_class_keeps_more_than_25_methods():
    """A class past ~25 methods does several jobs (the 3,000-line controller STYLE.md warns
    about): split it by job, as the scene's gestures, the view's navigation and the document's
    compound edits and clipboard were split out."""
    big = {f"{path.relative_to(ROOT)}:{name}": n
           for path in sorted((ROOT / "gui").rglob("*.py"))
           for name, n in methods_per_class(path).items() if n > MAX_METHODS}
    assert not big, f"GUI classes over {MAX_METHODS} methods: {big}"


def _address_name(node: ast.AST) -> str | None:
    """``X`` of an ``X.ctypes.data`` expression, else None."""
    if isinstance(node, ast.Attribute) and node.attr == "data" and \
            isinstance(node.value, ast.Attribute) and node.value.attr == "ctypes" and \
            isinstance(node.value.value, ast.Name):
        return node.value.value.id
    return None


def _bound_names(target: ast.AST) -> list[str]:
    """Names an assignment binds (``a`` and ``b`` of ``a, b = ...``; none of ``a[i] = ...``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _bound_names(t)]
    return []


def unkept_addresses(path: Path) -> list[str]:
    """Local arrays of a numba kernel whose address the kernel takes (``X.ctypes.data``) but
    which it neither hands to ``keep_alive`` nor returns."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(fn, ast.FunctionDef) or \
                not any("njit" in ast.unparse(d) for d in fn.decorator_list):
            continue
        nodes = list(ast.walk(fn))
        local = {name for n in nodes if isinstance(n, ast.Assign)
                 for t in n.targets for name in _bound_names(t)}
        kept = {a.id for n in nodes if isinstance(n, ast.Call) and
                isinstance(n.func, ast.Name) and n.func.id == "keep_alive"
                for a in n.args if isinstance(a, ast.Name)}
        kept |= {n.value.id for n in nodes if isinstance(n, ast.Return) and
                 isinstance(n.value, ast.Name)}
        taken = {name for n in nodes if (name := _address_name(n))}
        found += [f"{path.name}:{fn.name}:{name}" for name in sorted(taken & local - kept)]
    return found


def test_a_kernel_keeps_the_arrays_it_reads_through_addresses_alive(tmp_path):
    """numba frees a local array after the last use it sees, and ``X.ctypes.data`` is one: a
    buffer read only through its address afterwards (the tile kernel's ``gemm_at``) was freed
    first. It computed with reused memory (wrong gradients) and crashed CI when the pages had
    gone (2026-12-05). ``packed.keep_alive(X)`` after the last raw read keeps it."""
    found = [u for path in (ROOT / "engine").rglob("*.py") for u in unkept_addresses(path)]
    assert not found, f"arrays read through their address after numba may free them: {found}"
    probe = tmp_path / "probe.py"
    probe.write_text("@njit\ndef f(a):\n    b, c, d = g(), g(), g()\n    h(a.ctypes.data, "
                     "b.ctypes.data, c.ctypes.data, d.ctypes.data)\n    keep_alive(c)\n"
                     "    a[0] = 1\n    return d\n\ndef p():\n    b = g()\n    h(b.ctypes.data)\n")
    assert unkept_addresses(probe) == ["probe.py:f:b"]
