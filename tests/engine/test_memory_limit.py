"""Data larger than the memory the process may use trains: a subprocess whose address space is
capped (``ulimit -v``, as RLIMIT_AS) decodes, trains and evaluates on an image folder whose decoded
cache is more than twice the headroom it was given."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.image_folders import class_folder

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_a_folder_larger_than_the_memory_limit_trains_with_bounded_memory(tmp_path):
    folder = class_folder(tmp_path / "photos", per_class=2200, size=(16, 16), ext=".jpg")
    env = {**os.environ, "LAYERLOOM_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "engine" / "memory_child.py"),
                          str(folder), "224", "160"], capture_output=True, text=True, env=env,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result)  # shown with -s: the measurements behind the assertions
    assert result["data_mb"] > 2 * result["headroom_mb"]  # 483 MB of decoded images
    assert result["refused"] == ["load", "mmap"]  # reading it whole is impossible here
    assert result["train"] == 5346 and result["steps"] == -(-5346 // 32)
    assert result["test_accuracy"] > 0.9  # the three colours are learnt
    assert result["rss_growth_mb"] < result["headroom_mb"]
