"""Small PyTorch models the import tests export to ONNX: one per operator Layerloom reads.

Each case is (name, a module factory, the input's shape). The factories build fresh modules
with their parameters and running statistics moved off PyTorch's init, so a gain of exactly 1
or a mean of exactly 0 cannot hide a parameter the import lost.
"""
import torch
from torch import nn

IMAGE, SEQ, VEC = (2, 4, 3, 5), (2, 3, 6), (2, 6)


class Fn(nn.Module):
    """A function as a module (the tensor operations have none of their own)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class FirstOutput(nn.Module):
    """A module's first output (LSTMCell gives h and c)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)[0]


class LayerScale(nn.Module):
    """Tensors of a model's own: a learned per-channel scale and shift, and a fixed table."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels, 1, 1), 0.1))
        self.beta = nn.Parameter(torch.zeros(channels, 1, 1))
        self.register_buffer("table", torch.randn(5))

    def forward(self, x):
        return x * self.gamma + self.beta - self.table


def _moved(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn_like(p))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    return module.eval()


def _seq(*modules):
    return lambda: _moved(nn.Sequential(*modules))


ACTIVATIONS = [
    ("ReLU", nn.ReLU, IMAGE), ("ReLU6", nn.ReLU6, IMAGE), ("LeakyReLU", lambda: nn.LeakyReLU(0.2), IMAGE),
    ("PReLU", lambda: _moved(nn.PReLU()), IMAGE), ("PReLU-channels", lambda: _moved(nn.PReLU(4)), IMAGE),
    ("ELU", lambda: nn.ELU(0.7), IMAGE), ("SELU", nn.SELU, IMAGE), ("CELU", lambda: nn.CELU(1.5), IMAGE),
    ("SiLU", nn.SiLU, IMAGE), ("Mish", nn.Mish, IMAGE), ("Softplus", lambda: nn.Softplus(2.0), IMAGE),
    ("Softsign", nn.Softsign, IMAGE), ("Hardtanh", lambda: nn.Hardtanh(-0.5, 0.8), IMAGE),
    ("Hardswish", nn.Hardswish, IMAGE), ("Hardsigmoid", nn.Hardsigmoid, IMAGE),
    ("LogSigmoid", nn.LogSigmoid, IMAGE), ("Sigmoid", nn.Sigmoid, IMAGE), ("Tanh", nn.Tanh, IMAGE),
    ("GELU", nn.GELU, IMAGE), ("GELU-tanh", lambda: nn.GELU(approximate="tanh"), IMAGE),
    ("Tanhshrink", nn.Tanhshrink, IMAGE), ("Softmax", lambda: nn.Softmax(dim=1), IMAGE),
    ("LogSoftmax", lambda: nn.LogSoftmax(dim=1), IMAGE), ("Softmin", lambda: nn.Softmin(dim=1), IMAGE),
    ("GLU", lambda: nn.GLU(dim=1), IMAGE), ("Identity", nn.Identity, IMAGE),
    ("Dropout", lambda: nn.Dropout().eval(), IMAGE),
    ("Hardshrink", lambda: nn.Hardshrink(0.3), IMAGE), ("Softshrink", lambda: nn.Softshrink(0.4), IMAGE),
]

NORMS = [
    ("BatchNorm1d", _seq(nn.BatchNorm1d(3)), SEQ), ("BatchNorm1d-vector", _seq(nn.BatchNorm1d(6)), VEC),
    ("BatchNorm2d", _seq(nn.BatchNorm2d(4)), IMAGE),
    ("BatchNorm3d", _seq(nn.BatchNorm3d(2)), (2, 2, 3, 2, 4)),
    ("LayerNorm", _seq(nn.LayerNorm(6)), SEQ), ("LayerNorm-plain", _seq(nn.LayerNorm(6, elementwise_affine=False)), SEQ),
    ("InstanceNorm1d", _seq(nn.InstanceNorm1d(3)), SEQ),
    ("InstanceNorm2d-affine", _seq(nn.InstanceNorm2d(4, affine=True)), IMAGE),
    ("GroupNorm", _seq(nn.GroupNorm(2, 4)), IMAGE), ("GroupNorm-plain", _seq(nn.GroupNorm(4, 4, affine=False)), IMAGE),
    ("GroupNorm-sequence", _seq(nn.GroupNorm(3, 3)), SEQ),
]

LINEAR = [
    ("Linear", _seq(nn.Linear(6, 3)), VEC), ("Linear-no-bias", _seq(nn.Linear(6, 3, bias=False)), VEC),
    ("Linear-on-sequences", _seq(nn.Linear(6, 4)), SEQ),
    ("Flatten", _seq(nn.Flatten(), nn.Linear(60, 3)), IMAGE),
    ("Flatten-from-2", _seq(nn.Flatten(2)), IMAGE), ("Unflatten", _seq(nn.Unflatten(1, (2, 3))), VEC),
]

TENSOR_OPS = [
    ("Multiply", Fn(lambda x: x * torch.sigmoid(x[:, :1])), IMAGE),
    ("Subtract", Fn(lambda x: x - x.mean(dim=1, keepdim=True)), IMAGE),
    ("Divide", Fn(lambda x: x / (x.abs() + 1)), IMAGE),
    ("Maximum", Fn(lambda x: torch.maximum(x, x.tanh() * 2)), IMAGE),
    ("Minimum", Fn(lambda x: torch.minimum(x, torch.sigmoid(x))), IMAGE),
    ("Scale-Bias", Fn(lambda x: 1.0 - (x * 3.0 + 0.5) / 2.0), IMAGE),
    ("Exp-Log-Sqrt", Fn(lambda x: torch.log(torch.exp(x) + 1.0) + torch.sqrt(x * x + 1.0)), IMAGE),
    ("Pow", Fn(lambda x: x ** 3 + 2.0 / (x * x + 1.0)), IMAGE),
    ("Clamp", Fn(lambda x: torch.clamp(x, -0.5, 0.7) + x.clamp(min=0.1)), IMAGE),
    ("Sum", Fn(lambda x: x.sum(dim=(2, 3), keepdim=True) + x), IMAGE),
    ("Mean", Fn(lambda x: x.mean(dim=-1)), IMAGE),
    ("Slice", Fn(lambda x: x[:, 1:3, :, 2:]), IMAGE),
    ("Chunk", Fn(lambda x: torch.chunk(x, 2, dim=1)[0] * torch.chunk(x, 2, dim=1)[1]), IMAGE),
    ("Split-three", Fn(lambda x: torch.cat(torch.split(x, [1, 2, 3], dim=2)[::-1], dim=2)), SEQ),
    ("Repeat", Fn(lambda x: x.repeat(1, 2, 1, 3)), IMAGE),
    ("Expand", Fn(lambda x: x[:, :1].expand(-1, 3, -1, -1)), IMAGE),
    ("Transpose", Fn(lambda x: x.transpose(1, 2)), SEQ),
    ("Permute", Fn(lambda x: x.permute(0, 2, 3, 1)), IMAGE),
    ("Squeeze-Unsqueeze", Fn(lambda x: x.unsqueeze(2).squeeze(2).unsqueeze(-1)), SEQ),
    ("View", Fn(lambda x: x.view(x.size(0), -1)), IMAGE),
    ("Select", Fn(lambda x: x[:, 1]), IMAGE),
    ("Concat", Fn(lambda x: torch.cat([x, x * 2, x.exp()], dim=1)), SEQ),
]

OWN_TENSORS = [("LayerScale", lambda: _moved(LayerScale()), IMAGE),
               ("GRUCell", lambda: _moved(nn.GRUCell(6, 5)), VEC),  # a zero state: one row
               ("LSTMCell", lambda: _moved(FirstOutput(nn.LSTMCell(6, 5))), VEC)]

CASES = ACTIVATIONS + NORMS + LINEAR + OWN_TENSORS + [(name, (lambda m=m: m), shape)
                                                      for name, m, shape in TENSOR_OPS]
