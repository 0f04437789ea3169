"""Export a training project: a folder a person copies to a GPU machine or a cluster and runs with
PyTorch alone (``layerloom export GRAPH OUTDIR --project``, File > Export Training Project…).

    model.py          the readable module (``torch_code``), importable and runnable by itself
    train.py          the runner (``project_runner``): torchrun + DistributedDataParallel,
                      checkpoints and --resume, AMP, and Layerloom weights and metrics back
    graph.json        the graph file, so the run comes back into Layerloom with its graph
    weights.npz       the trained weights, or the initial ones (same seed as Layerloom's)
    data.npz          the data set's train / val / test splits, as Layerloom reads them
    requirements.txt  torch, numpy, tqdm
    README.md         the commands for one CPU, one GPU, several GPUs, several machines
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from layerloom.engine.data import Dataset
from layerloom.engine.export.project_runner import RUNNER
from layerloom.engine.export.torch_code import torch_source
from layerloom.engine.export.weights import save_weights
from layerloom.engine.serialize import Project, atomic_write_bytes, save_project
from layerloom.engine.spec import LayerloomError

REQUIREMENTS = "torch>=2.1\nnumpy>=1.24\ntqdm>=4.60\n"

README = """# {title}: a training project exported by Layerloom

Runs with PyTorch alone (`pip install -r requirements.txt`); it never imports Layerloom.
`--batch-size` is per process: N processes with batch B train exactly as one with batch N×B.
Everything is written to `out/`: `weights.npz` (Layerloom's keys), `metrics.json`, and
`checkpoint.pt` after every epoch and on SIGTERM (`--resume` continues from it).

| where | command |
|---|---|
| one CPU | `python train.py` |
| one GPU | `python train.py --device cuda` (add `--amp bf16`, `--compile`) |
| several GPUs, one machine | `torchrun --standalone --nproc_per_node=4 train.py --device cuda` |
| several CPU processes | `torchrun --standalone --nproc_per_node=2 train.py` |
| several machines (run on each) | `torchrun --nnodes=2 --nproc_per_node=4 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 --rdzv-id=job1 train.py --device cuda` |
| after a stop or preemption | the same command with `--resume` |

Other options: `--epochs`, `--lr`, `--seed`, `--workers N` (DataLoader processes),
`--accumulate K` (gradient accumulation), `--max-steps N`, `--amp fp16` (with a gradient scaler).
Settings default to the graph's: {settings}.

Back in Layerloom: `layerloom runs import out/` (or the Runs tab's *Import run…*) shows this
run's curves beside the local ones and opens its weights.
"""


def data_arrays(dataset: Dataset) -> dict[str, np.ndarray]:
    """The splits under the names ``train.py`` (and model.py's ``read_data``) read."""
    out = {}
    for name in ("train", "val", "test"):
        split = getattr(dataset, name)
        out[f"x_{name}"], out[f"y_{name}"] = np.asarray(split.x), np.asarray(split.y)
    return out


def check_trains_on_data(project: Project) -> None:
    """A training project iterates over data; a graph of Parameters and an Objective (the
    founding example) has none to iterate over: say so before anything is read or written."""
    from layerloom.engine.objective import graph_needs_no_data

    if graph_needs_no_data(project.graph):
        raise LayerloomError("this graph trains without data (Parameters and an Objective): a "
                             "training project needs data; export its PyTorch code instead")


def write_project(project: Project, outdir: str | Path, params: dict,
                  dataset: Dataset | None, title: str = "model") -> list[Path]:
    """Write the folder; returns the files written. ``params`` are the weights to start from."""
    check_trains_on_data(project)
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise LayerloomError(f"{out}: exists and is not a folder")
    if out.is_dir() and (out / "train.py").exists() and (out / "out").exists():
        raise LayerloomError(f"{out}: holds a project that has been run; choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []

        def put(name: str, payload: bytes) -> None:
            atomic_write_bytes(out / name, payload)
            written.append(out / name)

        put("model.py", torch_source(project.graph, project.training, title=title).encode())
        put("train.py", RUNNER.lstrip("\n").encode())
        save_project(project, out / "graph.json")
        written.append(out / "graph.json")
        save_weights(params, out / "weights.npz")
        written.append(out / "weights.npz")
        if dataset is not None:
            buf = io.BytesIO()
            np.savez_compressed(buf, **data_arrays(dataset))
            put("data.npz", buf.getvalue())
        put("requirements.txt", REQUIREMENTS.encode())
        settings = ", ".join(f"{k} {project.training.get(k)}" for k in
                             ("optimizer", "lr", "batch_size", "epochs", "seed")
                             if k in project.training)
        put("README.md", README.format(title=title, settings=settings or "Layerloom's "
                                       "defaults").encode())
    except OSError as err:
        raise LayerloomError(f"{out}: cannot write the project ({err.strerror or err})") from None
    return written
