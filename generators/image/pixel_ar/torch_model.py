"""A class-conditional gated PixelCNN (van den Oord et al., 2016) as a pure nn.Module.

Pixels are generated in raster order; each pixel's channels are drawn independently given the pixels before it
(a simplification for colour images: no red -> green -> blue masking). The vertical stack sees the rows above
(2x3 kernels, shifted down one row before it feeds the horizontal stack); the horizontal stack sees the pixels to
the left in the current row (the first layer strictly to the left). Each layer reaches one row further up, so the
conditional of row r depends only on rows r-1-n_layers..r: `vertical_contributions` and `horizontal_logits` let a
sampler compute one row's context once per row and the row itself once per pixel, on crops, exactly as the full
forward would. Two constant input channels give each pixel its row and column (`with_coordinates`): without them
a few layers cannot tell where in the first rows they are (their receptive field misses the image's edges).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    def __init__(self, in_channels: int, channels: int, n_classes: int, first: bool):
        super().__init__()
        self.first, self.channels = first, channels
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (2, 3))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, 2))
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.cond = nn.Embedding(n_classes, 4 * channels)

    def vertical(self, v: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-activation, gated output) of the vertical stack; row i sees input rows i-1 and i."""
        pre = self.v_conv(F.pad(v, (1, 1, 1, 0))) + cond[:, : 2 * self.channels, None, None]
        return pre, _gate(pre)

    def horizontal(self, h: torch.Tensor, from_above: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The horizontal stack given the vertical stack's (shifted, projected) contribution `from_above`."""
        width = h.shape[3]
        if self.first:  # strictly left of the pixel: columns j-2, j-1
            pre = self.h_conv(F.pad(h, (2, 0)))[..., :width]
        else:  # columns j-1, j
            pre = self.h_conv(F.pad(h, (1, 0)))
        out = self.h_out(_gate(pre + from_above + cond[:, 2 * self.channels:, None, None]))
        return out if self.first else h + out


class GatedPixelCNN(nn.Module):
    """Logits (batch, channels, levels, height, width) of each pixel's intensity level given those before it."""

    def __init__(self, channels: int, n_classes: int, levels: int, width: int, n_layers: int, hidden: int):
        super().__init__()
        self.image_channels, self.levels, self.n_layers = channels, levels, n_layers
        self.layers = nn.ModuleList([GatedLayer(channels + 2 if i == 0 else width, width, n_classes, i == 0)
                                     for i in range(n_layers)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(width, hidden, 1), nn.ReLU(),
                                  nn.Conv2d(hidden, channels * levels, 1))

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        b, _, hh, ww = h.shape
        return self.head(h).view(b, self.image_channels, self.levels, hh, ww)

    @staticmethod
    def with_coordinates(x: torch.Tensor) -> torch.Tensor:
        """x (batch, channels, height, width) with two more channels: row and column, scaled to [-1, 1]."""
        b, _, hh, ww = x.shape
        rows = torch.linspace(-1.0, 1.0, hh).view(1, 1, hh, 1).expand(b, 1, hh, ww)
        cols = torch.linspace(-1.0, 1.0, ww).view(1, 1, 1, ww).expand(b, 1, hh, ww)
        return torch.cat([x, rows, cols], dim=1)

    def forward(self, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """x: (batch, channels, height, width) intensities scaled to [0, 1]."""
        v = h = self.with_coordinates(x)
        for layer in self.layers:
            cond = layer.cond(classes)
            pre, v = layer.vertical(v, cond)
            above = F.pad(pre, (0, 0, 1, 0))[:, :, :-1]  # shift down one row: row i sees rows < i
            h = layer.horizontal(h, layer.v_to_h(above), cond)
        return self._logits(h)

    def vertical_contributions(self, rows_above: torch.Tensor | None, classes: torch.Tensor, width: int
                               ) -> list[torch.Tensor]:
        """Each layer's contribution from above to the next row: (batch, 2 width, 1, W) per layer.

        `rows_above` holds the rows before it (at least n_layers + 1 of them, or all from the image's top row), with
        coordinates (`with_coordinates`); None for the first row.
        """
        out = []
        if rows_above is None:
            for layer in self.layers:
                zero = torch.zeros((len(classes), layer.v_to_h.in_channels, 1, width))
                out.append(layer.v_to_h(zero))
            return out
        v = rows_above
        for layer in self.layers:
            pre, v = layer.vertical(v, layer.cond(classes))
            out.append(layer.v_to_h(pre[:, :, -1:]))
        return out

    def horizontal_logits(self, row: torch.Tensor, contributions: list[torch.Tensor], classes: torch.Tensor
                          ) -> torch.Tensor:
        """Logits (batch, channels, levels, 1, w) of the row's first w pixels, given `row` (batch, channels + 2, 1, w)
        (with coordinates)."""
        h = row
        w = row.shape[3]
        for layer, above in zip(self.layers, contributions):
            h = layer.horizontal(h, above[..., :w], layer.cond(classes))
        return self._logits(h)
