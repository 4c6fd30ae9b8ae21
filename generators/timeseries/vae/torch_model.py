"""The network: a conv encoder and a dense + conv decoder over fixed-length padded sequences (TimeVAE-like),
with a length head, both conditioned on the context."""

from __future__ import annotations

import torch
from torch import nn


class SequenceVAENet(nn.Module):
    """q(z | x, context) and p(x, length | z, context) over sequences padded to `horizon` steps."""

    def __init__(self, in_channels: int, out_channels: int, horizon: int, context_sizes: list[int],
                 embedding_dim: int, hidden: int, latent_dim: int):
        super().__init__()
        k, e = len(context_sizes), embedding_dim
        self.horizon, self.hidden, self.latent_dim = horizon, hidden, latent_dim
        self.context_sizes = list(context_sizes)
        ctx = [0, *torch.tensor(context_sizes or [1]).cumsum(0)[:-1].tolist()]
        self.register_buffer("context_offsets", torch.tensor(ctx[:k] if k else [0]))
        self.context_embed = nn.Embedding(max(sum(context_sizes), 1), e)
        self.context_dim = max(k, 1) * e
        self.enc1 = nn.Conv1d(in_channels + self.context_dim, hidden, 5, padding=2)
        self.enc2 = nn.Conv1d(hidden, hidden, 5, stride=2, padding=2)
        self.enc_out = nn.Linear(hidden * ((horizon + 1) // 2), 2 * latent_dim)
        self.dec_in = nn.Linear(latent_dim + self.context_dim, hidden * horizon)
        self.dec1 = nn.Conv1d(hidden, hidden, 5, padding=2)
        self.dec_out = nn.Conv1d(hidden, out_channels, 1)
        self.length_head = nn.Linear(latent_dim + self.context_dim, horizon)

    def context_vector(self, context: torch.Tensor) -> torch.Tensor:
        if not self.context_sizes:
            return torch.zeros((context.shape[0], self.context_dim))
        return self.context_embed(context + self.context_offsets).flatten(1)

    def encode(self, x: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of x (B, T, C)."""
        h = torch.cat([x.transpose(1, 2), ctx[:, :, None].expand(-1, -1, x.shape[1])], dim=1)
        h = torch.relu(self.enc2(torch.relu(self.enc1(h))))
        mu, logvar = self.enc_out(h.flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-step outputs (B, T, out_channels), length logits (B, T): class i = i + 1 steps)."""
        zc = torch.cat([z, ctx], dim=1)
        h = torch.relu(self.dec_in(zc)).view(-1, self.hidden, self.horizon)
        out = self.dec_out(torch.relu(self.dec1(h))).transpose(1, 2)
        return out, self.length_head(zc)
