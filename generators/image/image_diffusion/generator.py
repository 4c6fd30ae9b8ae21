"""image_diffusion: a class-conditional denoising diffusion model; samples are deterministic DDIM paths from noise."""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np

from generators.base import torch_generator, torch_threads
from generators.errors import ModelFormatError
from generators.image.base import ImageGenerator, TorchImageNet, from_unit, padded_side, padded_unit_tensors
from generators.image.base import ema_update, epoch_batches, training_subset

log = logging.getLogger("generators.image_diffusion")
MAX_BASE, MAX_STEPS, MAX_BATCH, MAX_GUIDANCE = 256, 1000, 4096, 100.0
PREDICTIONS = ("v", "epsilon")


class ImageDiffusionGenerator(TorchImageNet, ImageGenerator):
    """Learns p(image | label) with a denoising diffusion model (`torch_model.DenoisingUNet`, `loss.diffusion_loss`).

    Images are scaled to [-1, 1] and padded to a multiple of 4 (the padding is part of the target: always black);
    noise levels follow the cosine schedule in continuous time, and the network predicts v (`prediction` "v") or
    the noise ("epsilon"). Labels are dropped to the extra "no label" class for a share `uncond_prob` of training
    images, so one network also learns p(image); sampling then uses classifier-free guidance of weight `guidance`
    (prediction = (1 + guidance) conditional - guidance unconditional; 0 skips the unconditional pass). The saved
    and sampled weights are an exponential moving average (`ema_decay`, warmed up) of the trained ones.

    Sampling is DDIM over `sample_steps` even steps from t = 1 to 0, predicted clean images clipped to [-1, 1] at each
    step; with `eta` 0 (the default) a deterministic path from the starting noise, with eta > 0 each step adds that
    share of ancestral sampling's noise. All noise of an image is drawn from its own generator, seeded per image
    index from a seed the sample's rng gives, and the network always runs on `sample_batch` images at once (the
    last chunk padded), so an image never depends on how many others are drawn with it. Trains `epochs` passes over
    at most `max_train_images` images (stratified subsample), seeded and on `num_threads` threads.
    """

    name = "image_diffusion"

    def __init__(self, *, base: int = 32, epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-3,
                 prediction: str = "v", ema_decay: float = 0.995, uncond_prob: float = 0.1, guidance: float = 0.5,
                 sample_steps: int = 25, eta: float = 0.0, sample_batch: int = 125, max_train_images: int = 20_000,
                 num_threads: int | None = 1, seed: int = 0):
        self.base = base
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.prediction = prediction
        self.ema_decay = ema_decay
        self.uncond_prob = uncond_prob
        self.guidance = guidance
        self.sample_steps = sample_steps
        self.eta = eta
        self.sample_batch = sample_batch
        self.max_train_images = max_train_images
        self.num_threads = num_threads
        self.seed = seed
        self._check_params()  # a bad value is refused when it is given, not after a long fit

    def _network(self):
        from generators.image.image_diffusion.torch_model import DenoisingUNet

        return DenoisingUNet, (self.shape_[2], self.n_classes_, self.base)

    # --------------------------------------------------------------- fit
    def _fit(self, pixels: np.ndarray, classes: np.ndarray) -> None:
        import torch

        from generators.image.image_diffusion.loss import diffusion_loss

        self._check_params()
        rng = np.random.default_rng(self.seed)
        pixels, classes = training_subset(pixels, classes, self.max_train_images, rng)
        x_all = padded_unit_tensors(pixels)[0] * 2.0 - 1.0
        y_all = torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64))
        n = len(x_all)
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            ema = copy.deepcopy(net)
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            g = torch_generator(rng)
            self.history_ = []
            start = time.perf_counter()
            step = 0
            net.train()
            for epoch in range(1, self.epochs + 1):
                total = 0.0
                for idx in epoch_batches(n, self.batch_size, g):
                    x0, y = x_all[idx], y_all[idx]
                    dropped = torch.rand(len(idx), generator=g) < self.uncond_prob
                    y = torch.where(dropped, torch.full_like(y, self.n_classes_), y)
                    t = torch.rand(len(idx), generator=g)
                    noise = torch.randn(x0.shape, generator=g)
                    loss = diffusion_loss(net, x0, y, t, noise, self.prediction)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    opt.step()
                    step += 1
                    ema_update(ema, net, step, self.ema_decay)
                    total += loss.item() * len(idx)
                self.history_.append({"epoch": epoch, "loss": total / n})
                log.info("epoch %d/%d loss %.4f %.1fs", epoch, self.epochs, total / n, time.perf_counter() - start)
        ema.eval()
        self.net_ = ema

    # ------------------------------------------------------------ sample
    def _sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import torch

        h, w, c = self.shape_
        ph, pw = padded_side(h), padded_side(w)
        root = int(rng.integers(0, 2**62))
        chunk = self._chunk()
        out = []
        with torch.no_grad(), torch_threads(self.num_threads):
            for first in range(0, len(classes), chunk):
                index = range(first, min(first + chunk, len(classes)))
                x = torch.zeros((chunk, c, ph, pw), dtype=torch.float32)
                y = torch.zeros(chunk, dtype=torch.int64)
                generators = []
                for j, i in enumerate(index):
                    g = torch.Generator()
                    g.manual_seed(int(np.random.SeedSequence([root, i]).generate_state(1, np.uint64)[0] >> 1))
                    x[j] = torch.randn((c, ph, pw), generator=g)
                    y[j] = int(classes[i])
                    generators.append(g)
                image = self._ddim(x, y, generators)[:len(index), :, :h, :w]
                out.append(((image + 1.0) / 2.0).permute(0, 2, 3, 1).numpy())
        return from_unit(np.concatenate(out))

    def _chunk(self) -> int:
        """Images per network call when sampling: `sample_batch`, fewer when the activations would pass ~256 MB."""
        h, w, c = self.shape_
        per_image = 2 * padded_side(h) * padded_side(w) * (c + 12 * self.base) * 4
        return int(max(1, min(self.sample_batch, 2**28 // per_image)))

    def _ddim(self, x, y, generators):
        """DDIM from noise x at t = 1 to clean images in [-1, 1] at t = 0: deterministic for eta 0; for eta > 0 each
        step adds eta times the DDPM posterior's noise (eta 1: ancestral sampling), drawn from each image's own
        generator (`generators[j]` for row j; rows past them are padding)."""
        import torch

        from generators.image.image_diffusion.loss import alpha_bar

        n = len(x)
        guided = self.guidance > 0
        if guided:
            y = torch.cat([y, torch.full_like(y, self.n_classes_)])
        times = [1.0 - k / self.sample_steps for k in range(self.sample_steps + 1)]
        for t, t_next in zip(times[:-1], times[1:]):
            a, a_next = (float(alpha_bar(torch.tensor([v], dtype=torch.float64))[0]) for v in (t, t_next))
            tt = torch.full((len(y),), t, dtype=torch.float32)
            out = self.net_(torch.cat([x, x]) if guided else x, tt, y)
            if guided:
                out = (1.0 + self.guidance) * out[:n] - self.guidance * out[n:]
            if self.prediction == "v":
                x0 = math.sqrt(a) * x - math.sqrt(1.0 - a) * out
            else:
                x0 = (x - math.sqrt(1.0 - a) * out) / math.sqrt(a)
            x0 = x0.clamp(-1.0, 1.0)
            if t_next == 0.0:
                return x0
            eps = (x - math.sqrt(a) * x0) / math.sqrt(1.0 - a)
            sigma = self.eta * math.sqrt((1.0 - a_next) / (1.0 - a) * (1.0 - a / a_next))
            x = math.sqrt(a_next) * x0 + math.sqrt(max(1.0 - a_next - sigma ** 2, 0.0)) * eps
            if sigma > 0:
                z = torch.zeros_like(x)
                for j, g in enumerate(generators):
                    z[j] = torch.randn(x.shape[1:], generator=g)
                x = x + sigma * z
        return x

    # ------------------------------------------------------- persistence
    def _check_params(self) -> None:
        def whole(key, low, high):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ModelFormatError(f"{self.name}: param {key}={str(value)[:30]} must be a whole number in "
                                       f"{low}..{high}")

        def number(key, low, high, high_open=False):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not (
                    low <= value and (value < high if high_open else value <= high)):
                raise ModelFormatError(f"{self.name}: param {key}={str(value)[:30]} must be a number in "
                                       f"[{low}, {high}{')' if high_open else ']'}")

        whole("base", 4, MAX_BASE)
        whole("epochs", 0, 100_000)
        whole("batch_size", 1, 1 << 16)
        whole("sample_steps", 1, MAX_STEPS)
        whole("sample_batch", 1, MAX_BATCH)
        whole("max_train_images", 1, 1 << 31)
        whole("seed", 0, 2**63 - 1)
        number("learning_rate", 1e-8, 1.0)
        number("ema_decay", 0.0, 1.0, high_open=True)
        number("uncond_prob", 0.0, 1.0, high_open=True)
        number("guidance", 0.0, MAX_GUIDANCE)
        number("eta", 0.0, 1.0)
        if self.prediction not in PREDICTIONS:
            raise ModelFormatError(f"{self.name}: param prediction={str(self.prediction)[:30]!r} must be one of "
                                   f"{', '.join(PREDICTIONS)}")
        if self.num_threads is not None:
            whole("num_threads", 1, 256)
