"""conv_vae: a class-conditional convolutional VAE; samples are the decoder's mean images for z from the class prior."""

from __future__ import annotations

import logging
import time

import numpy as np

from generators.base import check_array_keys, torch_generator, torch_threads
from generators.errors import ModelFormatError
from generators.image.base import ImageGenerator, TorchImageNet, check_positive, epoch_batches, from_unit
from generators.image.base import (apply_intensity_maps, intensity_maps, padded_unit_tensors, take_intensity_map,
                                   training_subset)
from generators.image.mixture import MIXTURE_ARRAYS, ClassMixtures

log = logging.getLogger("generators.conv_vae")
MAX_LATENT, MAX_BASE, MAX_COMPONENTS = 1024, 512, 256


class ConvVAEGenerator(TorchImageNet, ImageGenerator):
    """Learns p(image | label) with a convolutional VAE (`torch_model.ConditionalConvVAE`, `loss.vae_loss`).

    Images of any size are padded to a multiple of 4 and the padding is left out of the loss and cropped from
    samples. Trains `epochs` passes over at most `max_train_images` images (stratified subsample), seeded and
    on `num_threads` threads, so the same data and params give the same model.

    `prior_components` > 0 (the default) makes it a two-stage VAE ("ex-post density estimation", Ghosh et al.
    2020): after training, a full-covariance Gaussian mixture per class (at most that many components, one per
    `codes_per_component` images) is fitted to the encoder means of the training images, and samples decode codes
    drawn from it instead of from the N(prior_mean[class], I) the network was trained with, which the encoder's
    codes never fill evenly. With the mixture doing the prior's work, a light KL weight (`beta` 0.2) keeps the
    reconstructions sharper: on Fashion-MNIST this halves the one-stage VAE's Frechet distance (bench/images.py).

    `adversarial_weight` > 0 (default 0.02 per pixel) adds a critic after `adversarial_warmup` of the epochs
    (VAE-GAN style: `generators.image.critic.ConditionalCritic`, spectral norm, projection on the label, hinge
    loss, trained only, never saved) that judges real images against reconstructions and decodes of codes scattered
    around the batch's codes; the decoder then stops settling on the mean image of a neighbourhood of training
    images, which put its samples nearer training images than unseen real ones are. `match_intensities` maps decoded
    intensities per class through a monotone table to the training images' distribution (exact black, saturated
    white). `prior_scale` widens or narrows the mixture's draws. Both weights were chosen on a validation split of
    the benchmark's training images (bench/image_tune.py).
    """

    name = "conv_vae"

    # files saved before the two-stage prior decode from the standard normal prior; before the critic, the decoder
    # trained without one; before prior_scale and match_intensities, samples were the mixture's decodes as drawn
    params_added = {"prior_components": 0, "codes_per_component": 20, "adversarial_weight": 0.0,
                    "adversarial_warmup": 0.25, "prior_scale": 1.0, "match_intensities": False}

    def __init__(self, *, latent_dim: int = 16, base: int = 32, epochs: int = 30, batch_size: int = 128,
                 learning_rate: float = 1e-3, beta: float = 0.2, max_train_images: int = 20_000,
                 prior_components: int = 10, codes_per_component: int = 20, adversarial_weight: float = 0.02,
                 adversarial_warmup: float = 0.25, prior_scale: float = 1.0,
                 match_intensities: bool = True, num_threads: int | None = 1,
                 seed: int = 0):
        self.latent_dim = latent_dim
        self.base = base
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.beta = beta
        self.max_train_images = max_train_images
        self.prior_components = prior_components
        self.codes_per_component = codes_per_component
        self.adversarial_weight = adversarial_weight
        self.adversarial_warmup = adversarial_warmup
        self.prior_scale = prior_scale
        self.match_intensities = match_intensities
        self.num_threads = num_threads
        self.seed = seed

    def _network(self):
        from generators.image.conv_vae.torch_model import ConditionalConvVAE

        h, w, c = self.shape_
        return ConditionalConvVAE, (c, h, w, self.n_classes_, self.latent_dim, self.base)

    # --------------------------------------------------------------- fit
    def _fit(self, pixels: np.ndarray, classes: np.ndarray) -> None:
        import torch

        from generators.image.conv_vae.loss import vae_loss
        from generators.image.critic import adversarial_loss, critic_hinge_loss

        self._check_params()
        rng = np.random.default_rng(self.seed)
        pixels, classes = training_subset(pixels, classes, self.max_train_images, rng)
        x_all, mask = padded_unit_tensors(pixels)
        y_all = torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64))
        n = len(x_all)
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            critic = critic_opt = None
            first_adversarial = self.epochs + 1
            if self.adversarial_weight > 0:
                from generators.image.critic import ConditionalCritic

                h, w, c = self.shape_
                critic = ConditionalCritic(c, h, w, self.n_classes_, self.base)
                critic_opt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
                first_adversarial = int(self.adversarial_warmup * self.epochs) + 1
            # per pixel, so one weight means the same against the summed reconstruction loss at any image size
            adv_weight = float(self.adversarial_weight) * float(mask.sum())
            g = torch_generator(rng)
            self.history_ = []
            start = time.perf_counter()
            net.train()
            for epoch in range(1, self.epochs + 1):
                totals = np.zeros(5)
                adversarial = epoch >= first_adversarial
                for idx in epoch_batches(n, self.batch_size, g):
                    x, y = x_all[idx], y_all[idx]
                    noise = torch.randn((len(idx), self.latent_dim), generator=g)
                    logits, mu, logvar = net(x, y, noise)
                    loss, recon, kl = vae_loss(logits, x, mask, mu, logvar, net.prior_mean(y), self.beta)
                    critic_loss = adv = torch.zeros(())
                    if adversarial:
                        # decoded images the critic judges: the reconstructions, and codes scattered around the
                        # batch's codes as the latent mixture scatters its draws
                        spread = mu.detach().std(0, keepdim=True) if len(idx) > 1 else torch.ones_like(mu)
                        z = mu.detach() + 0.5 * spread * torch.randn(mu.shape, generator=g)
                        fake = torch.cat([torch.sigmoid(logits), torch.sigmoid(net.decode(z, y))]) * mask
                        fy = torch.cat([y, y])
                        critic_loss = critic_hinge_loss(critic(x, y), critic(fake.detach(), fy))
                        critic_opt.zero_grad()
                        critic_loss.backward()
                        critic_opt.step()
                        adv = adversarial_loss(critic(fake, fy))
                        loss = loss + adv_weight * adv
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    totals += np.array([loss.item(), recon.item(), kl.item(), adv.item(), critic_loss.item()]
                                       ) * len(idx)
                loss, recon, kl, adv, critic_loss = (totals / n).tolist()
                record = {"epoch": epoch, "loss": loss, "reconstruction": recon, "kl": kl}
                if adversarial:
                    record.update(adversarial=adv, critic=critic_loss)
                self.history_.append(record)
                log.info("epoch %d/%d loss %.2f (reconstruction %.2f, kl %.2f, adversarial %.2f, critic %.2f) %.1fs",
                         epoch, self.epochs, loss, recon, kl, adv, critic_loss, time.perf_counter() - start)
            net.eval()
            self.mixtures_ = None
            if self.prior_components:
                with torch.no_grad():
                    codes = torch.cat([net.encode(x_all[i:i + 1024], y_all[i:i + 1024])[0]
                                       for i in range(0, n, 1024)]).numpy().astype(np.float64)
                self.mixtures_ = ClassMixtures.fit(codes, classes, self.n_classes_, self.prior_components,
                                                   self.codes_per_component, 1e-4, rng)
        self.net_ = net
        self.intensity_map_ = None
        if self.match_intensities:
            # decoded draws, as many per class as training images, matched to the training images' intensities
            self.intensity_map_ = intensity_maps(pixels, classes, self._decode_draws(classes, rng), self.n_classes_)

    # ------------------------------------------------------------ sample
    def _sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pixels = self._decode_draws(classes, rng)
        return apply_intensity_maps(pixels, classes, self.intensity_map_)

    def _decode_draws(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 decoder mean images of codes drawn from each class's prior (the latent mixture, if fitted)."""
        import torch

        g = torch_generator(rng)
        h, w, _ = self.shape_
        # at most ~256 MB of activations per chunk, whatever size the images are
        chunk = int(max(1, min(1024, 2**28 // ((h + 3) * (w + 3) * (self.shape_[2] + 2 * self.base) * 4 * 2))))
        out = []
        with torch.no_grad(), torch_threads(self.num_threads):
            for i in range(0, len(classes), chunk):
                y = torch.from_numpy(np.ascontiguousarray(classes[i:i + chunk], dtype=np.int64))
                if self.mixtures_ is None:
                    z = self.net_.prior_mean(y) + torch.randn((len(y), self.latent_dim), generator=g)
                else:
                    z = torch.from_numpy(self.mixtures_.draw(classes[i:i + chunk], rng, self.prior_scale)
                                         .astype(np.float32))
                mean = torch.sigmoid(self.net_.decode(z, y))[:, :, :h, :w]
                out.append(mean.permute(0, 2, 3, 1).numpy())
        return from_unit(np.concatenate(out))

    # ------------------------------------------------------- persistence
    def _get_state(self):
        state, arrays = TorchImageNet._get_state(self)
        return state, {**arrays, **({} if self.mixtures_ is None else self.mixtures_.arrays("prior.")),
                       **({} if self.intensity_map_ is None else {"intensity_map": self.intensity_map_})}

    def _set_state(self, state, arrays):
        self.intensity_map_, arrays = take_intensity_map(arrays, self.match_intensities, self.n_classes_)
        prior = {k: v for k, v in arrays.items() if k.startswith("prior.")}
        TorchImageNet._set_state(self, state, {k: v for k, v in arrays.items() if k not in prior})
        if not self.prior_components:
            if prior:
                raise ModelFormatError(f"the weights hold unexpected array {sorted(prior)[0]!r}: this model has no "
                                       "latent mixture (prior_components 0)")
            self.mixtures_ = None
            return
        check_array_keys(prior, [f"prior.{k}" for k in MIXTURE_ARRAYS])
        self.mixtures_ = ClassMixtures.from_arrays(prior, "prior.", self.n_classes_, self.prior_components,
                                                   self.latent_dim)

    def _check_params(self) -> None:
        check_positive(self.name, latent_dim=self.latent_dim, base=self.base, batch_size=self.batch_size,
                       codes_per_component=self.codes_per_component, prior_scale=self.prior_scale)
        if not isinstance(self.match_intensities, bool):
            raise ModelFormatError(f"{self.name}: param match_intensities must be true or false")
        for key in ("adversarial_weight", "adversarial_warmup"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6 or (
                    key == "adversarial_warmup" and value > 1):
                raise ModelFormatError(f"{self.name}: param {key}={str(value)[:30]} must be a number >= 0"
                                       + (" and <= 1" if key == "adversarial_warmup" else ""))
        if isinstance(self.prior_components, bool) or not isinstance(self.prior_components, int) or not (
                0 <= self.prior_components <= MAX_COMPONENTS):
            raise ModelFormatError(f"{self.name}: param prior_components must be an integer in 0..{MAX_COMPONENTS}")
        if self.latent_dim > MAX_LATENT or self.base > MAX_BASE:
            raise ModelFormatError(f"{self.name}: latent_dim <= {MAX_LATENT} and base <= {MAX_BASE} required")
        if self.num_threads is not None and not 1 <= self.num_threads <= 256:
            raise ModelFormatError(f"{self.name}: param num_threads={self.num_threads} is outside 1..256")
