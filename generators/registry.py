"""Registry: short name -> lazily imported generator class, the data kind it learns and tiny test parameters."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from generators.kinds import KINDS
from generators.errors import UnknownGeneratorError


@dataclass(frozen=True)
class GeneratorEntry:
    """One registered generator."""

    name: str
    target: str  # "module:Class", imported on first use
    kind: str    # the data kind it learns (one of generators.data.KINDS); the class says the same
    test_params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind,)

    def load_class(self) -> type:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


_TABULAR = [
    GeneratorEntry("autoregressive", "generators.tabular.autoregressive:AutoregressiveGenerator", "tabular",
                   {"epochs": 2, "hidden": 32, "embedding_dim": 4, "max_bins": 8},
                   "own torch model: column by column, numerics in quantile bins (default)"),
    GeneratorEntry("cart", "generators.tabular.cart:CARTGenerator", "tabular", {"min_samples_leaf": 5},
                   "own sequential decision trees, synthpop style"),
    GeneratorEntry("gmm", "generators.tabular.gmm:GMMGenerator", "tabular", {"max_components": 3},
                   "own Gaussian mixture, components chosen by BIC"),
    GeneratorEntry("gaussian_copula", "generators.tabular.gaussian_copula:GaussianCopulaGenerator", "tabular",
                   {}, "SDV GaussianCopulaSynthesizer"),
    GeneratorEntry("ctgan", "generators.tabular.ctgan:CTGANGenerator", "tabular",
                   {"epochs": 1, "batch_size": 50}, "SDV CTGANSynthesizer"),
    GeneratorEntry("tvae", "generators.tabular.tvae:TVAEGenerator", "tabular",
                   {"epochs": 1, "batch_size": 50}, "SDV TVAESynthesizer"),
]
_TIMESERIES = [
    GeneratorEntry("sequence_ar", "generators.timeseries.autoregressive:SequenceARGenerator", "timeseries",
                   {"epochs": 2, "min_updates": 0, "hidden": 16, "head_hidden": 16, "embedding_dim": 4,
                    "max_bins": 8},
                   "own torch model: a GRU over steps, per-step tokens, learned lengths (default)"),
    GeneratorEntry("sequence_vae", "generators.timeseries.vae:SequenceVAEGenerator", "timeseries",
                   {"epochs": 2, "min_updates": 0, "hidden": 8, "latent_dim": 4},
                   "own torch model: TimeVAE-like conditional VAE over padded sequences with a length head"),
    GeneratorEntry("par", "generators.timeseries.par:PARGenerator", "timeseries", {"epochs": 1},
                   "SDV PARSynthesizer (deepecho PAR)"),
]
_IMAGE = [
    GeneratorEntry("image_gmm", "generators.image.image_gmm:ImageGMMGenerator", "image",
                   {"n_basis": 8, "max_components": 2, "images_per_component": 10},
                   "own Gaussian mixture per class on a PCA basis: the fast baseline"),
    GeneratorEntry("conv_vae", "generators.image.conv_vae:ConvVAEGenerator", "image",
                   {"epochs": 30, "latent_dim": 4, "base": 8, "batch_size": 32, "learning_rate": 3e-3},
                   "own class-conditional convolutional VAE, two-stage: a Gaussian mixture per class on its codes "
                   "(default)"),
    GeneratorEntry("image_gan", "generators.image.image_gan:ImageGANGenerator", "image",
                   {"epochs": 40, "latent_dim": 8, "base": 8, "batch_size": 16, "learning_rate": 2e-3,
                    "ema_decay": 0.9},
                   "own class-conditional GAN: upsample+conv generator, projection critic, hinge loss, EMA weights"),
    GeneratorEntry("pixel_ar", "generators.image.pixel_ar:PixelARGenerator", "image",
                   {"levels": 8, "width": 16, "n_layers": 3, "hidden": 16, "epochs": 25, "batch_size": 16,
                    "learning_rate": 3e-3},
                   "own class-conditional gated PixelCNN (slow, batched sampling)"),
    GeneratorEntry("image_diffusion", "generators.image.image_diffusion:ImageDiffusionGenerator", "image",
                   {"base": 8, "epochs": 60, "batch_size": 16, "learning_rate": 3e-3, "ema_decay": 0.9,
                    "sample_steps": 10, "sample_batch": 32},
                   "own class-conditional denoising diffusion: small UNet, cosine schedule, v-prediction, "
                   "classifier-free guidance, EMA weights, deterministic DDIM sampling"),
]

REGISTRY: dict[str, GeneratorEntry] = {e.name: e for e in [*_TABULAR, *_TIMESERIES, *_IMAGE]}

# The generator `train` uses when none is named, per kind (None: nothing learns that kind yet).
DEFAULT_GENERATORS: dict[str, str | None] = {"tabular": "autoregressive", "timeseries": "sequence_ar",
                                             "image": "conv_vae"}
DEFAULT_GENERATOR = DEFAULT_GENERATORS["tabular"]


def list_generators(kind: str | None = None) -> list[str]:
    """Registered names, optionally only those that learn one kind of data."""
    return [n for n, e in REGISTRY.items() if kind is None or e.kind == kind]


def default_generator(kind: str) -> str:
    """The generator used for `kind` when none is named; UnknownGeneratorError when none learns it yet."""
    if kind not in KINDS:
        raise UnknownGeneratorError(f"unknown data kind {kind!r}; kinds are {', '.join(KINDS)}")
    name = DEFAULT_GENERATORS.get(kind)
    if name is None:
        raise UnknownGeneratorError(f"no generator learns {kind} data yet")
    return name


def get_entry(name: str) -> GeneratorEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownGeneratorError(
            f"unknown generator {name!r}; choose one of {', '.join(sorted(REGISTRY))}") from None


def get_generator_class(name: str) -> type:
    return get_entry(name).load_class()


def make_generator(name: str, **params: Any):
    """Instantiate a registered generator with hyperparameters."""
    cls = get_generator_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        from generators.errors import GeneratorError

        raise GeneratorError(f"bad parameters for generator {name!r}: {exc}") from exc
