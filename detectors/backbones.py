"""Encoder/decoder/discriminator backbones chosen by data kind: MLP rows, 1-D conv windows, 2-D conv images."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from detectors.persistence import BadState, module_specs
from modelkit.errors import one_line
from modelkit.files import WEIGHTS_FILE, canonical_module


def _down_steps(spatial: Sequence[int]) -> int:
    """How many stride-2 convolutions fit before the smallest side drops to about 4."""
    steps, size = 0, min(spatial)
    while size > 4 and steps < 3:
        size = math.ceil(size / 2)
        steps += 1
    return max(steps, 1)


class MLPEncoder(nn.Module):
    def __init__(self, n_features: int, latent_dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, 2 * width), nn.LeakyReLU(0.2),
            nn.Linear(2 * width, width), nn.LeakyReLU(0.2),
            nn.Linear(width, latent_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    def __init__(self, n_features: int, latent_dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, width), nn.LeakyReLU(0.2),
            nn.Linear(width, 2 * width), nn.LeakyReLU(0.2),
            nn.Linear(2 * width, n_features),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ConvEncoder(nn.Module):
    """Stride-2 convolutions (1-D or 2-D) then a linear map to the latent code."""

    def __init__(self, shape: Sequence[int], latent_dim: int, width: int):
        super().__init__()
        channels, spatial = shape[0], list(shape[1:])
        conv = nn.Conv1d if len(spatial) == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if len(spatial) == 1 else nn.BatchNorm2d
        layers: list[nn.Module] = []
        c = channels
        for i in range(_down_steps(spatial)):
            out = width * 2 ** i
            layers += [conv(c, out, 5, 2, 2)]
            if i > 0:
                layers += [norm(out)]
            layers += [nn.LeakyReLU(0.2)]
            c = out
            spatial = [math.ceil(s / 2) for s in spatial]
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(c * int(np.prod(spatial)), latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


class ConvDecoder(nn.Module):
    """Linear map from the latent code, then stride-2 transposed convolutions, cropped to the input size."""

    def __init__(self, shape: Sequence[int], latent_dim: int, width: int):
        super().__init__()
        channels, spatial = shape[0], list(shape[1:])
        self.out_spatial = list(spatial)
        steps = _down_steps(spatial)
        small = list(spatial)
        for _ in range(steps):
            small = [math.ceil(s / 2) for s in small]
        c = width * 2 ** (steps - 1)
        self.start_shape = [c] + small
        self.fc = nn.Linear(latent_dim, c * int(np.prod(small)))
        deconv = nn.ConvTranspose1d if len(spatial) == 1 else nn.ConvTranspose2d
        norm = nn.BatchNorm1d if len(spatial) == 1 else nn.BatchNorm2d
        layers: list[nn.Module] = []
        for i in reversed(range(steps)):
            out = channels if i == 0 else width * 2 ** (i - 1)
            layers += [deconv(c, out, 4, 2, 1)]
            if i > 0:
                layers += [norm(out), nn.ReLU()]
            c = out
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.deconv(self.fc(z).view(-1, *self.start_shape))
        if len(self.out_spatial) == 1:
            return x[:, :, : self.out_spatial[0]]
        return x[:, :, : self.out_spatial[0], : self.out_spatial[1]]


def make_encoder(shape: Sequence[int], latent_dim: int, width: int) -> nn.Module:
    """Encoder for prepared items of `shape`: (features,) rows, (channels, length) windows, (c, h, w) images."""
    return MLPEncoder(shape[0], latent_dim, width) if len(shape) == 1 else ConvEncoder(shape, latent_dim, width)


def make_decoder(shape: Sequence[int], latent_dim: int, width: int) -> nn.Module:
    return MLPDecoder(shape[0], latent_dim, width) if len(shape) == 1 else ConvDecoder(shape, latent_dim, width)


class Discriminator(nn.Module):
    """Encoder trunk whose output doubles as the feature vector, then a real/fake logit."""

    def __init__(self, shape: Sequence[int], width: int, feature_dim: int = 32):
        super().__init__()
        self.features = make_encoder(shape, feature_dim, width)
        self.classifier = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(feature_dim, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.classifier(features).squeeze(1), features


@contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Seed torch's global RNG (for layer init) without leaking the change; yield a generator for batching."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield torch.Generator().manual_seed(int(seed))


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches; a trailing batch of one row is dropped (batch norm needs two)."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        if len(index) > 1 or n == 1:
            yield index


def in_chunks(x: np.ndarray, size: int = 4096) -> Iterator[torch.Tensor]:
    """Float32 chunks of `x` copied into torch's own aligned memory, so kernels never see the input's alignment."""
    for start in range(0, len(x), size):
        part = x[start:start + size]
        chunk = torch.empty(part.shape, dtype=torch.float32)
        chunk.numpy()[...] = part
        yield chunk


def prefixed_state(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def expected_state(build: Callable[[], dict[str, nn.Module]]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """name -> (shape, dtype) of the tensors the modules `build` returns would save, without allocating them.

    The modules are built on the meta device, so a tampered shape in model.json costs no memory: the real build
    happens only once the weights file is known to hold tensors of exactly these shapes.
    """
    with torch.device("meta"):
        modules = build()
    specs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for prefix, module in modules.items():
        specs |= module_specs(prefix, module)
    return specs


def fitted(*modules: nn.Module) -> None:
    """Finish modules after training or loading: evaluation mode, no gradients, canonical tensor layout."""
    for module in modules:
        module.eval()
        module.zero_grad(set_to_none=True)
        canonical_module(module)


def load_prefixed(prefix: str, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy the `prefix.`-named tensors into `module` (checked beforehand with `check_tensors`), then `fitted`."""
    own = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(own, strict=True)
    except RuntimeError as exc:
        raise BadState(f"tensors of {prefix!r} do not fit the model: {one_line(exc, 200)}", WEIGHTS_FILE) from None
    fitted(module)
