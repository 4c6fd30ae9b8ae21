"""Reconstruction-error autoencoder detector with the same backbones as GANomaly."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from detectors.autoencoder.torch_model import AutoencoderModel
from detectors.backbones import batches, expected_state, fitted, in_chunks, load_prefixed, prefixed_state, seeded
from detectors.base import Detector
from detectors.persistence import check_tensors

log = logging.getLogger("detectors.autoencoder")


class Autoencoder(Detector):
    """Score = mean squared reconstruction error of an autoencoder trained on normal data."""

    name = "autoencoder"
    score_modes = ("reconstruction",)
    default_score_mode = "reconstruction"

    def __init__(self, *, latent_dim: int = 8, width: int = 32, epochs: int = 20, batch_size: int = 256,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-5, kind: str = "auto",
                 contamination: float = 0.01, threshold: float | None = None, window_length: int = 32,
                 window_stride: int = 1, seed: int = 0):
        super().__init__(kind=kind, contamination=contamination, threshold=threshold,
                         window_length=window_length, window_stride=window_stride, seed=seed)
        self.latent_dim = latent_dim
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay

    def _fit(self, x: np.ndarray) -> None:
        with seeded(self.seed) as gen:
            self.input_shape_ = list(x.shape[1:])
            self.model_ = AutoencoderModel(self.input_shape_, self.latent_dim, self.width)
            opt = torch.optim.Adam(self.model_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            data = torch.from_numpy(x)
            self.model_.train()
            for epoch in range(int(self.epochs)):
                total, n_batches = 0.0, 0
                for index in batches(len(data), int(self.batch_size), gen):
                    batch = data[index]
                    loss = F.mse_loss(self.model_(batch), batch)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item()
                    n_batches += 1
                log.info("autoencoder epoch %d/%d loss=%.4f", epoch + 1, self.epochs, total / max(n_batches, 1))
        fitted(self.model_)

    @torch.no_grad()
    def _score_prepared(self, x: np.ndarray, mode: str) -> np.ndarray:
        out = [((chunk - self.model_(chunk)) ** 2).flatten(1).mean(dim=1).numpy() for chunk in in_chunks(x)]
        return np.concatenate(out).astype(np.float64)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        return {"input_shape": self.input_shape_}, prefixed_state("model", self.model_)

    def _set_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        shape = self._saved_input_shape(state)
        check_tensors(tensors, expected_state(
            lambda: {"model": AutoencoderModel(shape, self.latent_dim, self.width)}))
        self.input_shape_ = shape
        with seeded(self.seed):  # the weights are overwritten; the seed only keeps the global RNG untouched
            self.model_ = AutoencoderModel(shape, self.latent_dim, self.width)
        load_prefixed("model", self.model_, tensors)
