"""conv_vae: a class-conditional convolutional VAE; samples are the decoder's mean images for z from the class prior."""

from __future__ import annotations

import logging
import time

import numpy as np

from generators.base import torch_generator
from generators.errors import ModelFormatError
from generators.base import torch_threads
from generators.image.base import ImageGenerator, TorchImageNet, check_positive, from_unit, to_unit

log = logging.getLogger("generators.conv_vae")
MAX_LATENT, MAX_BASE = 1024, 512


class ConvVAEGenerator(TorchImageNet, ImageGenerator):
    """Learns p(image | label) with a convolutional VAE (`torch_model.ConditionalConvVAE`, `loss.vae_loss`).

    Images of any size are padded to a multiple of 4 and the padding is left out of the loss and cropped from
    samples. Trains `epochs` passes over at most `max_train_images` images (stratified subsample), seeded and
    on `num_threads` threads, so the same data and params give the same model.
    """

    name = "conv_vae"

    def __init__(self, *, latent_dim: int = 16, base: int = 32, epochs: int = 30, batch_size: int = 128,
                 learning_rate: float = 1e-3, beta: float = 1.0, max_train_images: int = 20_000,
                 num_threads: int | None = 1, seed: int = 0):
        self.latent_dim = latent_dim
        self.base = base
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.beta = beta
        self.max_train_images = max_train_images
        self.num_threads = num_threads
        self.seed = seed

    def _build(self, device=None):
        import torch

        from generators.image.conv_vae.torch_model import ConditionalConvVAE

        h, w, c = self.shape_
        if device is None:
            return ConditionalConvVAE(c, h, w, self.n_classes_, self.latent_dim, self.base)
        with torch.device(device):
            return ConditionalConvVAE(c, h, w, self.n_classes_, self.latent_dim, self.base)

    def _padded(self, pixels: np.ndarray):
        """(images, mask) as float32 tensors (n, c, H4, W4): [0, 1] intensities, zero padding right and below."""
        import torch

        from generators.image.conv_vae.torch_model import padded_side

        n, h, w, c = pixels.shape
        x = np.zeros((n, c, padded_side(h), padded_side(w)), dtype=np.float32)
        x[:, :, :h, :w] = to_unit(pixels).transpose(0, 3, 1, 2)
        mask = np.zeros((1, c, padded_side(h), padded_side(w)), dtype=np.float32)
        mask[:, :, :h, :w] = 1.0
        return torch.from_numpy(x), torch.from_numpy(mask)

    # --------------------------------------------------------------- fit
    def _fit(self, pixels: np.ndarray, classes: np.ndarray) -> None:
        import torch

        from generators.image.conv_vae.loss import vae_loss

        self._check_params()
        rng = np.random.default_rng(self.seed)
        if len(pixels) > self.max_train_images:
            keep = np.sort(rng.permutation(len(pixels))[: self.max_train_images])
            pixels, classes = pixels[keep], classes[keep]
        x_all, mask = self._padded(pixels)
        y_all = torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64))
        n = len(x_all)
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            g = torch_generator(rng)
            self.history_ = []
            start = time.perf_counter()
            net.train()
            for epoch in range(1, self.epochs + 1):
                order = torch.randperm(n, generator=g)
                totals = np.zeros(3)
                for i in range(0, n, self.batch_size):
                    idx = order[i:i + self.batch_size]
                    noise = torch.randn((len(idx), self.latent_dim), generator=g)
                    logits, mu, logvar = net(x_all[idx], y_all[idx], noise)
                    loss, recon, kl = vae_loss(logits, x_all[idx], mask, mu, logvar, net.prior_mean(y_all[idx]),
                                               self.beta)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    totals += np.array([loss.item(), recon.item(), kl.item()]) * len(idx)
                loss, recon, kl = (totals / n).tolist()
                self.history_.append({"epoch": epoch, "loss": loss, "reconstruction": recon, "kl": kl})
                log.info("epoch %d/%d loss %.2f (reconstruction %.2f, kl %.2f) %.1fs", epoch, self.epochs, loss,
                         recon, kl, time.perf_counter() - start)
            net.eval()
        self.net_ = net

    # ------------------------------------------------------------ sample
    def _sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import torch

        g = torch_generator(rng)
        h, w, _ = self.shape_
        # at most ~256 MB of activations per chunk, whatever size the images are
        chunk = int(max(1, min(1024, 2**28 // ((h + 3) * (w + 3) * (self.shape_[2] + 2 * self.base) * 4 * 2))))
        out = []
        with torch.no_grad(), torch_threads(self.num_threads):
            for i in range(0, len(classes), chunk):
                y = torch.from_numpy(np.ascontiguousarray(classes[i:i + chunk], dtype=np.int64))
                z = self.net_.prior_mean(y) + torch.randn((len(y), self.latent_dim), generator=g)
                mean = torch.sigmoid(self.net_.decode(z, y))[:, :, :h, :w]
                out.append(mean.permute(0, 2, 3, 1).numpy())
        return from_unit(np.concatenate(out))

    # ------------------------------------------------------- persistence
    def _check_params(self) -> None:
        check_positive(self.name, latent_dim=self.latent_dim, base=self.base, batch_size=self.batch_size)
        if self.latent_dim > MAX_LATENT or self.base > MAX_BASE:
            raise ModelFormatError(f"{self.name}: latent_dim <= {MAX_LATENT} and base <= {MAX_BASE} required")
        if self.num_threads is not None and not 1 <= self.num_threads <= 256:
            raise ModelFormatError(f"{self.name}: param num_threads={self.num_threads} is outside 1..256")
