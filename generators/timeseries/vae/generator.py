"""Sequence VAE: whole sequences, padded to a fixed length, through a conditional variational autoencoder."""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from generators.base import check_array_keys, take_array, torch_generator
from generators.errors import ModelFormatError
from generators.base import torch_threads
from generators.timeseries.base import EncodedSequences, SequenceGenerator

log = logging.getLogger("generators.sequence_vae")


class SequenceVAEGenerator(SequenceGenerator):
    """TimeVAE-like: a conv encoder to a latent code, a dense + conv decoder back to every step, a length head.

    Numerics are standardised (a decoded value is the decoder's mean plus the training residual spread, so
    samples keep their noise), gaps, categoricals and the time-step pattern are per-step classifications; the
    length is a class over 1..max length. Everything is conditioned on the context. Sequences longer than the
    longest training one (`length` beyond it, e.g. long segments of a single series) are decoded block by block
    and joined. Training runs `epochs` epochs, or more when they make fewer than `min_updates` gradient steps.
    """

    name = "sequence_vae"

    def __init__(self, *, epochs: int = 150, min_updates: int = 1500, batch_size: int = 32, hidden: int = 32, latent_dim: int = 8,
                 embedding_dim: int = 4, learning_rate: float = 2e-3, kl_weight: float = 0.5,
                 window: int | None = None, num_threads: int | None = 1, seed: int = 0):
        self.epochs = epochs
        self.min_updates = min_updates
        self.batch_size = batch_size
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.embedding_dim = embedding_dim
        self.learning_rate = learning_rate
        self.kl_weight = kl_weight
        self.window = window
        self.num_threads = num_threads
        self.seed = seed

    # ------------------------------------------------------------ layout
    def _layout(self) -> dict[str, int]:
        codec = self._codec
        p = len(codec.numeric_columns)
        gaps = [j for j, name in enumerate(codec.numeric_columns)
                if next(v for v in codec.values if v["name"] == name)["has_null"]]
        cats = sum(codec.categorical_sizes)
        nd = codec.n_delta_tokens if codec.n_delta_tokens > 1 else 0
        return {"p": p, "g": len(gaps), "cats": cats, "nd": nd, "in": p + len(gaps) + cats + nd + 1,
                "out": p + len(gaps) + cats + nd, "horizon": codec.max_length}

    def _gap_columns(self) -> list[int]:
        codec = self._codec
        return [j for j, name in enumerate(codec.numeric_columns)
                if next(v for v in codec.values if v["name"] == name)["has_null"]]

    def _tensors(self, enc: EncodedSequences) -> tuple[np.ndarray, np.ndarray]:
        """(inputs (n, T, in) float32, present mask (n, T) bool)."""
        lay, codec = self._layout(), self._codec
        n, horizon = len(enc.lengths), lay["horizon"]
        seq = np.repeat(np.arange(n), enc.lengths)
        pos = np.arange(int(enc.lengths.sum())) - np.repeat(enc.offsets[:-1], enc.lengths)
        x = np.zeros((n, horizon, lay["in"]), np.float32)
        z = (enc.numeric - self.mean_) / self.scale_
        gap = np.isnan(z)
        x[seq, pos, :lay["p"]] = np.where(gap, 0.0, z)
        col = lay["p"]
        for j in self._gap_columns():
            x[seq, pos, col] = gap[:, j]
            col += 1
        for j, size in enumerate(codec.categorical_sizes):
            x[seq, pos, col + enc.categorical[:, j]] = 1.0
            col += size
        if lay["nd"]:
            x[seq, pos, col + enc.deltas] = 1.0
            col += lay["nd"]
        x[seq, pos, col] = 1.0
        present = np.zeros((n, horizon), bool)
        present[seq, pos] = True
        return x, present

    def _build(self):
        from generators.timeseries.vae.torch_model import SequenceVAENet

        lay = self._layout()
        return SequenceVAENet(lay["in"], lay["out"], lay["horizon"], self._codec.context_sizes, self.embedding_dim,
                              self.hidden, self.latent_dim)

    # --------------------------------------------------------------- fit
    def _fit(self, enc: EncodedSequences) -> None:
        import torch

        p = enc.numeric.shape[1]
        self.mean_ = np.zeros(p)
        self.scale_ = np.ones(p)
        for j in range(p):
            x = enc.numeric[:, j]
            x = x[~np.isnan(x)]
            self.mean_[j] = x.mean()
            self.scale_[j] = x.std() if x.std() > 0 else 1.0
        x_np, present_np = self._tensors(enc)
        x, present = torch.from_numpy(x_np), torch.from_numpy(present_np)
        lengths = torch.from_numpy(enc.lengths - 1)
        context = torch.from_numpy(np.ascontiguousarray(enc.context))
        rng = np.random.default_rng(self.seed)
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            with torch.no_grad():  # start every classification at its training marginal (as the AR model does)
                lay = self._layout()
                freq = x[present][:, lay["p"]:lay["in"] - 1].double().mean(0)
                rate = freq[:len(self._gap_columns())].clamp(1e-4, 1 - 1e-4)
                net.dec_out.bias[lay["p"]:lay["p"] + len(rate)] = torch.log(rate / (1 - rate)).float()
                net.dec_out.bias[lay["p"] + len(rate):] = torch.log(freq[len(rate):] + 1e-4).float()
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            g = torch_generator(rng)
            self.history_ = []
            start = time.perf_counter()
            # a few sequences make few batches: train for at least `min_updates` gradient steps
            epochs = max(self.epochs, math.ceil(self.min_updates / math.ceil(len(x) / self.batch_size)))
            for epoch in range(1, epochs + 1):
                net.train()
                order = torch.randperm(len(x), generator=g)
                total = 0.0
                for i in range(0, len(order), self.batch_size):
                    idx = order[i:i + self.batch_size]
                    loss, _ = self._loss(net, x[idx], present[idx], lengths[idx], context[idx], g)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                    opt.step()
                    total += loss.item() * len(idx)
                self.history_.append({"epoch": epoch, "train_loss": total / len(x)})
                if epoch % 25 == 0:
                    log.info("epoch %d/%d loss %.4f (%.1fs)", epoch, epochs, total / len(x),
                             time.perf_counter() - start)
            net.eval()
            with torch.no_grad():  # the residual spread of each numeric, for sampling noise
                ctx = net.context_vector(context)
                mu, _ = net.encode(x, ctx)
                out, _ = net.decode(mu, ctx)
                resid = (out[..., :p] - x[..., :p]).numpy()
            keep = ~self._gap_mask(x_np, present_np)
            self.resid_ = np.array([resid[..., j][keep[..., j]].std() if keep[..., j].any() else 0.0
                                    for j in range(p)], dtype=np.float64)
        self.net_ = net

    def _gap_mask(self, x: np.ndarray, present: np.ndarray) -> np.ndarray:
        lay = self._layout()
        gap = np.zeros(x.shape[:2] + (lay["p"],), bool)
        for i, j in enumerate(self._gap_columns()):
            gap[..., j] = x[..., lay["p"] + i] > 0.5
        return gap | ~present[..., None]

    def _loss(self, net, x, present, lengths, context, g):
        import torch
        import torch.nn.functional as F

        lay = self._layout()
        ctx = net.context_vector(context)
        mu, logvar = net.encode(x, ctx)
        z = mu + torch.randn(mu.shape, generator=g) * torch.exp(0.5 * logvar)
        out, length_logits = net.decode(z, ctx)
        p, col_in, col_out = lay["p"], lay["p"], lay["p"]
        m = present.float()
        loss = torch.zeros(())
        if p:
            observed = m[..., None].expand(-1, -1, p).clone()
            for i, j in enumerate(self._gap_columns()):
                observed[..., j] = observed[..., j] * (1 - x[..., p + i])
            loss = loss + (((out[..., :p] - x[..., :p]) ** 2) * observed).sum()
        gaps = self._gap_columns()
        if gaps:
            target = x[..., col_in:col_in + len(gaps)]
            bce = F.binary_cross_entropy_with_logits(out[..., col_out:col_out + len(gaps)], target, reduction="none")
            loss = loss + (bce * m[..., None]).sum()
            col_in += len(gaps)
            col_out += len(gaps)
        sizes = list(self._codec.categorical_sizes) + ([lay["nd"]] if lay["nd"] else [])
        for size in sizes:
            target = x[..., col_in:col_in + size].argmax(-1)
            ce = F.cross_entropy(out[..., col_out:col_out + size].reshape(-1, size), target.reshape(-1),
                                 reduction="none").view(target.shape)
            loss = loss + (ce * m).sum()
            col_in += size
            col_out += size
        loss = loss + F.cross_entropy(length_logits, lengths, reduction="sum")
        kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum()
        return (loss + self.kl_weight * kl) / len(x), kl

    # ------------------------------------------------------------ sample
    def _decode_blocks(self, n: int, ctx_codes: np.ndarray, g):
        import torch

        with torch.no_grad(), torch_threads(self.num_threads):
            ctx = self.net_.context_vector(torch.from_numpy(np.ascontiguousarray(ctx_codes)))
            z = torch.randn((n, self.latent_dim), generator=g)
            out, length_logits = self.net_.decode(z, ctx)
            noise = torch.randn(out.shape[:2] + (self._layout()["p"],), generator=g)
            lengths = torch.multinomial(torch.softmax(length_logits, dim=1), 1, generator=g)[:, 0] + 1
            lay = self._layout()
            col = lay["p"]
            gaps = []
            for _ in self._gap_columns():
                gaps.append(torch.bernoulli(torch.sigmoid(out[..., col]), generator=g).bool())
                col += 1
            cats = []
            sizes = list(self._codec.categorical_sizes) + ([lay["nd"]] if lay["nd"] else [])
            for size in sizes:
                probs = torch.softmax(out[..., col:col + size], dim=-1).reshape(-1, size)
                cats.append(torch.multinomial(probs, 1, generator=g)[:, 0].view(out.shape[:2]))
                col += size
        means = out[..., :lay["p"]].numpy().astype(np.float64)
        values = means + noise.numpy().astype(np.float64) * self.resid_
        values = values * self.scale_ + self.mean_
        for i, j in enumerate(self._gap_columns()):
            values[..., j][gaps[i].numpy()] = np.nan
        return values, [c.numpy() for c in cats], lengths.numpy()

    def _sample(self, n: int, rng: np.random.Generator, context: np.ndarray, length: int | None
                ) -> EncodedSequences:
        g = torch_generator(rng)
        lay, codec = self._layout(), self._codec
        horizon = lay["horizon"]
        blocks = 1 if length is None else math.ceil(length / horizon)
        values, cats, lengths = self._decode_blocks(n * blocks, np.repeat(context, blocks, axis=0), g)
        # (n * blocks, T, ...) -> (n, blocks * T, ...): a long sequence is its blocks one after another
        values = values.reshape(n, blocks * horizon, -1)
        cats = [c.reshape(n, blocks * horizon) for c in cats]
        lengths = lengths.reshape(n, blocks)[:, 0].astype(np.int64) if length is None \
            else np.full(n, length, np.int64)
        keep = (np.arange(blocks * horizon)[None, :] < lengths[:, None]).ravel()
        numeric = values.reshape(-1, lay["p"])[keep]
        n_cat = len(codec.categorical_sizes)
        categorical = np.stack([c.ravel()[keep] for c in cats[:n_cat]], axis=1) if n_cat else \
            np.zeros((int(keep.sum()), 0), np.int64)
        deltas = cats[n_cat].ravel()[keep] if lay["nd"] else np.zeros(int(keep.sum()), np.int64)
        return EncodedSequences(lengths=lengths, numeric=np.ascontiguousarray(numeric),
                                categorical=np.ascontiguousarray(categorical, dtype=np.int64),
                                deltas=np.ascontiguousarray(deltas, dtype=np.int64),
                                context=np.ascontiguousarray(context))

    # ------------------------------------------------------- persistence
    def _get_state(self):
        arrays = {f"net.{k}": np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in self.net_.state_dict().items()}
        arrays.update(mean=self.mean_, scale=self.scale_, resid=self.resid_)
        return {"history": self.history_}, arrays

    def _set_state(self, state, arrays):
        import torch

        history = state.get("history")
        if set(state) != {"history"} or not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
            raise ModelFormatError("state must hold 'history', a list of epoch records")
        for name, lo, hi in (("num_threads", 1, 256), ("hidden", 1, 1024), ("latent_dim", 1, 1024),
                             ("embedding_dim", 1, 1024)):
            v = getattr(self, name)
            if v is not None and not lo <= v <= hi:
                raise ModelFormatError(f"param {name}={v} is outside {lo}..{hi}")
        lay = self._layout()
        p = lay["p"]
        mean = take_array(arrays, "mean", np.float64, (p,))
        scale = take_array(arrays, "scale", np.float64, (p,))
        resid = take_array(arrays, "resid", np.float64, (p,))
        if (scale <= 0).any() or (resid < 0).any():
            raise ModelFormatError("array 'scale' must be positive and 'resid' non-negative")
        h = self.hidden
        for key, shape in (("net.dec_in.weight", (h * lay["horizon"], self.latent_dim + max(len(
                self._codec.context_sizes), 1) * self.embedding_dim)), ("net.enc1.weight", None)):
            if key not in arrays or (shape is not None and arrays[key].shape != shape):
                raise ModelFormatError(f"array {key!r} is missing or not of shape {shape} (from the params and the "
                                       "codec)")
        self.mean_, self.scale_, self.resid_ = mean, scale, resid
        self.history_ = history
        net = self._build()
        fresh = net.state_dict()
        check_array_keys(arrays, ["mean", "scale", "resid", *(f"net.{k}" for k in fresh)])
        buffers = dict(net.named_buffers())
        loaded = {}
        for k, t in fresh.items():
            dtype = t.numpy().dtype
            a = take_array(arrays, f"net.{k}", dtype, tuple(t.shape))
            if k in buffers and not np.array_equal(a, t.numpy()):
                raise ModelFormatError(f"array 'net.{k}' does not match the model's context sizes")
            loaded[k] = torch.from_numpy(a.copy())
        net.load_state_dict(loaded)
        net.eval()
        self.net_ = net
