"""The network: a GRU over steps, and per step one masked MLP head per token column (columns drawn in turn)."""

from __future__ import annotations

import torch
from torch import nn


class StepwiseGRUNet(nn.Module):
    """p(step_t | steps_<t, context): a GRU carries the history; within a step, column j sees columns < j.

    A step is a row of tokens, one per column (the stop token first, then the time step, then the values);
    vocabularies of different sizes are padded to the largest and the padding masked to -inf. The context
    (one code per context column) sets the GRU's initial state and joins every step's input.

    With `meta_sizes` (per-sequence values: a token per meta column, e.g. a column's mean and spread in its
    sequence) a meta head draws them first, column after column, from the context; their embeddings then join
    the context as the condition of every step.
    """

    def __init__(self, vocab_sizes: list[int], context_sizes: list[int], embedding_dim: int, hidden: int,
                 head_hidden: int, dropout: float = 0.0, meta_sizes: list[int] | None = None):
        super().__init__()
        m, e, h, k = len(vocab_sizes), embedding_dim, hidden, len(context_sizes)
        self.vocab_sizes = list(vocab_sizes)
        self.context_sizes = list(context_sizes)
        vmax = max(vocab_sizes)
        self.register_buffer("offsets", torch.tensor([0, *torch.tensor(vocab_sizes).cumsum(0)[:-1].tolist()]))
        ctx = [0, *torch.tensor(context_sizes or [1]).cumsum(0)[:-1].tolist()]
        self.register_buffer("context_offsets", torch.tensor(ctx[:k] if k else [0]))
        self.embed = nn.Embedding(sum(vocab_sizes), e)
        self.context_embed = nn.Embedding(max(sum(context_sizes), 1), e)
        self.context_dim = max(k, 1) * e
        self.meta_sizes = list(meta_sizes or [])
        self.condition_dim = self.context_dim + len(self.meta_sizes) * e
        self.initial = nn.Linear(self.condition_dim, h)
        self.bos = nn.Parameter(torch.zeros(m * e))
        self.gru = nn.GRU(m * e + self.condition_dim, h, batch_first=True)
        # head j sees the GRU state and the embeddings of this step's columns < j
        self.register_buffer("prefix_mask", torch.tril(torch.ones(m, m), diagonal=-1).repeat_interleave(e, dim=1))
        self.w_state = nn.Parameter(torch.randn(m, h, head_hidden) / h ** 0.5)
        self.w_prefix = nn.Parameter(torch.randn(m, m * e, head_hidden) / (m * e) ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(m, head_hidden))
        self.w2 = nn.Parameter(torch.randn(m, head_hidden, vmax) / head_hidden ** 0.5 * 0.1)
        self.b2 = nn.Parameter(torch.zeros(m, vmax))
        pad = torch.zeros(m, vmax)
        for j, v in enumerate(vocab_sizes):
            pad[j, v:] = float("-inf")
        self.register_buffer("logit_pad", pad)
        self.dropout = nn.Dropout(dropout)
        if self.meta_sizes:  # created last: a network without meta draws the same initial weights as before
            mm, mv = len(self.meta_sizes), max(self.meta_sizes)
            self.register_buffer("meta_offsets",
                                 torch.tensor([0, *torch.tensor(self.meta_sizes).cumsum(0)[:-1].tolist()]))
            self.meta_embed = nn.Embedding(sum(self.meta_sizes), e)
            self.register_buffer("meta_prefix_mask",
                                 torch.tril(torch.ones(mm, mm), diagonal=-1).repeat_interleave(e, dim=1))
            self.meta_w_context = nn.Parameter(torch.randn(mm, self.context_dim, head_hidden) / self.context_dim ** 0.5)
            self.meta_w_prefix = nn.Parameter(torch.randn(mm, mm * e, head_hidden) / (mm * e) ** 0.5)
            self.meta_b1 = nn.Parameter(torch.zeros(mm, head_hidden))
            self.meta_w2 = nn.Parameter(torch.randn(mm, head_hidden, mv) / head_hidden ** 0.5 * 0.1)
            self.meta_b2 = nn.Parameter(torch.zeros(mm, mv))
            meta_pad = torch.zeros(mm, mv)
            for j, v in enumerate(self.meta_sizes):
                meta_pad[j, v:] = float("-inf")
            self.register_buffer("meta_logit_pad", meta_pad)

    def context_vector(self, context: torch.Tensor) -> torch.Tensor:
        """(B, context_dim) from context codes (B, k); zeros when there is no context."""
        if not self.context_sizes:
            return torch.zeros((context.shape[0], self.context_dim))
        return self.context_embed(context + self.context_offsets).flatten(1)

    def condition(self, ctx: torch.Tensor, meta: torch.Tensor | None) -> torch.Tensor:
        """(B, condition_dim): the context vector, then the embeddings of the meta tokens (B, n_meta) if any."""
        if not self.meta_sizes:
            return ctx
        return torch.cat([ctx, self.meta_embed(meta + self.meta_offsets).flatten(1)], dim=1)

    def meta_logits(self, ctx: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_meta, vmax) of every meta token given the context and the true earlier meta tokens."""
        prefix = self.meta_embed(meta + self.meta_offsets).flatten(1)
        hidden = torch.einsum("bc,jck->bjk", ctx, self.meta_w_context)
        hidden = hidden + torch.einsum("bd,jdk->bjk", prefix, self.meta_w_prefix * self.meta_prefix_mask[:, :, None])
        hidden = torch.relu(hidden + self.meta_b1)
        return torch.einsum("bjk,jkv->bjv", hidden, self.meta_w2) + self.meta_b2 + self.meta_logit_pad

    def meta_column_logits(self, ctx: torch.Tensor, meta: torch.Tensor, j: int) -> torch.Tensor:
        """Logits (B, meta_sizes[j]) of meta column j given the context and meta tokens whose columns < j are set."""
        prefix = self.meta_embed(meta + self.meta_offsets).flatten(1) * self.meta_prefix_mask[j]
        hidden = torch.relu(ctx @ self.meta_w_context[j] + prefix @ self.meta_w_prefix[j] + self.meta_b1[j])
        return (hidden @ self.meta_w2[j] + self.meta_b2[j])[:, : self.meta_sizes[j]]

    def step_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., m*e) embeddings of token rows (..., m)."""
        return self.embed(tokens + self.offsets).flatten(-2)

    def initial_state(self, ctx: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.initial(ctx)).unsqueeze(0)

    def step_inputs(self, tokens: torch.Tensor, context: torch.Tensor, meta: torch.Tensor | None = None,
                    history: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(GRU outputs (B, T, h), step embeddings (B, T, m*e)) given the true earlier steps (or `history`)."""
        b, t, _ = tokens.shape
        ctx = self.condition(self.context_vector(context), meta)
        emb = self.step_embedding(tokens)                                   # (B, T, m*e)
        past = emb if history is None else self.step_embedding(history)
        prev = torch.cat([self.bos.expand(b, 1, -1), past[:, :-1]], dim=1)
        states, _ = self.gru(torch.cat([prev, ctx.unsqueeze(1).expand(b, t, -1)], dim=2), self.initial_state(ctx))
        return self.dropout(states), emb

    def forward(self, tokens: torch.Tensor, context: torch.Tensor, meta: torch.Tensor | None = None,
                history: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, m, vmax) of every step's tokens given the true earlier steps (teacher forcing, or the
        steps `history` instead, e.g. noised ones) and the true meta tokens."""
        states, emb = self.step_inputs(tokens, context, meta, history)
        hidden = torch.einsum("bth,jhk->btjk", states, self.w_state)
        hidden = hidden + torch.einsum("btd,jdk->btjk", emb, self.w_prefix * self.prefix_mask[:, :, None])
        hidden = self.dropout(torch.relu(hidden + self.b1))
        return torch.einsum("btjk,jkv->btjv", hidden, self.w2) + self.b2 + self.logit_pad

    def head_hidden(self, x: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """(N, len(columns), head_hidden): the hidden layers of heads `columns` at N steps, as `forward` computes
        them, in one matrix product; x (N, h + m*e) is the GRU output then the step's embeddings at each step."""
        w = torch.cat([self.w_state[columns], self.w_prefix[columns] * self.prefix_mask[columns, :, None]], dim=1)
        hidden = torch.relu(torch.addmm(self.b1[columns].flatten(), x, w.transpose(0, 1).reshape(x.shape[1], -1)))
        return self.dropout(hidden).view(len(x), len(columns), -1)

    def head_logits(self, hidden: torch.Tensor, columns: torch.Tensor, width: int) -> torch.Tensor:
        """Logits (N, len(columns), width) of heads `columns` (vocabularies of at most `width`: no wider padding)
        from their hidden layers (N, len(columns), head_hidden)."""
        out = torch.einsum("njk,jkv->njv", hidden, self.w2[columns, :, :width])
        return out + self.b2[columns, :width] + self.logit_pad[columns, :width]

    def step(self, prev_emb: torch.Tensor, ctx: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One GRU step: (output (B, h), new state) from the previous step's embedding (B, m*e)."""
        out, state = self.gru(torch.cat([prev_emb, ctx], dim=1).unsqueeze(1), state)
        return out[:, 0], state

    def column_logits(self, out: torch.Tensor, tokens: torch.Tensor, j: int) -> torch.Tensor:
        """Logits (B, vocab_j) of column j given the GRU output and a token row whose columns < j are filled."""
        e = self.embed.embedding_dim  # only columns < j: the rest of w_prefix[j] is masked out
        prefix = self.embed(tokens[:, :j] + self.offsets[:j]).flatten(1)
        hidden = torch.relu(torch.addmm(self.b1[j], out, self.w_state[j]) + prefix @ self.w_prefix[j, : j * e])
        return (hidden @ self.w2[j] + self.b2[j])[:, : self.vocab_sizes[j]]
