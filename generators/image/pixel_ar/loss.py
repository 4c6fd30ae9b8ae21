"""The PixelCNN's loss: cross-entropy of every pixel channel's intensity level (nats per image)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_nll(logits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean over images of the summed negative log-likelihood; logits (b, c, L, h, w), levels (b, c, h, w) int64."""
    return F.cross_entropy(logits.permute(0, 2, 1, 3, 4), levels, reduction="none").flatten(1).sum(1).mean()
