"""Registry: short name -> lazily imported generator class, its modality and tiny test parameters."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from generators.errors import UnknownGeneratorError


@dataclass(frozen=True)
class GeneratorEntry:
    """One registered generator."""

    name: str
    target: str  # "module:Class", imported on first use
    modality: str
    test_params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    def load_class(self) -> type:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


REGISTRY: dict[str, GeneratorEntry] = {e.name: e for e in [
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
]}

DEFAULT_GENERATOR = "autoregressive"


def list_generators(modality: str | None = None) -> list[str]:
    """Registered names, optionally only those of one modality."""
    return [n for n, e in REGISTRY.items() if modality is None or e.modality == modality]


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
