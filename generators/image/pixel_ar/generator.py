"""pixel_ar: a class-conditional gated PixelCNN over intensity levels; batched raster-order sampling."""

from __future__ import annotations

import logging
import time

import numpy as np

from generators.base import torch_generator
from generators.errors import ModelFormatError
from generators.base import torch_threads
from generators.image.base import ImageGenerator, TorchImageNet, check_positive, epoch_batches, training_subset

log = logging.getLogger("generators.pixel_ar")
MAX_WIDTH, MAX_LAYERS, MAX_LEVELS = 512, 64, 256


class PixelARGenerator(TorchImageNet, ImageGenerator):
    """Learns p(image | label) pixel by pixel (`torch_model.GatedPixelCNN`, `loss.pixel_nll`).

    Intensities are quantised to `levels` equal bins of 0..255 (256 = exact) and modelled as categories; a sampled
    level l decodes to l * 255 / (levels - 1), so black and white stay exact. Sampling is sequential by nature:
    height x width steps, each run on a whole batch of `sample_batch` images at once and only on the rows and
    columns the step depends on. At 28x28
    with the defaults it draws about 13 images per second on one thread of a shared 2-core machine (batch 375,
    bench/images.py); training runs at about 40 images per second per epoch there.
    """

    name = "pixel_ar"

    def __init__(self, *, levels: int = 32, width: int = 32, n_layers: int = 8, hidden: int = 64, epochs: int = 10,
                 batch_size: int = 64, learning_rate: float = 1e-3, max_train_images: int = 10_000,
                 sample_batch: int = 512, num_threads: int | None = 1, seed: int = 0):
        self.levels = levels
        self.width = width
        self.n_layers = n_layers
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_train_images = max_train_images
        self.sample_batch = sample_batch
        self.num_threads = num_threads
        self.seed = seed

    def _network(self):
        from generators.image.pixel_ar.torch_model import GatedPixelCNN

        return GatedPixelCNN, (self.shape_[2], self.n_classes_, self.levels, self.width, self.n_layers, self.hidden)

    def _to_levels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (n, h, w, c) -> int64 levels (n, c, h, w)."""
        return np.ascontiguousarray((pixels.astype(np.int64) * self.levels // 256).transpose(0, 3, 1, 2))

    def _scaled(self, levels):
        return levels.to(dtype=__import__("torch").float32) / max(self.levels - 1, 1)

    # --------------------------------------------------------------- fit
    def _fit(self, pixels: np.ndarray, classes: np.ndarray) -> None:
        import torch

        from generators.image.pixel_ar.loss import pixel_nll

        self._check_params()
        rng = np.random.default_rng(self.seed)
        pixels, classes = training_subset(pixels, classes, self.max_train_images, rng)
        levels = torch.from_numpy(self._to_levels(pixels))
        y_all = torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64))
        n = len(levels)
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            g = torch_generator(rng)
            self.history_ = []
            start = time.perf_counter()
            net.train()
            for epoch in range(1, self.epochs + 1):
                total = 0.0
                for idx in epoch_batches(n, self.batch_size, g):
                    target = levels[idx]
                    loss = pixel_nll(net(self._scaled(target), y_all[idx]), target)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                nll = total / n
                bits = nll / (np.log(2) * int(np.prod(self.shape_)))
                self.history_.append({"epoch": epoch, "nll": nll, "bits_per_dim": bits})
                log.info("epoch %d/%d nll %.1f nats (%.3f bits/dim) %.1fs", epoch, self.epochs, nll, bits,
                         time.perf_counter() - start)
            net.eval()
        self.net_ = net

    # ------------------------------------------------------------ sample
    def _sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import torch

        g = torch_generator(rng)
        h, w, c = self.shape_
        reach = self.n_layers + 1  # rows above a row that its conditional depends on
        # at most ~256 MB of canvases and activations per batch, whatever size the images are
        batch = int(max(1, min(self.sample_batch, 2**28 // (h * w * (c + 2 + 4 * self.width) * 4))))
        out = []
        with torch.no_grad(), torch_threads(self.num_threads):
            for start in range(0, len(classes), batch):
                y = torch.from_numpy(np.ascontiguousarray(classes[start:start + batch], dtype=np.int64))
                b = len(y)
                canvas = torch.zeros((b, c, h, w), dtype=torch.int64)
                # the network's input: scaled levels (filled in as they are drawn) and the coordinate channels
                scaled = self.net_.with_coordinates(torch.zeros((b, c, h, w), dtype=torch.float32))
                for r in range(h):
                    above = None if r == 0 else scaled[:, :, max(0, r - reach):r]
                    contributions = self.net_.vertical_contributions(above, y, w)
                    for col in range(w):
                        logits = self.net_.horizontal_logits(scaled[:, :, r:r + 1, :col + 1], contributions, y)
                        probs = torch.softmax(logits[:, :, :, 0, col].reshape(b * c, self.levels), dim=1)
                        level = torch.multinomial(probs, 1, generator=g).view(b, c)
                        canvas[:, :, r, col] = level
                        scaled[:, :c, r, col] = self._scaled(level)
                out.append(canvas.numpy())
        levels = np.concatenate(out).transpose(0, 2, 3, 1)
        # level l decodes to l * 255 / (levels - 1): 0 and 255 stay exact (a bin's centre would turn a black
        # background grey, which the gate sees at once), 256 levels decode to themselves, and 17 levels to the
        # digits' 17 grey levels
        return np.rint(levels * (255.0 / (self.levels - 1))).astype(np.uint8)

    # ------------------------------------------------------- persistence
    def _check_params(self) -> None:
        check_positive(self.name, levels=self.levels, width=self.width, n_layers=self.n_layers, hidden=self.hidden,
                       batch_size=self.batch_size, sample_batch=self.sample_batch)
        if not (2 <= self.levels <= MAX_LEVELS and self.width <= MAX_WIDTH and self.hidden <= MAX_WIDTH
                and self.n_layers <= MAX_LAYERS):
            raise ModelFormatError(f"{self.name}: levels in 2..{MAX_LEVELS}, width and hidden <= {MAX_WIDTH}, "
                                   f"n_layers <= {MAX_LAYERS} required")
        if self.num_threads is not None and not 1 <= self.num_threads <= 256:
            raise ModelFormatError(f"{self.name}: param num_threads={self.num_threads} is outside 1..256")
