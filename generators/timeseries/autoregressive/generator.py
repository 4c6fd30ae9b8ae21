"""Sequence autoregressive generator: steps drawn one after another by a GRU, columns in turn within a step."""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from generators.base import check_array_keys, take_array, torch_generator
from generators.errors import ModelFormatError
from generators.tabular.autoregressive.generator import _threads
from generators.tabular.autoregressive.tokens import fit_numeric_tokens, numeric_to_tokens
from generators.timeseries.base import EncodedSequences, SequenceGenerator

log = logging.getLogger("generators.sequence_ar")
STOP, GO = 1, 0


class SequenceARGenerator(SequenceGenerator):
    """Learns p(step_t | steps_<t, context) with cross-entropy over per-step tokens.

    A step's tokens: a stop token (1 ends the sequence, so lengths are learned), the time-step token (the step
    pattern), then each value column: a numeric as two tokens, its quantile bin (frequent exact values and gaps
    are tokens of their own) then where inside the bin it lies (`fine_bins` equal steps; a sampled value is drawn
    uniformly inside that step, so smooth series stay smooth), and a categorical as its code. The context (drawn by the codec from
    its learned joint distribution, or fixed by conditions) conditions every step. Training keeps the weights
    of the epoch with the best loss on held-back sequences (`validation_fraction`) and stops after `patience`
    epochs without improvement; it runs `epochs` epochs, or more when they make fewer than `min_updates` gradient
    steps (a few long sequences).
    """

    name = "sequence_ar"

    def __init__(self, *, epochs: int = 40, min_updates: int = 600, batch_size: int = 32, hidden: int = 64, head_hidden: int = 64,
                 embedding_dim: int = 8, max_bins: int = 32, learning_rate: float = 3e-3, dropout: float = 0.0,
                 fine_bins: int = 8, validation_fraction: float = 0.1, patience: int = 5,
                 window: int | None = None,
                 num_threads: int | None = 1, seed: int = 0):
        self.epochs = epochs
        self.min_updates = min_updates
        self.batch_size = batch_size
        self.hidden = hidden
        self.head_hidden = head_hidden
        self.embedding_dim = embedding_dim
        self.max_bins = max_bins
        self.fine_bins = fine_bins
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.window = window
        self.num_threads = num_threads
        self.seed = seed

    # ------------------------------------------------------------ tokens
    def _vocab_sizes(self) -> list[int]:
        codec = self._codec
        numeric = []
        for j in range(len(codec.numeric_columns)):
            numeric += [len(self.atoms_[j]) + max(len(self.edges_[j]) - 1, 0) + int(self._has_gap(j)), self.fine_bins]
        return [2, codec.n_delta_tokens, *numeric, *codec.categorical_sizes]

    def _has_gap(self, j: int) -> bool:
        name = self._codec.numeric_columns[j]
        return next(v for v in self._codec.values if v["name"] == name)["has_null"]

    def _integral(self, j: int) -> bool:
        name = self._codec.numeric_columns[j]
        return next(v for v in self._codec.values if v["name"] == name)["integral"]

    def _tokenize(self, enc: EncodedSequences) -> np.ndarray:
        """(n, max_len + 1, m) token array: every step, then one stop step; padding is 0 (masked in the loss)."""
        n, steps = len(enc.lengths), int(enc.lengths.sum())
        cols = [np.full(steps, GO, np.int64), enc.deltas]
        for j in range(enc.numeric.shape[1]):
            x = enc.numeric[:, j]
            gap = np.isnan(x)
            tok = np.zeros(steps, np.int64)
            tok[~gap] = numeric_to_tokens(x[~gap], self.atoms_[j], self.edges_[j])
            tok[gap] = len(self.atoms_[j]) + max(len(self.edges_[j]) - 1, 0)
            cols.append(tok)
            cols.append(self._fine_tokens(x, tok, j))
        cols.extend(enc.categorical[:, j] for j in range(enc.categorical.shape[1]))
        flat = np.stack(cols, axis=1)
        out = np.zeros((n, int(enc.lengths.max()) + 1, flat.shape[1]), np.int64)
        seq = np.repeat(np.arange(n), enc.lengths)
        pos = np.arange(steps) - np.repeat(enc.offsets[:-1], enc.lengths)
        out[seq, pos] = flat
        out[np.arange(n), enc.lengths, 0] = STOP
        return out

    def _build(self):
        from generators.timeseries.autoregressive.torch_model import StepwiseGRUNet

        return StepwiseGRUNet(self._vocab_sizes(), self._codec.context_sizes, self.embedding_dim, self.hidden,
                              self.head_hidden, self.dropout)

    def _fine_tokens(self, x: np.ndarray, coarse: np.ndarray, j: int) -> np.ndarray:
        """Where inside its quantile bin a value lies, in `fine_bins` equal steps (0 for atoms and gaps)."""
        atoms, edges = self.atoms_[j], self.edges_[j]
        fine = np.zeros(len(x), np.int64)
        b = coarse - len(atoms)
        inside = (b >= 0) & (b < max(len(edges) - 1, 0)) & ~np.isnan(x)
        if inside.any():
            lo, hi = edges[b[inside]], edges[b[inside] + 1]
            fine[inside] = np.clip(np.floor((x[inside] - lo) / (hi - lo) * self.fine_bins), 0, self.fine_bins - 1)
        return fine

    def _decode_numeric(self, coarse: np.ndarray, fine: np.ndarray, j: int, rng: np.random.Generator) -> np.ndarray:
        """Atoms as themselves, gaps as NaN, a bin token as a uniform draw inside its fine step of the bin."""
        atoms, edges = self.atoms_[j], self.edges_[j]
        out = np.full(len(coarse), np.nan)
        is_atom = coarse < len(atoms)
        out[is_atom] = atoms[coarse[is_atom]]
        b = coarse - len(atoms)
        inside = (b >= 0) & (b < max(len(edges) - 1, 0))
        if inside.any():
            lo, hi = edges[b[inside]], edges[b[inside] + 1]
            x = lo + (fine[inside] + rng.random(int(inside.sum()))) / self.fine_bins * (hi - lo)
            out[inside] = np.round(x) if self._integral(j) else x
        return out

    # --------------------------------------------------------------- fit
    def _fit(self, enc: EncodedSequences) -> None:
        import torch

        self.atoms_, self.edges_ = {}, {}
        for j in range(enc.numeric.shape[1]):
            x = enc.numeric[:, j]
            atoms, edges = fit_numeric_tokens(x[~np.isnan(x)], self.max_bins)
            self.atoms_[j] = np.ascontiguousarray(atoms, dtype=np.float64)
            self.edges_[j] = np.ascontiguousarray(edges, dtype=np.float64)
        tokens = torch.from_numpy(self._tokenize(enc))
        lengths = torch.from_numpy(enc.lengths)
        context = torch.from_numpy(np.ascontiguousarray(enc.context))
        rng = np.random.default_rng(self.seed)
        n = len(tokens)
        perm = rng.permutation(n)
        n_val = int(n * self.validation_fraction) if n >= 20 else 0
        val, train = perm[:n_val], perm[n_val:]
        with torch.random.fork_rng(devices=[]), _threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            with torch.no_grad():  # every head starts at its column's log marginal (see the tabular model)
                mask = self._mask(tokens[train], lengths[train])
                for j, v in enumerate(net.vocab_sizes):
                    counts = torch.bincount(tokens[train][..., j][mask[..., j]], minlength=v).double()
                    net.b2[j, :v] = torch.log((counts + 0.5) / (counts.sum() + 0.5 * v)).float()
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            g = torch_generator(rng)
            best, best_state, stale = math.inf, None, 0
            self.history_ = []
            start = time.perf_counter()
            # a few long sequences make few batches: train for at least `min_updates` gradient steps
            epochs = max(self.epochs, math.ceil(self.min_updates / math.ceil(len(train) / self.batch_size)))
            for epoch in range(1, epochs + 1):
                net.train()
                order = torch.from_numpy(train)[torch.randperm(len(train), generator=g)]
                total = 0.0
                for i in range(0, len(order), self.batch_size):
                    idx = order[i:i + self.batch_size]
                    loss = self._loss(net, tokens[idx], lengths[idx], context[idx])
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                    opt.step()
                    total += loss.item() * len(idx)
                train_loss = total / len(train)
                net.eval()
                if n_val:
                    with torch.no_grad():
                        vi = torch.from_numpy(val)
                        val_loss = self._loss(net, tokens[vi], lengths[vi], context[vi]).item()
                else:
                    val_loss = train_loss
                self.history_.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
                log.info("epoch %d/%d train loss %.4f val loss %.4f (%.1fs)", epoch, epochs, train_loss,
                         val_loss, time.perf_counter() - start)
                if val_loss < best - 1e-4:
                    best, stale = val_loss, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
            net.load_state_dict(best_state)
            net.eval()
        self.net_ = net

    @staticmethod
    def _mask(tokens, lengths):
        """(B, T, m) true where a token is real: the stop column up to and including the stop step, the other
        columns on the sequence's own steps."""
        import torch

        t = torch.arange(tokens.shape[1])[None, :]
        steps = t < lengths[:, None]
        mask = steps[..., None].expand(-1, -1, tokens.shape[2]).clone()
        mask[..., 0] = t <= lengths[:, None]
        return mask

    def _loss(self, net, tokens, lengths, context):
        import torch.nn.functional as F

        logits = net(tokens, context)  # (B, T, m, vmax)
        mask = self._mask(tokens, lengths)
        per = F.cross_entropy(logits[mask], tokens[mask], reduction="sum")
        return per / len(tokens)

    # ------------------------------------------------------------ sample
    def _sample(self, n: int, rng: np.random.Generator, context: np.ndarray, length: int | None
                ) -> EncodedSequences:
        import torch

        g = torch_generator(rng)
        net, codec = self.net_, self._codec
        m = len(net.vocab_sizes)
        horizon = length if length is not None else codec.max_length
        shortest = int(codec.lengths.min())  # no sequence stops before the shortest training one
        chunks = []
        with torch.no_grad(), _threads(self.num_threads):
            for begin in range(0, n, 4096):
                ctx_codes = torch.from_numpy(np.ascontiguousarray(context[begin:begin + 4096]))
                b = len(ctx_codes)
                ctx = net.context_vector(ctx_codes)
                state = net.initial_state(ctx)
                prev = net.bos.expand(b, -1)
                steps = torch.zeros((b, horizon, m), dtype=torch.long)
                lengths = torch.full((b,), horizon, dtype=torch.long)
                alive = torch.ones(b, dtype=torch.bool)
                for t in range(horizon + 1):
                    out, state = net.step(prev, ctx, state)
                    row = torch.zeros((b, m), dtype=torch.long)
                    for j in range(m):
                        logits = net.column_logits(out, row, j)
                        if j == 0:
                            forced = length is not None or t < shortest or t == horizon
                            if forced:
                                row[:, 0] = STOP if t == horizon else GO
                                continue
                        row[:, j] = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=g)[:, 0]
                    ended = alive & (row[:, 0] == STOP)
                    lengths[ended] = t
                    alive &= ~ended
                    if t == horizon or not alive.any():
                        break
                    steps[:, t] = row
                    prev = net.step_embedding(row)
                chunks.append((steps.numpy(), lengths.numpy()))
        tok = np.concatenate([s.reshape(-1, m)[(np.arange(s.shape[1])[None, :] < ln[:, None]).ravel()]
                              for s, ln in chunks])
        lengths = np.concatenate([ln for _, ln in chunks]).astype(np.int64)
        numeric = np.empty((len(tok), len(codec.numeric_columns)))
        for j in range(numeric.shape[1]):
            numeric[:, j] = self._decode_numeric(tok[:, 2 + 2 * j], tok[:, 3 + 2 * j], j, rng)
        categorical = tok[:, 2 + 2 * numeric.shape[1]:].astype(np.int64)
        return EncodedSequences(lengths=lengths, numeric=numeric, categorical=np.ascontiguousarray(categorical),
                                deltas=tok[:, 1].astype(np.int64), context=np.ascontiguousarray(context))

    # ------------------------------------------------------- persistence
    def _get_state(self):
        arrays = {f"net.{k}": np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in self.net_.state_dict().items()}
        for j in self.atoms_:
            arrays[f"atoms{j}"], arrays[f"edges{j}"] = self.atoms_[j], self.edges_[j]
        return {"history": self.history_}, arrays

    def _set_state(self, state, arrays):
        import torch

        codec = self._codec
        history = state.get("history")
        if set(state) != {"history"} or not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
            raise ModelFormatError("state must hold 'history', a list of epoch records")
        for name, lo, hi in (("num_threads", 1, 256), ("hidden", 1, 4096), ("head_hidden", 1, 4096),
                             ("embedding_dim", 1, 1024), ("max_bins", 2, 100_000), ("fine_bins", 1, 10_000)):
            v = getattr(self, name)
            if v is not None and not lo <= v <= hi:
                raise ModelFormatError(f"param {name}={v} is outside {lo}..{hi}")
        numeric = range(len(codec.numeric_columns))
        self.atoms_, self.edges_ = {}, {}
        for j in numeric:
            atoms = take_array(arrays, f"atoms{j}", np.float64, ndim=1)
            edges = take_array(arrays, f"edges{j}", np.float64, ndim=1)
            if (np.diff(atoms) <= 0).any() or (np.diff(edges) <= 0).any() or len(edges) == 1 \
                    or len(atoms) + len(edges) == 0 or len(atoms) + len(edges) > 200_000:
                raise ModelFormatError(f"numeric column {j}: atoms and bin edges must be increasing, with 0 or >= 2 "
                                       "edges")
            self.atoms_[j], self.edges_[j] = atoms, edges
        self.history_ = history
        vocab, e, h, hh = self._vocab_sizes(), self.embedding_dim, self.hidden, self.head_hidden
        m = len(vocab)
        # shapes first: the parameters must not make us build a network larger than the saved one
        for key, shape in (("net.embed.weight", (sum(vocab), e)), ("net.w_state", (m, h, hh)),
                           ("net.w_prefix", (m, m * e, hh)), ("net.w2", (m, hh, max(vocab)))):
            if key not in arrays or arrays[key].shape != shape:
                raise ModelFormatError(f"array {key!r} is missing or not of shape {shape} (from the params and "
                                       "vocabularies)")
        net = self._build()
        fresh = net.state_dict()
        check_array_keys(arrays, [*(f"{p}{j}" for j in numeric for p in ("atoms", "edges")),
                                  *(f"net.{k}" for k in fresh)])
        buffers = dict(net.named_buffers())
        loaded = {}
        for k, t in fresh.items():
            dtype = t.numpy().dtype
            if k in buffers:  # derived from the vocabularies: must be exactly what this model builds
                a = take_array(arrays, f"net.{k}", dtype, tuple(t.shape), finite=False)
                if not np.array_equal(a, t.numpy()):
                    raise ModelFormatError(f"array 'net.{k}' does not match the model's vocabularies")
            else:
                a = take_array(arrays, f"net.{k}", dtype, tuple(t.shape))
            loaded[k] = torch.from_numpy(a.copy())
        net.load_state_dict(loaded)
        net.eval()
        self.net_ = net
