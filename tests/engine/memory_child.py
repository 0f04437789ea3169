"""Run by test_memory_limit.py in a fresh interpreter: warm up, cap the address space a little
above what the process already uses (as ``ulimit -v`` does), then decode an image folder larger
than that headroom, train an epoch on it with augmentation and evaluate; print a JSON summary.

    python memory_child.py FOLDER HEADROOM_MB SIDE
"""
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from layerloom.engine.data import Dataset, Split
from layerloom.engine.data.augment import Augmentation
from layerloom.engine.data.folder import load_folder
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.project import fit_graph_to_data
from layerloom.engine.training import DoneReport, StepReport, TrainConfig, train


def status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def reset_peak_rss() -> None:
    """Start VmHWM (the peak resident size) afresh: ``echo 5 > /proc/self/clear_refs``."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def graph() -> Graph:
    g = Graph()
    for node in [Node("image", "Input", {"shape": (3, 4, 4)}), Node("flat", "Flatten", {}),
                 Node("fc", "Dense", {"out_features": 3}), Node("label", "Label", {}),
                 Node("loss", "CrossEntropyLoss", {})]:
        g.add_node(node)
    for src, dst in [(("image", "y"), ("flat", "x")), (("flat", "y"), ("fc", "x")),
                     (("fc", "y"), ("loss", "input")), (("label", "y"), ("loss", "target"))]:
        g.connect(src, dst)
    return g


def warm_up() -> None:
    """Compile the kernels and start a loader thread once, before the limit."""
    x, y = np.zeros((8, 3, 4, 4), np.float32), np.zeros(8, np.int64)
    data = Dataset("warm", Split(x, y), Split(x[:2], y[:2]), Split(x[:2], y[:2]),
                   class_names=["a", "b", "c"])
    data.augment = Augmentation(flip=True, rotation=5)
    list(train(Network(graph(), seed=0), data, TrainConfig(batch_size=4)))


def main(folder: Path, headroom_mb: int, side: int) -> dict:
    warm_up()
    reset_peak_rss()  # a cold numba cache compiles in warm_up: that peak is not the data's
    base_vm, base_rss = status_mb("VmSize"), status_mb("VmRSS")
    limit = int((base_vm + headroom_mb) * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t0 = time.perf_counter()
    data = load_folder(folder, 0.1, 0, size=side, test_fraction=0.1)  # decoded under the limit
    decode_s = time.perf_counter() - t0
    store = data.train.x.store
    refused = []
    for how in ("load", "mmap"):  # what a whole-array reader would do: both must be refused
        try:
            np.load(store.path, mmap_mode="r" if how == "mmap" else None).sum()
        except (MemoryError, OSError, ValueError):
            refused.append(how)
    g = graph()
    fit_graph_to_data(g, data)
    data.augment = Augmentation(flip=True, crop_padding=4, rotation=10, brightness=0.2, cutout=16)
    steps, accuracy, t0 = 0, None, time.perf_counter()
    for report in train(Network(g, seed=0), data, TrainConfig(batch_size=32, histogram_every=0)):
        steps += isinstance(report, StepReport)
        if isinstance(report, DoneReport):
            accuracy = report.test_accuracy
    return {"data_mb": store.shape[0] * store.row_bytes / 2**20, "headroom_mb": headroom_mb,
            "refused": refused, "steps": steps, "train": len(data.train),
            "test_accuracy": accuracy, "decode_s": decode_s,
            "train_s": time.perf_counter() - t0,
            "rss_growth_mb": status_mb("VmHWM") - base_rss,
            "vm_peak_over_base_mb": status_mb("VmPeak") - base_vm}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
