"""numba's on-disk cache keyed on a kernel file *and the kernel files it imports*.

numba keeps a compiled kernel while the bytes of the kernel's own file are unchanged (0.68 hashes
them). A kernel that calls another module's kernel has that callee compiled into it: the cached
``conv_flat`` holds ``packed``'s tile kernel. After an upgrade that changed ``packed.py`` alone,
the cached ``conv_flat`` would go on running the old tile kernel, with a layout the new callers
no longer match. Here every kernel file's source stamp also covers, transitively, the kernel
files it imports (``from layerloom.engine.kernels.X import ...``), so an edit of ``packed.py``
recompiles its callers and nothing else. ``install`` wraps numba's stamp (a private method:
if numba renames it, the plain per-file stamp stays, as before).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

KERNELS = Path(__file__).resolve().parent
_IMPORT = re.compile(rb"^from layerloom\.engine\.kernels\.(\w+) import", re.M)
_memo: dict = {}  # (file, folder) -> ([(each file read, its (mtime_ns, size))], digest)


def closure(path: Path, folder: Path = KERNELS) -> list[Path]:
    """``path`` and the kernel files it imports, directly or through others, sorted."""
    seen, todo = set(), [Path(path).resolve()]
    while todo:
        p = todo.pop()
        if p in seen or not p.is_file():
            continue
        seen.add(p)
        todo.extend(folder / f"{name.decode()}.py" for name in _IMPORT.findall(p.read_bytes()))
    return sorted(seen)


def digest(path: Path, folder: Path = KERNELS) -> bytes:
    """sha256 over the bytes of ``path``'s ``closure``, names included; re-read only when a
    file's mtime or size moved (numba asks once per cached kernel, ~300 times at a start)."""
    key = (Path(path).resolve(), Path(folder).resolve())
    old = _memo.get(key)
    if old is not None and all(_stat(p) == s for p, s in old[0]):
        return old[1]
    files = closure(key[0], key[1])
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    _memo[key] = ([(p, _stat(p)) for p in files], h.digest())
    return _memo[key][1]


def _stat(p: Path) -> tuple:
    st = p.stat()
    return st.st_mtime_ns, st.st_size


def install() -> None:
    """Make numba's source stamp of a file in this folder ``digest``'s (idempotent)."""
    from numba.core import caching

    mixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    original = getattr(mixin, "get_source_stamp", None)
    if original is None or getattr(original, "layerloom", False):
        return

    def get_source_stamp(self):
        path = Path(getattr(self, "_py_file", "") or ".").resolve()
        if path.parent != KERNELS or not path.is_file():
            return original(self)
        return ("layerloom-closure", digest(path))
    get_source_stamp.layerloom = True
    mixin.get_source_stamp = get_source_stamp
