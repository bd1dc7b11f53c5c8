"""PyTorch equivalents of the reference workloads (benchmarks/workloads.md): the same layers and
shapes as models/*.dlm, for measuring PyTorch eager and ONNX Runtime on the same work in the same run.

`WORKLOADS` maps a name to its batch, input shapes, number of classes (None: the loss is the mean of the
output squared) and the module factory. Imports torch lazily, so this file can be imported without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Workload:
    name: str
    batch: int
    x_shape: tuple[int, ...]  # without the batch dimension
    classes: int | None
    make: Callable[[], Any]


def _mlp() -> Any:
    from torch import nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def _lenet() -> Any:
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def _resnet8() -> Any:
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, k: int, stride: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3, 1))
            self.short = (nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout
                          else nn.Identity())

        def forward(self, x: Any) -> Any:
            return torch.relu(self.body(x) + self.short(x))

    return nn.Sequential(*conv_bn(3, 16, 3, 1), nn.ReLU(), Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def _lstm() -> Any:
    from torch import nn

    class LastStep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(64, 128, batch_first=True)
            self.out = nn.Linear(128, 10)

        def forward(self, x: Any) -> Any:
            return self.out(self.lstm(x)[0][:, -1])

    return LastStep()


def _transformer() -> Any:
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, batch_first=True)
            self.out = nn.Linear(128, 10)

        def forward(self, x: Any) -> Any:
            return self.out(self.layer(x).mean(dim=1))

    return Encoder()


def _gelu_mlp() -> Any:
    from torch import nn
    return nn.Sequential(nn.Linear(256, 1024), nn.GELU(), nn.LayerNorm(1024), nn.GELU(), nn.Linear(1024, 256))


def _ew_chain() -> Any:
    import torch
    from torch import nn

    class EwChain(nn.Module):
        """y = tanh(layer_norm(gelu(x * scale + shift) + x)) * 0.5 + 0.5 over rows of 4096."""

        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(4096))
            self.shift = nn.Parameter(torch.zeros(4096))
            self.norm = nn.LayerNorm(4096)

        def forward(self, x: Any) -> Any:
            h = torch.nn.functional.gelu(x * self.scale + self.shift) + x
            return torch.tanh(self.norm(h)) * 0.5 + 0.5

    return EwChain()


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("mlp", 64, (784,), 10, _mlp),
    Workload("lenet", 64, (1, 28, 28), 10, _lenet),
    Workload("resnet8", 32, (3, 32, 32), 10, _resnet8),
    Workload("lstm", 32, (32, 64), 10, _lstm),
    Workload("transformer", 8, (64, 128), 10, _transformer),
    Workload("gelu_mlp", 256, (256,), None, _gelu_mlp),
    Workload("ew_chain", 2048, (4096,), None, _ew_chain),
]}


def loss_of(w: Workload, out: Any, y: Any) -> Any:
    import torch
    return torch.nn.functional.cross_entropy(out, y) if w.classes else (out * out).mean()
