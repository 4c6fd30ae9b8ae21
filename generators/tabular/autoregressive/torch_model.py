"""The network: one masked MLP per column, all evaluated in one batched pass."""

from __future__ import annotations

import torch
from torch import nn


class ColumnwiseAutoregressiveNet(nn.Module):
    """p(x_j | x_<j) for every column j: token embeddings of earlier columns -> a per-column 2-layer MLP -> logits.

    Vocabularies of different sizes are padded to the largest; padded logits are masked to -inf.
    """

    def __init__(self, vocab_sizes: list[int], embedding_dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        m, e, h = len(vocab_sizes), embedding_dim, hidden
        self.vocab_sizes = list(vocab_sizes)
        vmax = max(vocab_sizes)
        self.register_buffer("offsets", torch.tensor([0] + list(torch.tensor(vocab_sizes).cumsum(0)[:-1].tolist())))
        self.embed = nn.Embedding(sum(vocab_sizes), e)
        # column j sees the embeddings of columns < j only
        self.register_buffer("prefix_mask", torch.tril(torch.ones(m, m), diagonal=-1).repeat_interleave(e, dim=1))
        self.w1 = nn.Parameter(torch.randn(m, m * e, h) / (m * e) ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(m, h))
        self.w2 = nn.Parameter(torch.randn(m, h, h) / h ** 0.5)
        self.b2 = nn.Parameter(torch.zeros(m, h))
        self.w3 = nn.Parameter(torch.randn(m, h, vmax) / h ** 0.5 * 0.1)
        self.b3 = nn.Parameter(torch.zeros(m, vmax))
        pad = torch.zeros(m, vmax)
        for j, v in enumerate(vocab_sizes):
            pad[j, v:] = float("-inf")
        self.register_buffer("logit_pad", pad)
        self.dropout = nn.Dropout(dropout)

    def _context(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed(tokens + self.offsets).flatten(1)  # (B, m*e)

    def context_masks(self, given: torch.Tensor) -> torch.Tensor:
        """Which columns each column sees, per row: (m, B, m*e) from `given` (B, m), the columns sampled first.

        Rows are generated in the order: given columns (in column order), then the others (in column order). So
        a given column j sees the given columns before it; any other column sees the columns before it and every
        given column. With nothing given this is the plain prefix mask.
        """
        e = self.prefix_mask.shape[1] // len(self.vocab_sizes)
        prefix = self.prefix_mask[:, ::e] > 0  # (m, m): column j sees column k < j
        g = given[None, :, :]  # (1, B, m)
        own = given.T[:, :, None]  # (m, B, 1): is column j itself given in that row
        seen = torch.where(own, prefix[:, None, :] & g, prefix[:, None, :] | g)
        return seen.repeat_interleave(e, dim=2).to(self.prefix_mask.dtype)

    def forward(self, tokens: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (m, B, vmax) for every column given the true earlier columns (teacher forcing); `given` (B, m)
        marks per row the columns generated first (see `context_masks`)."""
        ctx = self._context(tokens)
        mask = self.prefix_mask[:, None, :] if given is None else self.context_masks(given)
        x = ctx.unsqueeze(0) * mask  # (m, B, m*e)
        h = self.dropout(torch.relu(torch.baddbmm(self.b1[:, None, :], x, self.w1)))
        h = self.dropout(torch.relu(torch.baddbmm(self.b2[:, None, :], h, self.w2)))
        return torch.baddbmm(self.b3[:, None, :], h, self.w3) + self.logit_pad[:, None, :]

    def column_logits(self, tokens: torch.Tensor, j: int, seen: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, vocab_j) of column j given tokens whose columns < j are filled; `seen` (m*e,) replaces the
        prefix mask when other columns were generated first."""
        x = self._context(tokens) * (self.prefix_mask[j] if seen is None else seen)
        h = torch.relu(x @ self.w1[j] + self.b1[j])
        h = torch.relu(h @ self.w2[j] + self.b2[j])
        return (h @ self.w3[j] + self.b3[j])[:, : self.vocab_sizes[j]]

    def column_logits_both(self, tokens: torch.Tensor, j: int, later: list[int]) -> torch.Tensor:
        """Logits (2, B, vocab_j) of column j seeing the columns before it and also the columns `later` (> j,
        generated first), then the columns before it only: one embedding and one first-layer product over the
        columns before j shared by both (the later columns only add their own share of the first layer)."""
        e = self.embed.embedding_dim
        ctx = self._context(tokens)
        pre = torch.addmm(self.b1[j], ctx[:, : j * e], self.w1[j, : j * e])
        extra = torch.cat([torch.arange(k * e, (k + 1) * e) for k in later])
        h = torch.relu(torch.stack([pre + ctx[:, extra] @ self.w1[j, extra], pre]))
        h = torch.relu(h @ self.w2[j] + self.b2[j])
        return (h @ self.w3[j] + self.b3[j])[..., : self.vocab_sizes[j]]
