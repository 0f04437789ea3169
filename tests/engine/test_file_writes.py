"""Every file Layerloom writes goes through one atomic writer: it follows the umask (or keeps an
existing file's mode), and a failed write leaves no temporary behind."""
import os
import stat
import time

import pytest

from layerloom.engine.serialize import atomic_write_bytes, sweep_temporaries


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode


def test_a_rewritten_file_keeps_its_mode(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_failed_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()  # os.replace cannot put a file over a folder
    (target / "inside").write_bytes(b"x")
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"payload")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_the_sweep_removes_only_old_temporaries_of_our_own_pattern(tmp_path):
    names = [".g.json.abcd1234.tmp", ".g.json.wxyz_789.tmp", "notes.tmp", ".g.json"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        old = time.time() - 7200
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".w.npz.fresh123.tmp").write_bytes(b"being written")
    gone = sweep_temporaries(tmp_path)
    assert sorted(p.name for p in gone) == [".g.json.abcd1234.tmp", ".g.json.wxyz_789.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".g.json", ".w.npz.fresh123.tmp",
                                                         "notes.tmp"]
