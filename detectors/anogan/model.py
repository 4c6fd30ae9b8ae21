"""AnoGAN-style detector: GAN on normal data, f-AnoGAN encoder for fast scoring, optional latent search."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from detectors.anogan.loss import discriminator_loss, generator_loss, residual_feature_score, search_loss
from detectors.anogan.torch_model import Discriminator, make_generator, make_latent_encoder
from detectors.backbones import batches, expected_state, fitted, in_chunks, load_prefixed, prefixed_state, seeded
from detectors.base import Detector
from detectors.persistence import check_tensors

log = logging.getLogger("detectors.anogan")


class AnoGAN(Detector):
    """AnoGAN (Schlegl et al., 2017) with the f-AnoGAN izi_f encoder (Schlegl et al., 2019).

    Training: a GAN on normal data for `epochs`, then an encoder x -> z for `encoder_epochs` with the generator and
    discriminator frozen, minimising |x - G(E(x))|^2 + kappa * |f(x) - f(G(E(x)))|^2. Scoring uses that same
    quantity (one forward pass). With `search_steps > 0`, each item's latent code is refined from E(x) by
    `search_steps` Adam steps on the AnoGAN loss (1 - lambda) * residual + lambda * feature residual, and the final
    loss is the score (slow; deterministic because it starts from E(x)).
    """

    name = "anogan"
    score_modes = ("encoder", "search")
    default_score_mode = "encoder"

    def __init__(self, *, latent_dim: int = 16, width: int = 32, epochs: int = 15, encoder_epochs: int = 10,
                 batch_size: int = 256, learning_rate: float = 2e-4, kappa: float = 1.0,
                 search_steps: int = 0, search_lambda: float = 0.1, search_learning_rate: float = 0.05,
                 kind: str = "auto", contamination: float = 0.01, threshold: float | None = None,
                 window_length: int = 32, window_stride: int = 1, seed: int = 0):
        super().__init__(kind=kind, contamination=contamination, threshold=threshold,
                         window_length=window_length, window_stride=window_stride, seed=seed)
        self.latent_dim = latent_dim
        self.width = width
        self.epochs = epochs
        self.encoder_epochs = encoder_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.kappa = kappa
        self.search_steps = search_steps
        self.search_lambda = search_lambda
        self.search_learning_rate = search_learning_rate

    @property
    def score_mode(self) -> str:
        return "search" if int(self.search_steps) > 0 else "encoder"

    def _build(self, shape: list[int]) -> None:
        self.input_shape_ = list(shape)
        self.generator_ = make_generator(shape, self.latent_dim, self.width)
        self.discriminator_ = Discriminator(shape, self.width)
        self.encoder_net_ = make_latent_encoder(shape, self.latent_dim, self.width)

    def _fit(self, x: np.ndarray) -> None:
        with seeded(self.seed) as gen:
            self._build(list(x.shape[1:]))
            g_net, d_net, e_net = self.generator_, self.discriminator_, self.encoder_net_
            opt_g = torch.optim.Adam(g_net.parameters(), lr=self.learning_rate, betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(d_net.parameters(), lr=self.learning_rate, betas=(0.5, 0.999))
            data = torch.from_numpy(x)
            g_net.train()
            d_net.train()
            for epoch in range(int(self.epochs)):
                g_total = d_total = 0.0
                n_batches = 0
                for index in batches(len(data), int(self.batch_size), gen):
                    real = data[index]
                    noise = torch.randn(len(real), self.latent_dim, generator=gen)
                    fake = g_net(noise)
                    logits_real, _ = d_net(real)
                    logits_fake, _ = d_net(fake.detach())
                    d_loss = discriminator_loss(logits_real, logits_fake)
                    opt_d.zero_grad()
                    d_loss.backward()
                    opt_d.step()
                    logits_fake, _ = d_net(fake)
                    g_loss = generator_loss(logits_fake)
                    opt_g.zero_grad()
                    g_loss.backward()
                    opt_g.step()
                    g_total += g_loss.item()
                    d_total += d_loss.item()
                    n_batches += 1
                log.info("anogan gan epoch %d/%d generator_loss=%.4f discriminator_loss=%.4f",
                         epoch + 1, self.epochs, g_total / max(n_batches, 1), d_total / max(n_batches, 1))
            g_net.eval()
            d_net.eval()
            for p in list(g_net.parameters()) + list(d_net.parameters()):
                p.requires_grad_(False)
            opt_e = torch.optim.Adam(e_net.parameters(), lr=self.learning_rate * 5, betas=(0.5, 0.999))
            e_net.train()
            for epoch in range(int(self.encoder_epochs)):
                total, n_batches = 0.0, 0
                for index in batches(len(data), int(self.batch_size), gen):
                    real = data[index]
                    x_hat = g_net(e_net(real))
                    _, f_real = d_net(real)
                    _, f_fake = d_net(x_hat)
                    loss = residual_feature_score(real, x_hat, f_real, f_fake, self.kappa).mean()
                    opt_e.zero_grad()
                    loss.backward()
                    opt_e.step()
                    total += loss.item()
                    n_batches += 1
                log.info("anogan encoder epoch %d/%d loss=%.4f", epoch + 1, self.encoder_epochs,
                         total / max(n_batches, 1))
            for p in list(g_net.parameters()) + list(d_net.parameters()):
                p.requires_grad_(True)
        fitted(g_net, d_net, e_net)

    def _score_prepared(self, x: np.ndarray, mode: str) -> np.ndarray:
        scores = []
        for chunk in in_chunks(x, 2048):
            with torch.no_grad():
                z = self.encoder_net_(chunk)
                _, f_real = self.discriminator_(chunk)
            if mode == "search":
                scores.append(self._search(chunk, z, f_real))
                continue
            with torch.no_grad():
                x_hat = self.generator_(z)
                _, f_fake = self.discriminator_(x_hat)
                scores.append(residual_feature_score(chunk, x_hat, f_real, f_fake, self.kappa).numpy())
        return np.concatenate(scores).astype(np.float64)

    def _search(self, chunk: torch.Tensor, z0: torch.Tensor, f_real: torch.Tensor) -> np.ndarray:
        # Gradients are taken with autograd.grad on z only, so the networks' parameters are never touched.
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.search_learning_rate)
        for _ in range(int(self.search_steps)):
            x_hat = self.generator_(z)
            _, f_fake = self.discriminator_(x_hat)
            loss = search_loss(chunk, x_hat, f_real, f_fake, self.search_lambda)
            (grad,) = torch.autograd.grad(loss.sum(), [z])
            z.grad = grad
            opt.step()
        with torch.no_grad():
            x_hat = self.generator_(z)
            _, f_fake = self.discriminator_(x_hat)
            return search_loss(chunk, x_hat, f_real, f_fake, self.search_lambda).numpy()

    def _get_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        tensors = (prefixed_state("generator", self.generator_) | prefixed_state("discriminator", self.discriminator_)
                   | prefixed_state("encoder", self.encoder_net_))
        return {"input_shape": self.input_shape_}, tensors

    def _set_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        shape = self._saved_input_shape(state)
        check_tensors(tensors, expected_state(lambda: {
            "generator": make_generator(shape, self.latent_dim, self.width),
            "discriminator": Discriminator(shape, self.width),
            "encoder": make_latent_encoder(shape, self.latent_dim, self.width)}))
        with seeded(self.seed):  # the weights are overwritten; the seed only keeps the global RNG untouched
            self._build(shape)
        load_prefixed("generator", self.generator_, tensors)
        load_prefixed("discriminator", self.discriminator_, tensors)
        load_prefixed("encoder", self.encoder_net_, tensors)
