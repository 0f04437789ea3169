"""The fixed parts of an exported PyTorch file (``engine.export.torch_code``), as source text.

``LIBRARY`` reads and writes Layerloom weights files with numpy alone (a ``.safetensors`` file
is an 8-byte header size, a JSON header and the raw arrays), so the exported file needs nothing
beyond torch and numpy. ``RUNNER`` is its command line: data from an ``.npz`` as Layerloom reads
it, the graph's optimizer and settings, a plain training loop, the weights back as ``.npz``.
The ``__NAME__`` markers are filled in by the exporter.
"""

LIBRARY = '''
SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
                      "I32": np.int32}


def read_arrays(path):
    """name -> array from an .npz or a .safetensors file (never unpickled)."""
    if str(path).endswith(".safetensors"):
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
            data = f.read()
        arrays = {}
        for name, info in header.items():
            if name != "__metadata__":
                begin, end = info["data_offsets"]
                dtype = SAFETENSORS_DTYPES[info["dtype"]]
                arrays[name] = np.frombuffer(data[begin:end], dtype).reshape(info["shape"])
        return arrays
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def load_weights(model, path):
    """Copy a Layerloom weights file (keys "<node_id>.<param>") into ``model``."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in read_arrays(path).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # not in Layerloom
    if missing or unexpected:
        sys.exit(f"{path}: does not fit this model (missing {missing[:3]}, "
                 f"unexpected {unexpected[:3]})")


def save_weights(model, path):
    """The model's parameters as .npz, keys "<node_id>.<param>": Layerloom imports it."""
    np.savez(path, **{k: v.detach().cpu().numpy() for k, v in model.state_dict().items()
                      if not k.endswith("num_batches_tracked")})
'''

RUNNER = '''
# the graph file's training settings
TRAINING = __TRAINING__
INPUT_SHAPE = __INPUT_SHAPE__  # one sample, as the Input node declares it
INPUT_DTYPE = __INPUT_DTYPE__
LABEL_KIND = __LABEL_KIND__  # "class index" or "values"
TRAINABLE = __TRAINABLE__  # one Input, one Label and a loss: the command line can train it


def read_data(path):
    """((x, y) to train on, (x, y) to test on or None) from an .npz holding x and y (or x_train
    and y_train, with optional x_test and y_test), read as Layerloom reads it."""
    arrays = read_arrays(path)
    x, y = arrays.get("x_train", arrays.get("x")), arrays.get("y_train", arrays.get("y"))
    if x is None or y is None:
        sys.exit(f"{path}: needs arrays x and y (or x_train and y_train)")
    test = None
    if "x_test" in arrays and "y_test" in arrays:
        test = tensors(arrays["x_test"], arrays["y_test"], path)
    return tensors(x, y, path), test


def tensors(x, y, path):
    """uint8 images scaled to [0, 1], N×H×W images given their channel axis, labels typed."""
    if INPUT_DTYPE == "int64":
        x = x.astype(np.int64)
    else:
        x = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)
        if x.ndim == len(INPUT_SHAPE) and len(INPUT_SHAPE) == 3:
            x = x[:, None]
    if tuple(x.shape[1:]) != tuple(INPUT_SHAPE):
        sys.exit(f"{path}: samples of shape {tuple(x.shape[1:])}, the model takes {INPUT_SHAPE}")
    y = y.astype(np.int64 if LABEL_KIND == "class index" else np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def evaluate(model, x, y, batch_size, device):
    """(mean loss, accuracy or None) in inference mode; accuracy counts every label (one per
    sample, or one per step of a sequence)."""
    model.to(device).eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            outputs = model(xb)
            total += compute_loss(outputs, yb).item() * len(xb)
            if LABEL_KIND == "class index" and torch.is_tensor(outputs):
                correct += (outputs.argmax(-1) == yb).sum().item()
    accuracy = correct / y.numel() if LABEL_KIND == "class index" else None
    return total / len(x), accuracy


def lr_factor(schedule, progress):
    """The share of the base learning rate at ``progress`` (0 to 1) through the run, as in
    Layerloom: constant, cosine decay to 0, or ÷10 at half and again at three quarters."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    return 1.0


def make_optimizer(params, settings):
    name, lr, decay = settings["optimizer"], settings["lr"], settings["weight_decay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr, weight_decay=decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr, momentum=settings["momentum"], weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr, weight_decay=decay)
    return torch.optim.Adam(params, lr, weight_decay=decay)


def train(model, x, y, epochs, batch_size, lr, device, test=None):
    """Mini-batch training of every parameter that is not frozen; prints each epoch's loss, and
    the test set's loss and accuracy when there is one."""
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, dict(TRAINING, lr=lr))
    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)
    run_steps = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(TRAINING["schedule"], step / run_steps))
    for epoch in range(epochs):
        total, count = 0.0, 0
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = compute_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total, count = total + loss.item() * len(xb), count + len(xb)
        line = f"epoch {epoch + 1}/{epochs}: train loss {total / count:.4f}"
        if test is not None:
            test_loss, accuracy = evaluate(model, *test, batch_size, device)
            line += f", test loss {test_loss:.4f}"
            line += f", test accuracy {100 * accuracy:.1f}%" if accuracy is not None else ""
        print(line, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help=".npz with x and y (or x_train and y_train); without it "
                                       "the model is only built (and printed)")
    parser.add_argument("--weights", help="start from these weights (.npz or .safetensors)")
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--batch-size", type=int, default=TRAINING["batch_size"])
    parser.add_argument("--lr", type=float, default=TRAINING["lr"])
    parser.add_argument("--device", default="cpu", help="e.g. cuda")
    parser.add_argument("--save", help="write the trained weights here (.npz)")
    args = parser.parse_args(argv)
    torch.manual_seed(TRAINING["seed"])
    model = Net()
    if args.weights:
        load_weights(model, args.weights)
    if args.data is None:
        print(model)
        return 0
    if not TRAINABLE:
        sys.exit("this graph needs one Input, one Label and a loss to train from the command "
                 "line; call compute_loss in your own loop")
    (x, y), test = read_data(args.data)
    train(model, x, y, args.epochs, args.batch_size, args.lr, args.device, test)
    if args.save:
        save_weights(model, args.save)
        print(f"saved {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''
