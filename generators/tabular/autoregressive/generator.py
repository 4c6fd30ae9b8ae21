"""Autoregressive generator: rows drawn column by column from a masked per-column network."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd

from generators.base import check_array_keys, take_array, torch_generator, torch_threads
from generators.codec import ModelColumn
from generators.errors import ConditionError, ModelFormatError
from generators.tabular.autoregressive.tokens import (fit_numeric_tokens, numeric_to_tokens, range_token_weights,
                                                      tokens_to_numeric)
from generators.tabular.base import TableGenerator

log = logging.getLogger("generators.autoregressive")
CONDITIONING_MODES = ("fast", "exact", "proposal")


class AutoregressiveGenerator(TableGenerator):
    """Learns p(x_1) p(x_2|x_1) ... p(x_m|x_<m) with cross-entropy; numerics become quantile-bin tokens.

    A numeric value is drawn uniformly inside its sampled bin, so samples follow a smooth distribution instead of
    re-using real values. Training stops early when the loss on a held-back validation share stops improving
    for `patience` epochs; the best epoch's weights are kept.

    Native conditioning: in `condition_share` of the training rows a random subset of columns is "given" (moved
    to the front of the generation order: every other column sees them, they see only the given columns before
    them), so the network also learns q = p(x_j | x_given, x_<j). `sample(conditions=...)` generates the
    conditioned columns first (a value is forced, a range samples among the tokens it covers, weighted by the
    share covered, and draws the value inside the bin truncated to the range) and the rest after them. Conditions
    on a prefix of the column order are then exact. Elsewhere q alone drifts from the model's own joint p (a rare
    value given is seen in few training rows), so proposals are importance-resampled to p, by `conditioning`
    (a plain attribute: set it on a fitted or loaded model):
    - "fast" (default): n proposals, resampled to n rows; p is read while proposing, so the cost stays close to
      an unconditional sample's (bench/conditioning.py: 1.2-1.8x on ULB and Adult); rows may share proposals
      when q is far from p (their numeric values are still drawn apart);
    - "exact": rounds of `proposals_per_round` * n proposals until the effective sample size reaches n (at most
      `max_proposals_per_row` * n): what rejection returns, at a few to tens of times the cost;
    - "proposal": q's rows as drawn, no correction (cheapest, least faithful on rare values).
    No mode rejects, so a value seen in training never hits a cap. A model saved before conditioned training has
    condition share 0 and conditions natively only on a prefix of its column order (rejection otherwise).
    """

    name = "autoregressive"
    # share of training rows with a random set of columns generated first (what native conditioning learns from)
    condition_share: float = 0.5
    # how conditions off the prefix of the column order are met (see `_sample_conditioned`)
    conditioning: str = "fast"
    # "exact" only: proposals drawn per round and at most in all, per conditioned row
    proposals_per_round: int = 2
    max_proposals_per_row: int = 16

    def __init__(self, *, epochs: int = 60, batch_size: int = 512, hidden: int = 64, embedding_dim: int = 8,
                 max_bins: int = 32, learning_rate: float = 1e-3, weight_decay: float = 0.0, dropout: float = 0.0,
                 validation_fraction: float = 0.1, patience: int = 4, calibrate: bool = True,
                 num_threads: int | None = 1,
                 seed: int = 0):
        self.epochs = epochs
        self.batch_size = batch_size
        self.hidden = hidden
        self.embedding_dim = embedding_dim
        self.max_bins = max_bins
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.calibrate = calibrate
        # one thread by default: on a shared 2-core machine extra threads thrash instead of helping
        self.num_threads = num_threads
        self.seed = seed

    # ------------------------------------------------------------ tokens
    def _tokenize(self, frame: pd.DataFrame) -> np.ndarray:
        cols = []
        for j, c in enumerate(self.model_columns_):
            x = frame[c.name].to_numpy()
            cols.append(x.astype(np.int64) if c.type == "categorical"
                        else numeric_to_tokens(x.astype(float), self.atoms_[j], self.edges_[j]))
        return np.stack(cols, axis=1)

    def _vocab_sizes(self) -> list[int]:
        return [c.n_categories if c.type == "categorical"
                else len(self.atoms_[j]) + max(len(self.edges_[j]) - 1, 0)
                for j, c in enumerate(self.model_columns_)]

    def _build(self):
        from generators.tabular.autoregressive.torch_model import ColumnwiseAutoregressiveNet

        return ColumnwiseAutoregressiveNet(self._vocab_sizes(), self.embedding_dim, self.hidden, self.dropout)

    # --------------------------------------------------------------- fit
    def _fit(self, frame: pd.DataFrame, columns: list[ModelColumn]) -> None:
        import torch

        self.model_columns_ = columns
        self.atoms_, self.edges_, self.integral_ = {}, {}, {}
        for j, c in enumerate(columns):
            if c.type == "numeric":
                x = frame[c.name].to_numpy(float)
                atoms, edges = fit_numeric_tokens(x, self.max_bins)
                self.atoms_[j] = np.ascontiguousarray(atoms, dtype=np.float64)
                self.edges_[j] = np.ascontiguousarray(edges, dtype=np.float64)
                self.integral_[j] = bool(np.all(x == np.round(x)))
        tokens = torch.from_numpy(self._tokenize(frame))
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(tokens))
        n_val = int(len(tokens) * self.validation_fraction) if len(tokens) >= 20 else 0
        val, train = tokens[perm[:n_val]], tokens[perm[n_val:]]
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            # start every column's logits at its log marginal: the optimiser then only learns the dependence
            # on earlier columns (Adam moves a bias by about one learning rate per step, far too slowly otherwise)
            with torch.no_grad():
                for j, v in enumerate(net.vocab_sizes):
                    counts = torch.bincount(train[:, j], minlength=v).double()
                    net.b3[j, :v] = torch.log((counts + 0.5) / (counts.sum() + 0.5 * v)).float()
            opt = torch.optim.AdamW(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            g = torch_generator(rng)
            # validation scores what training optimises, conditioned rows included (one fixed draw of given sets)
            val_given = self._given_columns(val.shape, torch_generator(np.random.default_rng(self.seed + 1)))
            best, best_state, stale = math.inf, None, 0
            self.history_ = []
            start = time.perf_counter()
            for epoch in range(1, self.epochs + 1):
                net.train()
                order = torch.randperm(len(train), generator=g)
                total = 0.0
                for i in range(0, len(train), self.batch_size):
                    batch = train[order[i:i + self.batch_size]]
                    loss = self._loss(net, batch, self._given_columns(batch.shape, g))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(batch)
                train_loss = total / len(train)
                net.eval()
                with torch.no_grad():
                    val_loss = (sum(self._loss(net, val[i:i + 4096], None if val_given is None else
                                               val_given[i:i + 4096]).item() * len(val[i:i + 4096])
                                    for i in range(0, len(val), 4096)) / len(val)) if n_val else train_loss
                self.history_.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
                log.info("epoch %d/%d train loss %.4f val loss %.4f (%.1fs)", epoch, self.epochs, train_loss,
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
            if self.calibrate:
                self._calibrate_marginals(net, tokens, g)
        self.net_ = net
        self.epochs_run_ = len(self.history_)
        self.condition_share_ = float(self.condition_share)

    def _given_columns(self, shape: tuple, g):
        """Per training row, the columns generated first: none in 1 - condition_share of the rows; else, half the
        time one or two random columns (what a `--where` usually names), half the time each column with a
        probability drawn uniformly per row (large sets too)."""
        import torch

        if not self.condition_share:
            return None
        b, m = shape
        on = torch.rand(b, 1, generator=g) < self.condition_share
        small = torch.rand(b, 1, generator=g) < 0.5
        size = 1 + (torch.rand(b, 1, generator=g) < 0.5).long()
        ranks = torch.rand(b, m, generator=g).argsort(dim=1).argsort(dim=1)
        share = torch.rand(b, 1, generator=g)
        chosen = torch.where(small, ranks < size, torch.rand(b, m, generator=g) < share)
        return chosen & on

    @staticmethod
    def _calibrate_marginals(net, tokens, g, n_rows: int = 20000, rounds: int = 2) -> None:
        """Shift each column's output bias so its marginal under the model's own samples matches the data's.

        Columns are visited in generation order on rows the model itself samples, so the correction also covers
        the drift that builds up from column to column. Only the training marginals (aggregates) are used.
        """
        import torch

        m = tokens.shape[1]
        n = min(n_rows, max(len(tokens), 1000))
        sampled = torch.zeros((n, m), dtype=torch.long)
        with torch.no_grad():
            for j, v in enumerate(net.vocab_sizes):
                target = torch.bincount(tokens[:, j], minlength=v).double() / len(tokens)
                for _ in range(rounds):
                    pred = torch.softmax(net.column_logits(sampled, j), dim=1).double().mean(0)
                    shift = torch.log((target + 1e-6) / (pred + 1e-6)).clamp(-5, 5)
                    net.b3[j, :v] += shift.float()
                probs = torch.softmax(net.column_logits(sampled, j), dim=1)
                sampled[:, j] = torch.multinomial(probs, 1, generator=g)[:, 0]

    @staticmethod
    def _loss(net, batch, given=None):
        import torch.nn.functional as F

        logits = net(batch, given)  # (m, B, vmax)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.T.reshape(-1)) * batch.shape[1]

    # ------------------------------------------------------------ sample
    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        import torch

        g = torch_generator(rng)
        m = len(self.model_columns_)
        tokens = torch.zeros((n, m), dtype=torch.long)
        with torch.no_grad(), torch_threads(self.num_threads):
            for start in range(0, n, 65536):
                chunk = tokens[start:start + 65536]
                for j in range(m):
                    probs = torch.softmax(self.net_.column_logits(chunk, j), dim=1)
                    chunk[:, j] = torch.multinomial(probs, 1, generator=g)[:, 0]
        tok = tokens.numpy()
        out = {}
        for j, c in enumerate(self.model_columns_):
            out[c.name] = (tok[:, j].astype(np.int64) if c.type == "categorical"
                           else tokens_to_numeric(tok[:, j], self.atoms_[j], self.edges_[j], rng, self.integral_[j]))
        return pd.DataFrame(out)

    def _can_condition(self, constraints: dict) -> bool:
        if self.condition_share_ > 0:
            return True
        # without conditioned training only a prefix of the column order is exact: earlier columns would ignore it
        index = [j for j, c in enumerate(self.model_columns_) if c.name in constraints]
        return index == list(range(len(index)))

    def _sample_conditioned(self, n: int, rng: np.random.Generator, constraints: dict) -> pd.DataFrame:
        """Conditioned columns first, then the rest; then importance resampling to the model's own joint.

        The given-first network is a proposal q learned from fewer rows than the column-order chain p (a rare value
        given is seen in few training rows), so its rows are resampled with weights p(x) / q(x) toward p restricted
        to the conditions, what rejection sampling would return. p is read while proposing (each column's logits
        under both masks in one pass; columns after the last given one have p = q and cost nothing extra).
        `conditioning` sets how many proposals: "fast" draws n and resamples n of them (about the cost of an
        unconditional sample; when q is far from p, rows share proposals, their numerics still drawn apart);
        "exact" draws rounds of `proposals_per_round` * n until the effective sample size reaches n or
        `max_proposals_per_row` * n were drawn; "proposal" keeps q's rows as they are (no correction). Conditions
        on a prefix of the column order need no correction (q = p there).
        """
        import torch

        if self.conditioning not in CONDITIONING_MODES:
            raise ConditionError(f"conditioning={self.conditioning!r} is not a mode; use one of {CONDITIONING_MODES}")
        g = torch_generator(rng)
        m = len(self.model_columns_)
        given = torch.tensor([c.name in constraints for c in self.model_columns_])
        index = [j for j in range(m) if given[j]]
        order = index + [j for j in range(m) if not given[j]]
        seen = self.net_.context_masks(given[None, :])[:, 0, :]
        weights = {}
        for j, c in enumerate(self.model_columns_):
            r = constraints.get(c.name)
            if r is not None and not isinstance(r, int):
                w = range_token_weights(self.atoms_[j], self.edges_[j], self.integral_[j], r.low, r.high,
                                        r.low_inclusive, r.high_inclusive)
                if not w.any():
                    raise ConditionError(f"condition on {c.name!r} falls between the values the model can draw; "
                                         "widen the range")
                weights[j] = torch.from_numpy(w).double()
        prefix = index == list(range(len(index)))
        with torch.no_grad(), torch_threads(self.num_threads):
            if prefix or self.conditioning == "proposal":
                tokens, _ = self._propose(n, order, index, constraints, weights, seen, g, weigh=False)
            else:
                exact = self.conditioning == "exact"
                size = self.proposals_per_round * n if exact else n
                cap = self.max_proposals_per_row * n if exact else n
                parts, log_w = [], []
                while True:
                    proposals, lw = self._propose(size, order, index, constraints, weights, seen, g, weigh=True)
                    parts.append(proposals)
                    log_w.append(lw.numpy())
                    lw = np.concatenate(log_w)
                    w = np.exp(lw - lw.max())
                    ess = w.sum() ** 2 / (w ** 2).sum()
                    if ess >= n or len(lw) >= cap:
                        break
                log.info("conditioned sample (%s): %d proposals, effective sample size %.0f for %d rows",
                         self.conditioning, len(lw), ess, n)
                if exact and ess < n:
                    log.warning("conditioned sample: effective sample size %.0f < %d rows after %d proposals; rows "
                                "repeat proposals (less diverse): train longer, or put the conditioned column "
                                "first in the table", ess, n, len(lw))
                elif not exact and ess < n / 10:
                    log.warning("conditioned sample: effective sample size %.0f of %d rows; many rows share "
                                "proposals: set conditioning='exact' for more diverse rows, or put the conditioned "
                                "column first in the table", ess, n)
                cum = np.cumsum(w / w.sum())
                pick = np.minimum(np.searchsorted(cum, (rng.random() + np.arange(n)) / n), len(lw) - 1)
                tokens = torch.cat(parts)[torch.from_numpy(rng.permutation(pick))]
        tok = tokens.numpy()
        out = {}
        for j, c in enumerate(self.model_columns_):
            r = constraints.get(c.name)
            bounds = None if r is None or isinstance(r, int) else (r.low, r.high, r.low_inclusive, r.high_inclusive)
            out[c.name] = (tok[:, j].astype(np.int64) if c.type == "categorical"
                           else tokens_to_numeric(tok[:, j], self.atoms_[j], self.edges_[j], rng, self.integral_[j],
                                                  bounds))
        return pd.DataFrame(out)

    def _propose(self, n: int, order: list[int], index: list[int], constraints: dict, weights: dict, seen, g, *,
                 weigh: bool):
        """n rows of tokens drawn in `order` (the given columns `index` first) and, with `weigh`, their log
        importance weights log p(x) - log q(x) (p: the column-order chain, range tokens weighted by the share they
        cover; q: this proposal)."""
        import torch

        m = len(self.model_columns_)
        tokens = torch.zeros((n, m), dtype=torch.long)
        log_w = torch.zeros(n, dtype=torch.float64)
        last = max(index)
        for start in range(0, n, 65536):
            chunk, lw = tokens[start:start + 65536], log_w[start:start + 65536]
            for j in order:
                code = constraints.get(self.model_columns_[j].name)
                if isinstance(code, int):
                    chunk[:, j] = code
                    continue
                both = weigh and j < last and j not in index  # p and q differ: q also sees later given columns
                logits = (self.net_.column_logits_both(chunk, j, [k for k in index if k > j]) if both
                          else self.net_.column_logits(chunk, j, seen[j]))
                probs = torch.softmax((logits[0] if both else logits).double(), dim=1)
                if j in weights:
                    probs = probs * weights[j]
                    probs = probs / probs.sum(dim=1, keepdim=True)
                pick = torch.multinomial(probs, 1, generator=g)
                chunk[:, j] = pick[:, 0]
                if both:
                    lw += torch.log_softmax(logits[1].double(), dim=1).gather(1, pick)[:, 0]
                if both or (weigh and j in index):
                    lw -= torch.log(probs.gather(1, pick)[:, 0])
            if weigh:
                # p of a given column needs every column before it: read once the row is complete
                for j in index:
                    lp = torch.log_softmax(self.net_.column_logits(chunk, j).double(), dim=1)
                    lw += lp.gather(1, chunk[:, j:j + 1])[:, 0]
                    if j in weights:
                        lw += torch.log(weights[j][chunk[:, j]])
        return tokens, log_w

    # ------------------------------------------------------- persistence
    def _get_state(self):
        arrays = {f"net.{k}": np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in self.net_.state_dict().items()}
        for j in self.atoms_:
            arrays[f"atoms{j}"], arrays[f"edges{j}"] = self.atoms_[j], self.edges_[j]
        return {"numeric": sorted(self.atoms_), "integral": [self.integral_[j] for j in sorted(self.atoms_)],
                "history": self.history_, "condition_share": self.condition_share_}, arrays

    def _set_state(self, state, arrays):
        import torch

        numeric = [j for j, c in enumerate(self.model_columns_) if c.type == "numeric"]
        if state.get("numeric") != numeric:
            raise ModelFormatError(f"state lists numeric columns {str(state.get('numeric'))[:50]}, "
                                   f"the model has {numeric}")
        integral, history = state.get("integral"), state.get("history")
        if not (isinstance(integral, list) and len(integral) == len(numeric)
                and all(isinstance(b, bool) for b in integral)):
            raise ModelFormatError("state 'integral' must hold one true/false per numeric column")
        if not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
            raise ModelFormatError("state 'history' must be a list of epoch records")
        share = state.get("condition_share", 0.0)  # absent in models saved before native conditioning
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ModelFormatError("state 'condition_share' must be a number from 0 to 1")
        self.condition_share_ = float(share)
        if self.num_threads is not None and not 1 <= self.num_threads <= 256:
            raise ModelFormatError(f"param num_threads={self.num_threads} is outside 1..256")
        self.atoms_, self.edges_ = {}, {}
        for j in numeric:
            atoms = take_array(arrays, f"atoms{j}", np.float64, ndim=1)
            edges = take_array(arrays, f"edges{j}", np.float64, ndim=1)
            if (np.diff(atoms) <= 0).any() or (np.diff(edges) <= 0).any() or len(edges) == 1 \
                    or len(atoms) + len(edges) == 0:
                raise ModelFormatError(f"column {j}: atoms and bin edges must be increasing, with 0 or >= 2 edges")
            self.atoms_[j], self.edges_[j] = atoms, edges
        self.integral_ = dict(zip(numeric, integral))
        self.history_ = history
        self.epochs_run_ = len(self.history_)
        # shapes first: the parameters must not make us build a network larger than the saved one
        m, e, h, vocab = len(self.model_columns_), self.embedding_dim, self.hidden, self._vocab_sizes()
        for key, shape in (("net.embed.weight", (sum(vocab), e)), ("net.w1", (m, m * e, h)), ("net.w2", (m, h, h)),
                           ("net.w3", (m, h, max(vocab)))):
            if key not in arrays or arrays[key].shape != shape:
                raise ModelFormatError(f"array {key!r} is missing or not of shape {shape} (from the params and "
                                       "vocabularies)")
        net = self._build()
        fresh = net.state_dict()
        check_array_keys(arrays, [*(f"{p}{j}" for j in numeric for p in ("atoms", "edges")),
                                  *(f"net.{k}" for k in fresh)])
        loaded = {}
        for k, t in fresh.items():
            dtype = t.numpy().dtype
            if k in dict(net.named_buffers()):
                # derived from the vocabulary sizes: must be exactly what this model builds (logit_pad holds -inf)
                a = take_array(arrays, f"net.{k}", dtype, tuple(t.shape), finite=False)
                if not np.array_equal(a, t.numpy()):
                    raise ModelFormatError(f"array 'net.{k}' does not match the model's column vocabularies")
            else:
                a = take_array(arrays, f"net.{k}", dtype, tuple(t.shape))
            loaded[k] = torch.from_numpy(a.copy())
        net.load_state_dict(loaded)
        net.eval()
        self.net_ = net
