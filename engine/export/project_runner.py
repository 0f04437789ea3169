"""``train.py`` of an exported training project, as text (``engine.export.torch_project``).

It imports only torch, numpy (tqdm if present) and the project's own ``model.py``, never
Layerloom: the folder runs on any machine with PyTorch. One process or many under ``torchrun``
(DistributedDataParallel; NCCL on GPUs, gloo on CPUs; a DistributedSampler seeded from the graph
so N processes with batch B see exactly the batches one process with batch N×B sees, and their
averaged gradients are the same). Checkpoints every epoch and on SIGTERM (what schedulers send
before preemption) hold model, optimizer, scheduler, position and random states, written
atomically, so ``--resume`` continues bit for bit on a CPU. Rank 0 writes Layerloom weights and
``metrics.json``, which ``layerloom runs import`` reads back as a run.
"""

RUNNER = r'''"""Train the exported model: one CPU or GPU, several GPUs, several machines (see README.md).

    python train.py                                   # one process (CPU, or --device cuda)
    torchrun --standalone --nproc_per_node=4 train.py --device cuda     # 4 GPUs, one machine
"""
import argparse
import json
import os
import random
import signal
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import model as exported

try:
    from tqdm import tqdm
except ImportError:  # progress lines per epoch only
    tqdm = None

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = exported.TRAINING


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(HERE, "data.npz"))
    p.add_argument("--weights", default=os.path.join(HERE, "weights.npz"),
                   help="start from these weights ('' for a fresh initialisation)")
    p.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    p.add_argument("--batch-size", type=int, default=SETTINGS["batch_size"],
                   help="per process: N processes train with batches of N x this")
    p.add_argument("--lr", type=float, default=SETTINGS["lr"])
    p.add_argument("--seed", type=int, default=SETTINGS["seed"])
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    p.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--accumulate", type=int, default=1, help="mini-batches per optimizer step")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="weights, metrics, checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    return p.parse_args(argv)


def setup(device_name):
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if device_name == "cuda" else device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def split(arrays, name):
    x, y = arrays.get(f"x_{name}"), arrays.get(f"y_{name}")
    return None if x is None or y is None or len(x) == 0 else exported.tensors(x, y, name)


def atomic_save(obj, path):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(obj, path):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def random_states(device):
    states = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_random_states(states, device):
    torch.set_rng_state(states["torch"])
    random.setstate((3, tuple(states["python"]), None))
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


class Stop:
    """SIGTERM sets the flag; every process stops at the same step (the flags are all-reduced)."""

    def __init__(self):
        self.asked = False
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "asked", True))

    def now(self, world, device):
        if world == 1:
            return self.asked
        flag = torch.tensor([1.0 if self.asked else 0.0], device=device)
        dist.all_reduce(flag)
        return flag.item() > 0


def leave(world):
    """Every process waits for the others before closing its connections: one that closes them
    while another still works (the lead's test pass) can end in gloo's 'terminate called' abort."""
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = setup(args.device)
    lead = rank == 0
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    net = exported.Net()
    if args.weights:
        exported.load_weights(net, args.weights)
    net.to(device)
    if not exported.TRAINABLE:
        sys.exit("this graph needs one Input, one Label and a loss to train")
    arrays = exported.read_arrays(args.data)
    train_set, val_set, test_set = (split(arrays, n) for n in ("train", "val", "test"))
    sampler = DistributedSampler(TensorDataset(*train_set), num_replicas=world, rank=rank,
                                 shuffle=True, seed=args.seed, drop_last=False)
    loader = DataLoader(TensorDataset(*train_set), batch_size=args.batch_size, sampler=sampler,
                        num_workers=args.workers)
    model = DistributedDataParallel(net) if world > 1 else net
    if args.compile:
        model = torch.compile(model)
    trainable = [p for p in net.parameters() if p.requires_grad]  # frozen nodes stay frozen
    optimizer = exported.make_optimizer(trainable, dict(SETTINGS, lr=args.lr))
    per_epoch = -(-len(loader) // args.accumulate)
    total = per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: exported.lr_factor(SETTINGS["schedule"], s / max(total, 1)))
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    amp = (torch.autocast(device.type, dtype=torch.bfloat16 if args.amp == "bf16"
                          else torch.float16) if args.amp else nullcontext())
    history = {"steps": [], "epochs": []}
    start_epoch, skip, step, epoch_loss = 0, 0, 0, [0.0, 0]
    checkpoint = os.path.join(args.out, "checkpoint.pt")
    if args.resume and os.path.exists(checkpoint):
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, skip, step = state["epoch"], state["batch"], state["step"]
        epoch_loss = list(state["epoch_loss"])
        history = json.loads(state["history"])
        set_random_states(state["random"][rank], device)
        if lead:
            print(f"resumed at epoch {start_epoch + 1}, step {step}", flush=True)
    stop, started = Stop(), time.time()

    def save_checkpoint(epoch, batch, epoch_loss):
        states = [None] * world
        if world > 1:
            dist.all_gather_object(states, random_states(device))
        else:
            states = [random_states(device)]
        if lead:
            atomic_save({"model": net.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "epoch": epoch, "batch": batch,
                         "step": step, "random": states, "history": json.dumps(history),
                         "epoch_loss": epoch_loss},
                        checkpoint)

    def report(status):
        if not lead:
            return
        exported.save_weights(net, os.path.join(args.out, "weights.npz"))
        write_json({"format": "layerloom-run", "version": 1, "status": status,
                    "settings": dict(SETTINGS, lr=args.lr, batch_size=args.batch_size * world,
                                     epochs=args.epochs, seed=args.seed),
                    "world_size": world, "device": str(device), "amp": args.amp,
                    "started": started, "ended": time.time(),
                    "graph": os.path.relpath(os.path.join(HERE, "graph.json"), args.out),
                    "weights": "weights.npz", **history},
                   os.path.join(args.out, "metrics.json"))

    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        if epoch != start_epoch:
            epoch_loss = [0.0, 0]
        bar = (tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch",
                    disable=not lead) if tqdm is not None else None)
        micro, partial = [], None
        for batch, (xb, yb) in enumerate(loader):
            if batch < skip:  # resumed mid-epoch: these batches were trained before the stop
                if bar is not None:
                    bar.update(1)
                continue
            if step >= total:
                partial = batch
                break
            xb, yb = xb.to(device), yb.to(device)
            last = (batch + 1) % args.accumulate == 0 or batch + 1 == len(loader)
            sync = model.no_sync() if world > 1 and not last else nullcontext()
            with sync:
                with amp:
                    loss = exported.compute_loss(model(xb), yb)
                scaler.scale(loss / args.accumulate).backward()
            mean = loss.detach().float()
            if world > 1:  # the loss of the whole batch, across processes
                dist.all_reduce(mean)
                mean /= world
            micro.append(mean.item())
            epoch_loss = [epoch_loss[0] + mean.item() * len(xb), epoch_loss[1] + len(xb)]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{mean.item():.4f}")
            if not last:
                continue
            lr = scheduler.get_last_lr()[0]
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            history["steps"].append([step, epoch, sum(micro) / len(micro), lr])
            step, micro = step + 1, []
            if stop.now(world, device):
                save_checkpoint(epoch, batch + 1, epoch_loss)
                report("stopped")
                if lead:
                    print(f"stopped at epoch {epoch + 1}, step {step}: continue with --resume",
                          flush=True)
                leave(world)
                return 143
        skip = 0
        if bar is not None:
            bar.close()
        if partial is not None:  # --max-steps ended mid-epoch: --resume continues from here
            save_checkpoint(epoch, partial, epoch_loss)
            break
        val = exported.evaluate(net, *val_set, 256, device) if val_set and lead else (None, None)
        model.train()
        train_loss = epoch_loss[0] / max(epoch_loss[1], 1)
        history["epochs"].append([epoch, train_loss, None, val[0], val[1]])
        if lead:
            line = f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f}"
            if val[0] is not None:
                line += f", val loss {val[0]:.4f}"
                line += f", val accuracy {100 * val[1]:.1f}%" if val[1] is not None else ""
            print(line, flush=True)
        report("running")  # the metrics first: a checkpoint on disk means they are there too
        save_checkpoint(epoch + 1, 0, [0.0, 0])
        if step >= total:
            break
    if test_set and lead:
        history["test_loss"], history["test_accuracy"] = exported.evaluate(net, *test_set, 256,
                                                                           device)
        print(f"test loss {history['test_loss']:.4f}" + (
            f", test accuracy {100 * history['test_accuracy']:.1f}%"
            if history["test_accuracy"] is not None else ""), flush=True)
    report("finished")
    leave(world)
    return 0


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Everything is written and the group is closed; skipping the interpreter's teardown
        # skips torch's C++ one too, which now and then aborts a finished process ('terminate
        # called without an active exception') and with it the whole torchrun job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
'''
