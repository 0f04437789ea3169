"""A gzip IDX file is inflated once: later reads come from the decoded cache, an edited file is
decoded afresh (its old cache removed), and a damaged or mismatched cache, or a cache folder
that cannot be written, never changes what is read."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from layerloom.engine.data import idx
from layerloom.engine.data.idx import read_idx, write_idx


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLOOM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "idx"


def no_inflating(monkeypatch):
    real = gzip.GzipFile.read

    def read(self, size=-1):
        if size is None or size < 0 or size > 64:
            raise AssertionError("inflated the data, not only the header")
        return real(self, size)
    monkeypatch.setattr(gzip.GzipFile, "read", read)


def test_a_second_read_comes_from_the_cache(tmp_path, cache, monkeypatch):
    arr = np.random.default_rng(0).integers(0, 256, (50, 7, 5), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), arr)
    assert len(list(cache.glob("*.npy"))) == 1
    with monkeypatch.context() as m:
        no_inflating(m)
        again = read_idx(tmp_path / "x.gz")
    np.testing.assert_array_equal(again, arr)
    assert again.flags.writeable and again.dtype == np.uint8


def test_an_edited_file_is_decoded_again_and_its_old_cache_removed(tmp_path, cache):
    path = tmp_path / "x.gz"
    write_idx(path, np.arange(12, dtype=np.int32).reshape(3, 4))
    read_idx(path)
    write_idx(path, np.arange(20, dtype=np.int32).reshape(4, 5))
    os.utime(path, ns=(1, 2_000_000_000))  # a distinct modification time
    np.testing.assert_array_equal(read_idx(path), np.arange(20).reshape(4, 5))
    assert len(list(cache.glob("*.npy"))) == 1


@pytest.mark.parametrize("damage", ["garbage", "other shape"])
def test_a_damaged_or_mismatched_cache_is_ignored_and_rewritten(tmp_path, cache, damage):
    path, arr = tmp_path / "x.gz", np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    write_idx(path, arr)
    read_idx(path)
    (entry,) = cache.glob("*.npy")
    if damage == "garbage":
        entry.write_bytes(b"\x93NUMPY not really")
    else:
        np.save(entry, arr.reshape(6, 4))
    np.testing.assert_array_equal(read_idx(path), arr)
    np.testing.assert_array_equal(np.load(entry, allow_pickle=False), arr)


def test_an_unwritable_cache_folder_still_reads_the_file(tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("LAYERLOOM_CACHE_DIR", str(blocker))
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_idx(tmp_path / "x.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), arr)


def test_a_corrupt_gzip_file_is_still_refused_with_its_name(tmp_path, cache):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")[:-6])
    with pytest.raises(idx.DataError, match="bad.gz"):
        read_idx(path)
    assert not list(cache.glob("*.npy"))
