"""image_gan: a class-conditional GAN; samples are the EMA generator's images of z ~ N(0, I) for the class."""

from __future__ import annotations

import copy
import logging
import time

import numpy as np

from generators.base import torch_generator, torch_threads
from generators.errors import ModelFormatError
from generators.image.base import ImageGenerator, TorchImageNet, check_positive, epoch_batches, from_unit
from generators.image.base import (apply_intensity_maps, intensity_maps, padded_unit_tensors, take_intensity_map,
                                   ema_update, training_subset)

log = logging.getLogger("generators.image_gan")
MAX_LATENT, MAX_BASE = 1024, 512


class ImageGANGenerator(TorchImageNet, ImageGenerator):
    """Learns p(image | label) with a conditional GAN (`torch_model.ConditionalImageGenerator` against the
    `ConditionalCritic` it shares with conv_vae in `generators.image.critic`: spectral norm, projection on the label,
    hinge loss).

    The generator upsamples by nearest neighbour and convolves (no transposed convolutions, so no checkerboard) and
    normalises per image (group norm), so a sample never depends on the rest of its batch. One critic step per
    generator step, both Adam(`learning_rate`, betas (0.5, 0.999)); the saved and sampled generator is the
    exponential moving average of the trained one's weights (`ema_decay`, warmed up over the first steps). Images
    are padded to a multiple of 4 (zero padding the critic also sees on generated images) and samples are cropped.
    `match_intensities` maps generated intensities per class through a monotone table to the training images'
    distribution (exact black, saturated white), as conv_vae does. Trains `epochs` passes over at most
    `max_train_images` images (stratified subsample), seeded and on `num_threads` threads: same data and params give
    the same model.
    """

    name = "image_gan"

    def __init__(self, *, latent_dim: int = 32, base: int = 32, epochs: int = 60, batch_size: int = 64,
                 learning_rate: float = 2e-4, ema_decay: float = 0.999, max_train_images: int = 20_000,
                 match_intensities: bool = True, num_threads: int | None = 1, seed: int = 0):
        self.latent_dim = latent_dim
        self.base = base
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.ema_decay = ema_decay
        self.max_train_images = max_train_images
        self.match_intensities = match_intensities
        self.num_threads = num_threads
        self.seed = seed

    def _network(self):
        from generators.image.image_gan.torch_model import ConditionalImageGenerator

        h, w, c = self.shape_
        return ConditionalImageGenerator, (c, h, w, self.n_classes_, self.latent_dim, self.base)

    # --------------------------------------------------------------- fit
    def _fit(self, pixels: np.ndarray, classes: np.ndarray) -> None:
        import torch

        from generators.image.critic import ConditionalCritic, adversarial_loss, critic_hinge_loss

        self._check_params()
        rng = np.random.default_rng(self.seed)
        pixels, classes = training_subset(pixels, classes, self.max_train_images, rng)
        x_all, mask = padded_unit_tensors(pixels)
        y_all = torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64))
        n = len(x_all)
        h, w, c = self.shape_
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            ema = copy.deepcopy(net)
            critic = ConditionalCritic(c, h, w, self.n_classes_, self.base)
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, betas=(0.5, 0.999))
            critic_opt = torch.optim.Adam(critic.parameters(), lr=self.learning_rate, betas=(0.5, 0.999))
            g = torch_generator(rng)
            self.history_ = []
            start = time.perf_counter()
            step = 0
            for epoch in range(1, self.epochs + 1):
                totals = np.zeros(2)
                for idx in epoch_batches(n, self.batch_size, g):
                    x, y = x_all[idx], y_all[idx]
                    z = torch.randn((len(idx), self.latent_dim), generator=g)
                    fake = torch.sigmoid(net(z, y)) * mask
                    critic_loss = critic_hinge_loss(critic(x, y), critic(fake.detach(), y))
                    critic_opt.zero_grad()
                    critic_loss.backward()
                    critic_opt.step()
                    adv = adversarial_loss(critic(fake, y))
                    opt.zero_grad()
                    adv.backward()
                    opt.step()
                    step += 1
                    ema_update(ema, net, step, self.ema_decay)
                    totals += np.array([adv.item(), critic_loss.item()]) * len(idx)
                adv, critic_loss = (totals / n).tolist()
                self.history_.append({"epoch": epoch, "generator": adv, "critic": critic_loss})
                log.info("epoch %d/%d generator %.3f critic %.3f %.1fs", epoch, self.epochs, adv, critic_loss,
                         time.perf_counter() - start)
        ema.eval()
        self.net_ = ema
        self.intensity_map_ = None
        if self.match_intensities:
            # generated images, as many per class as training images, matched to the training images' intensities
            self.intensity_map_ = intensity_maps(pixels, classes, self._generate(classes, rng), self.n_classes_)

    # ------------------------------------------------------------ sample
    def _sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pixels = self._generate(classes, rng)
        return apply_intensity_maps(pixels, classes, self.intensity_map_)

    def _generate(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 images of the EMA generator for codes z ~ N(0, I), one per class index, all codes drawn first."""
        import torch

        g = torch_generator(rng)
        h, w, _ = self.shape_
        z_all = torch.randn((len(classes), self.latent_dim), generator=g)
        y_all = torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64))
        # at most ~256 MB of activations per chunk, whatever size the images are
        chunk = int(max(1, min(1024, 2**28 // ((h + 3) * (w + 3) * (self.shape_[2] + 2 * self.base) * 4 * 2))))
        out = []
        with torch.no_grad(), torch_threads(self.num_threads):
            for i in range(0, len(classes), chunk):
                image = torch.sigmoid(self.net_(z_all[i:i + chunk], y_all[i:i + chunk]))[:, :, :h, :w]
                out.append(image.permute(0, 2, 3, 1).numpy())
        if not out:
            return np.zeros((0, *self.shape_), dtype=np.uint8)
        return from_unit(np.concatenate(out))

    # ------------------------------------------------------- persistence
    def _get_state(self):
        state, arrays = TorchImageNet._get_state(self)
        return state, {**arrays, **({} if self.intensity_map_ is None else {"intensity_map": self.intensity_map_})}

    def _set_state(self, state, arrays):
        self.intensity_map_, arrays = take_intensity_map(arrays, self.match_intensities, self.n_classes_)
        TorchImageNet._set_state(self, state, arrays)

    def _check_params(self) -> None:
        check_positive(self.name, latent_dim=self.latent_dim, base=self.base, batch_size=self.batch_size,
                       learning_rate=self.learning_rate, max_train_images=self.max_train_images)
        if not isinstance(self.match_intensities, bool):
            raise ModelFormatError(f"{self.name}: param match_intensities must be true or false")
        for key in ("latent_dim", "base", "epochs", "batch_size", "max_train_images"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "epochs" else 1):
                raise ModelFormatError(f"{self.name}: param {key}={str(value)[:30]} must be a whole number")
        if isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, (int, float)) or not (
                0 <= self.ema_decay < 1):
            raise ModelFormatError(f"{self.name}: param ema_decay={str(self.ema_decay)[:30]} must be in [0, 1)")
        if self.latent_dim > MAX_LATENT or self.base > MAX_BASE:
            raise ModelFormatError(f"{self.name}: latent_dim <= {MAX_LATENT} and base <= {MAX_BASE} required")
        if self.num_threads is not None and not 1 <= self.num_threads <= 256:
            raise ModelFormatError(f"{self.name}: param num_threads={self.num_threads} is outside 1..256")
