"""numba's cache of a kernel file is invalidated by an edit of a kernel file it imports
(``engine.kernels.cache_stamp``): a cached caller must not keep running an old callee."""
from types import SimpleNamespace

from numba.core import caching

from layerloom.engine.kernels import cache_stamp, conv_flat_back, packed


def _write(folder, name, imports=(), body="x = 1\n"):
    lines = [f"from layerloom.engine.kernels.{m} import x\n" for m in imports]
    (folder / f"{name}.py").write_text("".join(lines) + body)


def test_a_file_stamp_covers_the_kernel_files_it_imports_and_no_others(tmp_path):
    _write(tmp_path, "tile")
    _write(tmp_path, "conv", ["tile"])
    _write(tmp_path, "conv_back", ["conv", "missing_module"])  # a module that is not a file
    _write(tmp_path, "other")
    names = [p.name for p in cache_stamp.closure(tmp_path / "conv_back.py", tmp_path)]
    assert names == ["conv.py", "conv_back.py", "tile.py"]
    before = {n: cache_stamp.digest(tmp_path / f"{n}.py", tmp_path)
              for n in ("tile", "conv", "conv_back", "other")}
    _write(tmp_path, "tile", body="x = 2  # the callee's edit\n")
    after = {n: cache_stamp.digest(tmp_path / f"{n}.py", tmp_path) for n in before}
    assert after["tile"] != before["tile"]
    assert after["conv"] != before["conv"] and after["conv_back"] != before["conv_back"]
    assert after["other"] == before["other"]


def test_numbas_stamp_of_an_engine_kernel_is_the_closures_digest():
    stamp = caching._SourceFileBackedLocatorMixin.get_source_stamp
    assert getattr(stamp, "layerloom", False), "engine.kernels did not install the stamp"
    locator = SimpleNamespace(_py_file=conv_flat_back.__file__)
    assert stamp(locator) == ("layerloom-closure", cache_stamp.digest(conv_flat_back.__file__))
    assert stamp(locator) != stamp(SimpleNamespace(_py_file=packed.__file__))
    cache_stamp.install()  # a second install keeps one wrapper
    assert caching._SourceFileBackedLocatorMixin.get_source_stamp is stamp


def test_files_outside_the_kernels_keep_numbas_own_stamp(tmp_path):
    other = tmp_path / "user_kernels.py"
    other.write_text("x = 1\n")
    stamp = caching._SourceFileBackedLocatorMixin.get_source_stamp(
        SimpleNamespace(_py_file=str(other)))
    assert not (isinstance(stamp, tuple) and stamp[:1] == ("layerloom-closure",))
