"""Sequence autoregressive generator: steps drawn one after another by a GRU, columns in turn within a step."""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import numpy as np
import pandas as pd

from generators.base import check_array_keys, take_array, torch_generator
from generators.errors import ModelFormatError
from generators.base import torch_threads
from generators.tabular.autoregressive.tokens import fit_numeric_tokens, numeric_to_tokens
from generators.timeseries.base import EncodedSequences, SequenceGenerator

log = logging.getLogger("generators.sequence_ar")
STOP, GO = 1, 0
ORDINAL_SHRINK = 0.3  # with ordinal_init, the random embedding coordinates of numeric tokens start this much smaller


def _n_tokens(atoms: np.ndarray, edges: np.ndarray) -> int:
    return len(atoms) + max(len(edges) - 1, 0)


def _value_tokens(x: np.ndarray, atoms: np.ndarray, edges: np.ndarray, fine_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(quantile-bin token, where inside the bin in `fine_bins` equal steps) of finite values (fine 0 for atoms)."""
    coarse = numeric_to_tokens(x, atoms, edges)
    fine = np.zeros(len(x), np.int64)
    b = coarse - len(atoms)
    inside = b >= 0
    if inside.any():
        lo, hi = edges[b[inside]], edges[b[inside] + 1]
        fine[inside] = np.clip(np.floor((x[inside] - lo) / (hi - lo) * fine_bins), 0, fine_bins - 1)
    return coarse, fine


def _token_values(coarse: np.ndarray, fine: np.ndarray, atoms: np.ndarray, edges: np.ndarray, fine_bins: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Atoms as themselves, a bin token as a uniform draw inside its fine step of the bin."""
    out = np.empty(len(coarse))
    is_atom = coarse < len(atoms)
    out[is_atom] = atoms[coarse[is_atom]]
    b = coarse[~is_atom] - len(atoms)
    if len(b):
        lo, hi = edges[b], edges[b + 1]
        out[~is_atom] = lo + (fine[~is_atom] + rng.random(len(b))) / fine_bins * (hi - lo)
    return out


def _checked_tokens(arrays, prefix: str, j: int) -> tuple[np.ndarray, np.ndarray]:
    atoms = take_array(arrays, f"{prefix}atoms{j}", np.float64, ndim=1)
    edges = take_array(arrays, f"{prefix}edges{j}", np.float64, ndim=1)
    if (np.diff(atoms) <= 0).any() or (np.diff(edges) <= 0).any() or len(edges) == 1 \
            or len(atoms) + len(edges) == 0 or len(atoms) + len(edges) > 200_000:
        raise ModelFormatError(f"numeric column {j}: {prefix}atoms and bin edges must be increasing, with 0 or >= 2 "
                               "edges")
    return atoms, edges


class SequenceARGenerator(SequenceGenerator):
    """Learns p(step_t | steps_<t, context) with cross-entropy over per-step tokens.

    A step's tokens: a stop token (1 ends the sequence, so lengths are learned), the time-step token (the step
    pattern), then each value column: a numeric as two tokens, its quantile bin (frequent exact values and gaps
    are tokens of their own) then where inside the bin it lies (`fine_bins` equal steps; a sampled value is drawn
    uniformly inside that step), and a categorical as its code. A smooth numeric (step-to-step changes spread
    less than `smooth_ratio` times its values around their sequence's mean) is drawn as changes from the
    sequence's last value, its first value as a level, and the level it reached is fed back as an input token:
    a smooth series stays smooth and does not drift. With `level_first` (the default) such a column can only draw
    a level (or a gap) until its sequence has a value and only a change (or a gap) after, in training and in
    sampling. The context (drawn by the codec from its learned joint
    distribution, or fixed by conditions) conditions every step. Training keeps the weights of the epoch with the
    best loss on held-back sequences (`validation_fraction`, at least `min_validation` of them when that is set)
    and stops after `patience` epochs without improvement; it runs `epochs` epochs, or more when they make fewer
    than `min_updates` gradient steps (a few long sequences).

    With per-sequence scaling (DoppelGANger's per-sample normalisation) every numeric column is learned as its
    sequence's mean and standard deviation (drawn before the first step from the context by a head of their own,
    then part of every step's condition) and the sequence's values standardised by them: a sequence's level and
    spread are drawn once, from at most
    `meta_bins` bins whose edges are training sequences' scales (a scale is drawn between two of them, never
    copied). `scale_per_sequence=None` scales when the sequences' means carry at least `SCALE_SHARE` of the
    values' variance (averaged over numeric columns): speakers or countries with levels of their own, not
    windows of one signal. `input_noise` (teacher-forcing noise) redraws that share of the earlier steps' tokens the
    GRU reads in training at random. Both are off by default (see the README's sequence benchmark).

    `scheduled_sampling` (parallel scheduled sampling, Duckworth et al. 2019) trains on the net's own draws: a
    teacher-forced pass without gradient gives every step's logits, tokens are drawn from them (with the
    `level_first` masks), and the GRU then reads the drawn step instead of the true one at that share of the steps
    (a change-coded column's reached level recomputed from the true value and the drawn change), the loss still
    against the true tokens. Off by default (0.0): see the README's sequence benchmark, fifth round.

    `lengths="drawn"` draws each sequence's length before its first step from the training lengths of its context
    row (the codec's joint context values, so conditions hold), smoothed towards the pooled lengths by
    `length_prior` sequences; the stop token is then forbidden before that length and forced at it. `"learned"`
    (the default) lets the stop head decide. A length is a small integer among the training lengths, not a copied
    sequence. Opt-in: on JapaneseVowels' validation halves it lifts the step marginal (.80 -> .82) and costs the
    forecast ratio (1.21 -> 1.24); fixed-length panels are unaffected.

    `ordinal_init` (> 0) starts each numeric column's level tokens in value order (one embedding coordinate and
    its bin head's slope set to the tokens' standardised values, at that scale): with random starts early stopping
    on a few rough series keeps a net whose steps ignore the previous ones. `ordinal_columns="rough"` starts only
    the columns drawn as levels (rough ones, as BasicMotions' all are) so, and change-coded columns at random. 2.0
    with "rough" by default (0 is the old random start): see the README's sequence benchmark, sixth round.

    `calibrate` (quantile mapping, as climate-model output is bias-corrected; "auto" by default, "off" the old
    behaviour; README's sequence benchmark, seventh round) learns at fit time,
    after training, a monotone piecewise-linear map per numeric column from the model's own values to the training
    values: a reference sample of `CALIBRATION_SEQUENCES` sequences is drawn from the trained model (calibration
    off, a seed derived from `seed`, unconditioned) and each column's `CALIBRATION_QUANTILES` quantiles of it are
    mapped onto the same quantiles of the training values, linearly between them. `"pooled"` builds one map per
    column over every step; `"steps"` one per position bucket (`CALIBRATION_BUCKETS` buckets by quantiles of the
    training steps' positions: drift grows with the step), a value at step t mapped by the two buckets whose
    centres enclose t, blended linearly in t; `"auto"` is `"steps"` for the columns whose reference sample lies
    further from the training values (decile TVD) than 95% of entity-bootstrap resamples of the training values
    do, and leaves the others as drawn (a small training set's own noise is not corrected towards). Every drawn
    value is mapped (the final, unscaled value when `scale_per_sequence` is on), gaps stay gaps, then clipped to
    the training range and rounded for an integral column. A value on tied quantiles of the reference (an atom,
    such as the range's end that clipping piles values on) goes to a place inside the tie's share of the training
    quantiles drawn once per sequence and column. `calibration_window` smooths the correction (mapped minus drawn
    value) along each sequence over that many steps either side (-1: the whole sequence, a shift per sequence; 0:
    none, the exact map): a pointwise map with slope below 1 would shrink every step change, a smoothed one keeps
    them. The maps are fixed at fit and saved, so a sequence does not depend on how many are drawn with it; the
    network and every token drawn are the uncalibrated model's (the same seed gives the same sample but for the
    mapped values). Opt-in: see the README's sequence benchmark, seventh round.
    """

    # chosen on validation halves of the benchmark's training parts: 0.28-0.81 on JapaneseVowels and fertility
    # (scaling raised their step marginals there), 0.00-0.17 on BasicMotions and MIT-BIH segments (it lowered them)
    SCALE_SHARE = 0.25

    name = "sequence_ar"
    # files saved before per-sequence scaling existed learned raw values; before `level_first` a change-coded
    # column could draw a change where it had no value yet (and a level where it had one)
    # ... and before `lengths` the stop token alone decided every length; before `scheduled_sampling` the GRU
    # read only true steps in training
    # ... and before `calibrate` every drawn value was the network's own
    params_added = {"scale_per_sequence": False, "meta_bins": 16, "input_noise": 0.0, "min_validation": 0,
                    "level_first": False, "lengths": "learned", "length_prior": 4.0,
                    "scheduled_sampling": 0.0, "ordinal_init": 0.0, "ordinal_columns": "all", "calibrate": "off",
                    "calibration_window": 2}
    LENGTHS = ("learned", "drawn")
    ORDINAL_COLUMNS = ("all", "rough")
    CALIBRATIONS = ("off", "pooled", "steps", "auto")
    CALIBRATION_QUANTILES = 64     # knots of each map (quantiles 0, 1/63, ..., 1)
    CALIBRATION_BUCKETS = 4        # position buckets of "steps"
    CALIBRATION_SEQUENCES = 512    # the reference sample drawn from the trained model
    CALIBRATION_RESAMPLES = 200    # entity bootstrap of the training values ("auto": is a column's drift noise?)
    CALIBRATION_KEY = 0xCA11B      # spawn key of the reference sample's seed (derived from `seed`)

    def __init__(self, *, epochs: int = 40, min_updates: int = 600, batch_size: int = 32, hidden: int = 64,
                 head_hidden: int = 64, embedding_dim: int = 8, max_bins: int = 32, learning_rate: float = 3e-3,
                 dropout: float = 0.0, fine_bins: int = 8, smooth_ratio: float = 0.7,
                 validation_fraction: float = 0.1, patience: int = 5, window: int | None = None,
                 scale_per_sequence: bool | None = False, meta_bins: int = 16, input_noise: float = 0.0,
                 min_validation: int = 2, level_first: bool = True, lengths: str = "learned",
                 length_prior: float = 4.0, scheduled_sampling: float = 0.0, ordinal_init: float = 2.0,
                 ordinal_columns: str = "rough", calibrate: str = "auto", calibration_window: int = 2,
                 num_threads: int | None = 1, seed: int = 0):
        self.epochs = epochs
        self.min_updates = min_updates
        self.batch_size = batch_size
        self.hidden = hidden
        self.head_hidden = head_hidden
        self.embedding_dim = embedding_dim
        self.max_bins = max_bins
        self.fine_bins = fine_bins
        self.smooth_ratio = smooth_ratio
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.window = window
        self.scale_per_sequence = scale_per_sequence
        self.meta_bins = meta_bins
        self.input_noise = input_noise
        self.min_validation = min_validation
        self.level_first = level_first
        self.lengths = lengths
        self.length_prior = length_prior
        self.scheduled_sampling = scheduled_sampling
        self.ordinal_init = ordinal_init
        self.ordinal_columns = ordinal_columns
        self.calibrate = calibrate
        self.calibration_window = calibration_window
        self.num_threads = num_threads
        self.seed = seed

    # ------------------------------------------------------------ tokens
    def _token_counts(self, j: int) -> tuple[int, int]:
        """(level tokens, change tokens) of numeric column j; its gap token (if any) comes after both."""
        nc = _n_tokens(self.catoms_[j], self.cedges_[j]) if j in self.catoms_ else 0
        return _n_tokens(self.atoms_[j], self.edges_[j]), nc

    def _layout(self) -> tuple[list[tuple[int, int, int | None]], int]:
        """Per numeric column (bin token, in-bin token, level-input column or None), and the first categorical.

        A change-coded column also carries the level bin of the value it reached: an input only (never predicted,
        left out of the loss), so the network knows where the series is and does not drift away.
        """
        out, col = [], 2
        for j in range(self._n_numeric()):
            level = col + 2 if j in self.catoms_ else None
            out.append((col, col + 1, level))
            col += 3 if level is not None else 2
        return out, col

    def _input_only(self) -> list[int]:
        return [level for _, _, level in self._layout()[0] if level is not None]

    def _vocab_sizes(self) -> list[int]:
        codec = self._codec
        numeric = []
        for j in range(self._n_numeric()):
            nl, nc = self._token_counts(j)
            numeric += [nl + nc + int(self._column(j)["has_null"]), self.fine_bins]
            if nc:
                numeric.append(nl + 1)
        return [2, codec.n_delta_tokens, *numeric, *codec.categorical_sizes]

    def _n_numeric(self) -> int:
        return len(self._codec.numeric_columns)

    def _meta_sizes(self) -> list[int]:
        """Vocabularies of the meta tokens: per meta value (numeric column j's sequence mean is meta 2j, its std
        2j + 1) its bin (a gap token last where the column has gaps: a sequence may have none of its values), then
        where inside the bin it lies, as for the values."""
        out = []
        for k in range(2 * self._n_numeric()):
            out += [_n_tokens(self.matoms_[k], self.medges_[k]) + int(self._data_column(k // 2)["has_null"]),
                    self.fine_bins]
        return out

    def _data_column(self, j: int) -> dict:
        name = self._codec.numeric_columns[j]
        return next(v for v in self._codec.values if v["name"] == name)

    def _column(self, j: int) -> dict:
        """Column j as the network learns it: has gaps, integral, range (a scaled column's from its tokens)."""
        if not self.scaled_:
            return self._data_column(j)
        ends = np.r_[self.atoms_[j], self.edges_[j]]
        return {"has_null": self._data_column(j)["has_null"], "integral": False, "min": float(ends.min()),
                "max": float(ends.max())}

    @staticmethod
    def _scaled(numeric: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(meta (n, 2p): per sequence and column its mean then its std, NaN without values; the values
        standardised by them (steps, p))."""
        seq = np.repeat(np.arange(len(lengths)), lengths)
        frame = pd.DataFrame(numeric).groupby(seq)
        mean, std = frame.mean().to_numpy(), frame.std(ddof=0).to_numpy()
        z = (numeric - mean[seq]) / np.where(std > 0, std, 1.0)[seq]
        meta = np.stack([mean, std], axis=2).reshape(len(lengths), -1)
        return np.ascontiguousarray(meta, dtype=np.float64), np.ascontiguousarray(z, dtype=np.float64)

    def _meta_tokens(self, meta: np.ndarray) -> np.ndarray:
        """(n, 4p) tokens of (n, 2p) meta values: per value its bin then its place in the bin."""
        out = np.zeros((len(meta), 2 * meta.shape[1]), np.int64)
        for k in range(meta.shape[1]):
            ok = ~np.isnan(meta[:, k])
            out[~ok, 2 * k] = _n_tokens(self.matoms_[k], self.medges_[k])
            out[ok, 2 * k], out[ok, 2 * k + 1] = _value_tokens(meta[ok, k], self.matoms_[k], self.medges_[k],
                                                               self.fine_bins)
        return out

    def _meta_values(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, 2p) meta values of drawn (n, 4p) tokens: an atom as itself, a bin's fine step uniformly, a gap NaN."""
        out = np.full((len(tokens), tokens.shape[1] // 2), np.nan)
        for k in range(out.shape[1]):
            atoms, edges = self.matoms_[k], self.medges_[k]
            ok = tokens[:, 2 * k] < _n_tokens(atoms, edges)
            out[ok, k] = _token_values(tokens[ok, 2 * k], tokens[ok, 2 * k + 1], atoms, edges, self.fine_bins, rng)
        return out

    @staticmethod
    def _between_share(enc: EncodedSequences) -> float:
        """Share of the numeric values' variance that lies between the sequences' means (mean over columns)."""
        seq = np.repeat(np.arange(len(enc.lengths)), enc.lengths)
        shares = []
        for j in range(enc.numeric.shape[1]):
            x = enc.numeric[:, j]
            ok = ~np.isnan(x)
            if ok.sum() >= 2 and np.var(x[ok]) > 0:
                means = pd.Series(x[ok]).groupby(seq[ok]).transform("mean").to_numpy()
                shares.append(np.var(means) / np.var(x[ok]))
        return float(np.mean(shares)) if shares and len(enc.lengths) >= 2 else 0.0

    def _unscaled(self, z: np.ndarray, meta: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The data's values from standardised ones and their sequences' (mean, std), inside the training range."""
        seq = np.repeat(np.arange(len(lengths)), lengths)
        out = meta[seq, 0::2] + meta[seq, 1::2] * z
        for j in range(z.shape[1]):
            col = self._data_column(j)
            out[:, j] = np.clip(out[:, j], col["min"], col["max"])
            if col["integral"]:
                out[:, j] = np.round(out[:, j])
        return out

    @staticmethod
    def _previous_observed(x: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """Per step, the last observed (non-gap) value before it in its sequence (NaN when there is none)."""
        filled = pd.Series(x).groupby(seq).ffill()
        return filled.groupby(seq).shift(1).to_numpy(dtype=np.float64)

    def _tokenize(self, enc: EncodedSequences) -> np.ndarray:
        """(n, max_len + 1, m) token array: every step, then one stop step; padding is 0 (masked in the loss)."""
        n, steps = len(enc.lengths), int(enc.lengths.sum())
        seq = np.repeat(np.arange(n), enc.lengths)
        cols = [np.full(steps, GO, np.int64), enc.deltas]
        for j in range(enc.numeric.shape[1]):
            x = enc.numeric[:, j]
            gap = np.isnan(x)
            nl, nc = self._token_counts(j)
            coarse, fine = np.full(steps, nl + nc, np.int64), np.zeros(steps, np.int64)
            level = ~gap
            if nc:
                prev = self._previous_observed(x, seq)
                change = ~gap & ~np.isnan(prev)
                c, f = _value_tokens(x[change] - prev[change], self.catoms_[j], self.cedges_[j], self.fine_bins)
                coarse[change], fine[change] = nl + c, f
                level = ~gap & ~change
            c, f = _value_tokens(x[level], self.atoms_[j], self.edges_[j], self.fine_bins)
            coarse[level], fine[level] = c, f
            cols += [coarse, fine]
            if nc:
                reached = np.full(steps, nl, np.int64)
                reached[~gap] = numeric_to_tokens(x[~gap], self.atoms_[j], self.edges_[j])
                cols.append(reached)
        cols.extend(enc.categorical[:, j] for j in range(enc.categorical.shape[1]))
        flat = np.stack(cols, axis=1)
        out = np.zeros((n, int(enc.lengths.max()) + 1, flat.shape[1]), np.int64)
        out[seq, self._positions(enc.lengths)] = flat
        out[np.arange(n), enc.lengths, 0] = STOP
        return out

    def _level_values(self, coarse: np.ndarray, fine: np.ndarray, j: int, rng: np.random.Generator) -> np.ndarray:
        """Values of a level-coded numeric column from its tokens; gaps as NaN."""
        nl, _ = self._token_counts(j)
        out = np.full(len(coarse), np.nan)
        level = coarse < nl
        out[level] = _token_values(coarse[level], fine[level], self.atoms_[j], self.edges_[j], self.fine_bins, rng)
        return np.round(out) if self._column(j)["integral"] else out

    def _step_values(self, coarse: np.ndarray, fine: np.ndarray, last: np.ndarray, j: int,
                     rng: np.random.Generator) -> np.ndarray:
        """One step of a change-coded column: a level as drawn, a change added to the last value (or to the middle
        of the range when there is none yet), kept inside the training range; gaps as NaN."""
        col = self._column(j)
        nl, nc = self._token_counts(j)
        out = self._level_values(coarse, fine, j, rng)
        change = (coarse >= nl) & (coarse < nl + nc)
        if change.any():
            base = np.where(np.isnan(last[change]), 0.5 * (col["min"] + col["max"]), last[change])
            v = base + _token_values(coarse[change] - nl, fine[change], self.catoms_[j], self.cedges_[j],
                                     self.fine_bins, rng)
            v = np.clip(v, col["min"], col["max"])
            out[change] = np.round(v) if col["integral"] else v
        return out

    def _kind_masks(self) -> list[tuple[int, int, int]]:
        """Per change-coded numeric column (its bin-token column, level tokens, change tokens)."""
        layout = self._layout()[0]
        return [(layout[j][0], *self._token_counts(j)) for j in sorted(self.catoms_)] if self.level_first else []

    @staticmethod
    def _value_before(tokens, lengths, col: int, nl: int, nc: int):
        """(B, T) true where the sequence had a value (a level or change token of column `col`) at an earlier step."""
        import torch

        observed = (tokens[..., col] < nl + nc) & (torch.arange(tokens.shape[1])[None, :] < lengths[:, None])
        return torch.cumsum(observed.long(), dim=1) - observed.long() > 0

    def _restrict(self, logits, tokens, lengths):
        """With `level_first`, a change-coded column draws a level (or a gap) until its sequence has a value and
        a change (or a gap) after: the tokens' own coding, so no probability goes where no training token can be."""
        import torch

        for col, nl, nc in self._kind_masks():
            before = self._value_before(tokens, lengths, col, nl, nc)
            ban = torch.zeros(logits.shape[:2] + (logits.shape[-1],), dtype=torch.bool)
            ban[..., nl:nl + nc] = ~before[..., None]
            ban[..., :nl] = before[..., None]
            logits[:, :, col] = logits[:, :, col].masked_fill(ban, float("-inf"))
        return logits

    def _share_ok(self) -> bool:
        v = self.scheduled_sampling
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1

    def _ordinal_ok(self) -> bool:
        v = self.ordinal_init
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 100 \
            and self.ordinal_columns in self.ORDINAL_COLUMNS

    def _ordinal_start(self, net) -> None:
        """Start each numeric column's level tokens in value order: one embedding coordinate (and, for its bin
        head, the logits' slope along one hidden direction) set to the tokens' standardised values, the other
        coordinates shrunk, its in-bin steps likewise (a tenth as strong).

        A randomly embedded bin is a class like any other: on a few rough series (BasicMotions) the network
        memorises the training sequences' token paths before it learns that neighbouring bins are near, and early
        stopping keeps a net whose steps barely depend on the last ones (lag-1 autocorrelation 0.0 against 0.5).
        """
        import torch

        g = torch.Generator().manual_seed(self.seed)  # its own stream: the rest of the start is drawn as before
        scale = float(self.ordinal_init)
        w, off = net.embed.weight, net.offsets
        for j, (coarse, fine, level) in enumerate(self._layout()[0]):
            nl, _ = self._token_counts(j)
            atoms, edges = self.atoms_[j], self.edges_[j]
            if not nl or (self.ordinal_columns == "rough" and level is not None):
                continue
            mids = np.r_[atoms, 0.5 * (edges[:-1] + edges[1:])] if len(edges) else atoms
            z = torch.from_numpy((mids - mids.mean()) / (mids.std() or 1.0)).float()
            for col in (coarse, level) if level is not None else (coarse,):
                w[off[col]:off[col] + nl].mul_(ORDINAL_SHRINK)
                w[off[col]:off[col] + nl, 0] = scale * z
            steps = torch.arange(self.fine_bins, dtype=torch.float32)
            w[off[fine]:off[fine] + self.fine_bins].mul_(ORDINAL_SHRINK)
            w[off[fine]:off[fine] + self.fine_bins, 0] = 0.1 * scale * ((steps + 0.5) / self.fine_bins - 0.5)
            u = torch.randn(net.w2.shape[1], generator=g)
            net.w2[coarse, :, :nl] += scale * (u / u.norm())[:, None] * z[None, :]

    def _calibration_ok(self) -> bool:
        w = self.calibration_window
        return self.calibrate in self.CALIBRATIONS and isinstance(w, int) and not isinstance(w, bool) \
            and -1 <= w <= 10_000

    def _prior_ok(self) -> bool:
        v = self.length_prior
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1e6

    def _length_table(self, enc: EncodedSequences) -> np.ndarray:
        """(context rows, length values) counts of the training sequences: per row of the codec's context table,
        how many of its sequences had each of the codec's lengths."""
        codec = self._codec
        rows = (enc.context[:, None, :] == codec.context_table[None, :, :]).all(axis=2).argmax(axis=1)
        cols = np.searchsorted(codec.lengths, enc.lengths)
        table = np.zeros((len(codec.context_table), len(codec.lengths)), np.int64)
        np.add.at(table, (rows, cols), 1)
        return table

    def _draw_lengths(self, context: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A length per sequence from its context row's training lengths, smoothed towards the pooled ones by
        `length_prior` sequences (a context row seen a few times still draws lengths it never had)."""
        codec, table = self._codec, self.length_table_
        rows = (context[:, None, :] == codec.context_table[None, :, :]).all(axis=2).argmax(axis=1)
        pooled = codec.length_counts / codec.length_counts.sum()
        p = table + self.length_prior * pooled[None, :]
        p = p / p.sum(axis=1, keepdims=True)
        u = rng.random(len(context))
        picks = np.minimum((p[rows].cumsum(axis=1) < u[:, None]).sum(axis=1), len(codec.lengths) - 1)
        return codec.lengths[picks]

    def _build(self):
        from generators.timeseries.autoregressive.torch_model import StepwiseGRUNet

        return StepwiseGRUNet(self._vocab_sizes(), self._codec.context_sizes, self.embedding_dim, self.hidden,
                              self.head_hidden, self.dropout, self._meta_sizes() if self.scaled_ else None)

    # --------------------------------------------------------------- fit
    def _fit(self, enc: EncodedSequences) -> None:
        import torch

        if self.lengths not in self.LENGTHS or not self._prior_ok():
            raise ValueError(f"lengths={self.lengths!r}, length_prior={self.length_prior!r}: use one of "
                             f"{', '.join(self.LENGTHS)} and a number in 0..1e6")
        if not self._share_ok():
            raise ValueError(f"scheduled_sampling={self.scheduled_sampling!r}: use a share in 0..1")
        if not self._ordinal_ok():
            raise ValueError(f"ordinal_init={self.ordinal_init!r}, ordinal_columns={self.ordinal_columns!r}: use a "
                             f"number in 0..100 (0 starts at random) and one of {', '.join(self.ORDINAL_COLUMNS)}")
        if not self._calibration_ok():
            raise ValueError(f"calibrate={self.calibrate!r}, calibration_window={self.calibration_window!r}: use one "
                             f"of {', '.join(self.CALIBRATIONS)} and a whole number of steps in -1..10000")
        raw = enc  # the data's own values, which the calibration maps onto (enc is standardised when scaled)
        self.atoms_, self.edges_, self.catoms_, self.cedges_ = {}, {}, {}, {}
        seq = np.repeat(np.arange(len(enc.lengths)), enc.lengths)
        self.matoms_, self.medges_ = {}, {}
        self.scaled_ = bool(self.scale_per_sequence if self.scale_per_sequence is not None
                            else self._between_share(enc) >= self.SCALE_SHARE)
        meta_tokens = None
        if self.scaled_:
            meta, z = self._scaled(enc.numeric, enc.lengths)
            enc = dataclasses.replace(enc, numeric=z)
            for k in range(meta.shape[1]):
                atoms, edges = fit_numeric_tokens(meta[~np.isnan(meta[:, k]), k], self.meta_bins)
                if len(edges) == 0 and len(atoms) > 1:  # few distinct scales: bins between them, not copies
                    atoms, edges = np.zeros(0), np.unique(atoms)
                self.matoms_[k] = np.ascontiguousarray(atoms, dtype=np.float64)
                self.medges_[k] = np.ascontiguousarray(edges, dtype=np.float64)
            meta_tokens = self._meta_tokens(meta)
        for j in range(enc.numeric.shape[1]):
            x = enc.numeric[:, j]
            atoms, edges = fit_numeric_tokens(x[~np.isnan(x)], self.max_bins)
            self.atoms_[j] = np.ascontiguousarray(atoms, dtype=np.float64)
            self.edges_[j] = np.ascontiguousarray(edges, dtype=np.float64)
            prev = self._previous_observed(x, seq)
            ok = ~np.isnan(x) & ~np.isnan(prev)
            change = x[ok] - prev[ok]
            # a smooth column (steps small next to its spread within a sequence) is drawn as changes: levels drawn
            # anew at every step would jitter by a bin's width where the data moves by far less
            within = x - pd.Series(x).groupby(seq).transform("mean").to_numpy()
            if ok.sum() >= 20 and np.std(change) < self.smooth_ratio * np.nanstd(within):
                catoms, cedges = fit_numeric_tokens(change, self.max_bins)
                self.catoms_[j] = np.ascontiguousarray(catoms, dtype=np.float64)
                self.cedges_[j] = np.ascontiguousarray(cedges, dtype=np.float64)
        self.length_table_ = self._length_table(enc) if self.lengths == "drawn" else None
        tokens = torch.from_numpy(self._tokenize(enc))
        lengths = torch.from_numpy(enc.lengths)
        context = torch.from_numpy(np.ascontiguousarray(enc.context))
        meta = torch.from_numpy(meta_tokens) if meta_tokens is not None else None
        levels = torch.from_numpy(self._true_levels(enc)) if self.scheduled_sampling > 0 else None
        rng = np.random.default_rng(self.seed)
        n = len(tokens)
        perm = rng.permutation(n)
        n_val = int(n * self.validation_fraction) if n >= 20 else 0
        if self.min_validation:  # early stopping judged on at least this many sequences (at most a third)
            n_val = max(n_val, min(self.min_validation, n // 3))
        val, train = perm[:n_val], perm[n_val:]
        with torch.random.fork_rng(devices=[]), torch_threads(self.num_threads):
            torch.manual_seed(self.seed)
            net = self._build()
            with torch.no_grad():  # every head starts at its column's log marginal (see the tabular model)
                mask = self._mask(tokens[train], lengths[train], self._input_only())
                for j, v in enumerate(net.vocab_sizes):
                    counts = torch.bincount(tokens[train][..., j][mask[..., j]], minlength=v).double()
                    net.b2[j, :v] = torch.log((counts + 0.5) / (counts.sum() + 0.5 * v)).float()
                for k, v in enumerate(net.meta_sizes):
                    counts = torch.bincount(meta[train][:, k], minlength=v).double()
                    net.meta_b2[k, :v] = torch.log((counts + 0.5) / (counts.sum() + 0.5 * v)).float()
                if self.ordinal_init:
                    self._ordinal_start(net)
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, foreach=True)  # one op per step
            g = torch_generator(rng)
            best, best_state, stale, updates = math.inf, None, 0, 0
            self.history_ = []
            start = time.perf_counter()
            # a few long sequences make few batches: train for at least `min_updates` gradient steps
            epochs = max(self.epochs, math.ceil(self.min_updates / math.ceil(len(train) / self.batch_size)))
            for epoch in range(1, epochs + 1):
                net.train()
                order = torch.from_numpy(train)[torch.randperm(len(train), generator=g)]
                total = 0.0
                for i in range(0, len(order), self.batch_size):
                    updates += 1
                    idx = order[i:i + self.batch_size]
                    loss = self._loss(net, tokens[idx], lengths[idx], context[idx], None if meta is None else meta[idx],
                                      None if levels is None else (levels[idx], g))
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
                        val_loss = self._loss(net, tokens[vi], lengths[vi], context[vi],
                                              None if meta is None else meta[vi]).item()
                else:
                    val_loss = train_loss
                self.history_.append({"epoch": epoch, "updates": updates, "train_loss": train_loss,
                                      "val_loss": val_loss})
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
        self._fit_calibration(raw)

    @staticmethod
    def _mask(tokens, lengths, input_only=()):
        """(B, T, m) true where a token is real: the stop column up to and including the stop step, the other
        columns on the sequence's own steps."""
        import torch

        t = torch.arange(tokens.shape[1])[None, :]
        steps = t < lengths[:, None]
        mask = steps[..., None].expand(-1, -1, tokens.shape[2]).clone()
        mask[..., 0] = t <= lengths[:, None]
        for j in input_only:
            mask[..., j] = False
        return mask

    def _true_levels(self, enc: EncodedSequences) -> np.ndarray:
        """(n, max_len + 1, change-coded columns) the values the change-coded columns reached, laid out as the
        tokens (NaN at gaps and padding)."""
        n = len(enc.lengths)
        seq = np.repeat(np.arange(n), enc.lengths)
        pos = self._positions(enc.lengths)
        out = np.full((n, int(enc.lengths.max()) + 1, len(self.catoms_)), np.nan)
        for i, j in enumerate(sorted(self.catoms_)):
            out[seq, pos, i] = enc.numeric[:, j]
        return out

    def _token_mids(self, coarse: np.ndarray, fine: np.ndarray, atoms: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """Values of tokens without randomness: an atom as itself, a bin's fine step at its middle."""
        out = np.empty(coarse.shape)
        is_atom = coarse < len(atoms)
        out[is_atom] = atoms[coarse[is_atom]]
        b = coarse[~is_atom] - len(atoms)
        out[~is_atom] = edges[b] + (fine[~is_atom] + 0.5) / self.fine_bins * (edges[b + 1] - edges[b])
        return out

    def _scheduled_history(self, net, tokens, lengths, context, meta, levels, g):
        """The steps the GRU reads under scheduled sampling: at a `scheduled_sampling` share of the steps, tokens
        drawn from a teacher-forced pass (the stop column stays true), the true steps elsewhere."""
        import torch

        with torch.no_grad():
            logits = self._restrict(net(tokens, context, meta), tokens, lengths)
            b, t, m, v = logits.shape
            drawn = torch.multinomial(torch.softmax(logits.reshape(-1, v), dim=1), 1, generator=g).reshape(b, t, m)
            use = torch.rand((b, t), generator=g) < self.scheduled_sampling
        drawn[..., 0] = tokens[..., 0]
        true_np, drawn_np = tokens.numpy(), drawn.numpy()
        for i, k in enumerate(sorted(self.catoms_)):  # the level reached: the true value moved by the drawn change
            coarse, fine, level = self._layout()[0][k]
            nl, nc = self._token_counts(k)
            col = self._column(k)
            x = levels[..., i].numpy()
            dc, df, tc, tf = drawn_np[..., coarse], drawn_np[..., fine], true_np[..., coarse], true_np[..., fine]
            reached = true_np[..., level].copy()
            value = np.full(x.shape, np.nan)
            lv = dc < nl
            value[lv] = self._token_mids(dc[lv], df[lv], self.atoms_[k], self.edges_[k])
            ch = (dc >= nl) & (dc < nl + nc) & (tc >= nl) & (tc < nl + nc) & ~np.isnan(x)
            value[ch] = x[ch] + self._token_mids(dc[ch] - nl, df[ch], self.catoms_[k], self.cedges_[k]) \
                - self._token_mids(tc[ch] - nl, tf[ch], self.catoms_[k], self.cedges_[k])
            ok = ~np.isnan(value)
            reached[ok] = numeric_to_tokens(np.clip(value[ok], col["min"], col["max"]), self.atoms_[k],
                                            self.edges_[k])
            reached[dc == nl + nc] = nl  # a drawn gap
            drawn[..., level] = torch.from_numpy(reached)
        return torch.where(use[..., None], drawn, tokens)

    def _loss(self, net, tokens, lengths, context, meta=None, scheduled=None):
        """Cross-entropy per sequence; `scheduled` (true levels, torch generator) turns scheduled sampling on."""
        import torch
        import torch.nn.functional as F

        history = None
        if net.training and scheduled is not None:
            history = self._scheduled_history(net, tokens, lengths, context, meta, *scheduled)
        elif net.training and self.input_noise > 0:  # earlier steps as the GRU sees them: some tokens redrawn
            sizes = torch.tensor(net.vocab_sizes)
            redraw = torch.rand(tokens.shape) < self.input_noise
            redraw[..., 0] = False
            history = torch.where(redraw, (torch.rand(tokens.shape) * sizes).long(), tokens)
        # the loss of `forward` + `_restrict` + `_mask`, computed only where it reads: real steps, predicted columns
        # (a one-token column's cross-entropy is 0), each group of equal vocabularies in one product, no padding
        t = torch.arange(tokens.shape[1])[None, :]
        rows = t <= lengths[:, None]
        states, emb = net.step_inputs(tokens, context, meta, history)
        tok, sizes, skip = tokens[rows], net.vocab_sizes, set(self._input_only())
        target = tok.masked_fill((t >= lengths[:, None])[rows][:, None] & (torch.arange(tok.shape[1]) > 0), -100)
        cols = sorted((j for j, v in enumerate(sizes) if v > 1 and j not in skip), key=lambda j: (sizes[j], j))
        x = torch.cat([states, emb], dim=2)[rows]
        kinds = {col: (nl, nc) for col, nl, nc in self._kind_masks()}
        per, a = 0.0, 0
        while a < len(cols):
            v = sizes[cols[a]]
            b = a + sum(sizes[j] == v for j in cols[a:])
            group = torch.tensor(cols[a:b])
            logits = net.head_logits(net.head_hidden(x, group), group, v)  # (N, columns, v)
            if kinds.keys() & set(cols[a:b]):  # level_first: see `_restrict`
                ban = torch.zeros(logits.shape, dtype=torch.bool)
                for i, j in enumerate(cols[a:b]):
                    if j in kinds:
                        nl, nc = kinds[j]
                        before = self._value_before(tokens, lengths, j, nl, nc)[rows][:, None]
                        ban[:, i, nl:nl + nc], ban[:, i, :nl] = ~before, before
                logits = logits.masked_fill(ban, float("-inf"))
            per = per + F.cross_entropy(logits.reshape(-1, v), target[:, cols[a:b]].reshape(-1),
                                        ignore_index=-100, reduction="sum")
            a = b
        if meta is not None:
            meta_logits = net.meta_logits(net.context_vector(context), meta)
            per = per + F.cross_entropy(meta_logits.flatten(0, 1), meta.flatten(), reduction="sum")
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
        layout, cat_start = self._layout()
        reached_of = {level: k for k, (_, _, level) in enumerate(layout) if level is not None}
        kinds = {layout[k][0]: (k, nl, nc) for k in sorted(self.catoms_) for nl, nc in [self._token_counts(k)]
                 } if self.level_first else {}
        drawn = None
        if length is None and self.lengths == "drawn":  # lengths first, from the context; the stop token obeys
            drawn = torch.from_numpy(self._draw_lengths(context, rng))
            horizon = int(drawn.max()) if n else horizon
        chunks, meta_chunks = [], []
        with torch.inference_mode(), torch_threads(self.num_threads):
            for begin in range(0, n, 4096):
                ctx_codes = torch.from_numpy(np.ascontiguousarray(context[begin:begin + 4096]))
                b = len(ctx_codes)
                ctx = net.context_vector(ctx_codes)
                meta_tok = None
                if self.scaled_:  # the sequences' scales first, column after column, from the context
                    meta_tok = torch.zeros((b, len(net.meta_sizes)), dtype=torch.long)
                    for k in range(len(net.meta_sizes)):
                        logits = net.meta_column_logits(ctx, meta_tok, k)
                        meta_tok[:, k] = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=g)[:, 0]
                    meta_chunks.append(self._meta_values(meta_tok.numpy(), rng))
                ctx = net.condition(ctx, meta_tok)
                state = net.initial_state(ctx)
                prev = net.bos.expand(b, -1)
                steps = torch.zeros((b, horizon, m), dtype=torch.long)
                values = np.full((b, horizon, len(layout)), np.nan)
                last = np.full((b, len(layout)), np.nan)
                lengths = torch.full((b,), horizon, dtype=torch.long)
                alive = torch.ones(b, dtype=torch.bool)
                for t in range(horizon + 1):
                    out, state = net.step(prev, ctx, state)
                    row = torch.zeros((b, m), dtype=torch.long)
                    for j in range(m):
                        if j in reached_of:  # the level a change-coded column reached: computed, not drawn
                            k = reached_of[j]
                            coarse_j, fine_j, _ = layout[k]
                            v = self._step_values(row[:, coarse_j].numpy(), row[:, fine_j].numpy(), last[:, k], k,
                                                  rng)
                            values[:, min(t, horizon - 1), k] = v
                            seen = ~np.isnan(v)
                            last[seen, k] = v[seen]
                            reached = np.full(b, self._token_counts(k)[0], np.int64)
                            reached[seen] = numeric_to_tokens(v[seen], self.atoms_[k], self.edges_[k])
                            row[:, j] = torch.from_numpy(reached)
                            continue
                        if j == 0 and drawn is not None:
                            stop = t >= drawn[begin:begin + b]
                            row[:, 0] = torch.where(stop, STOP, GO)
                            if stop.all():
                                break
                            continue
                        logits = net.column_logits(out, row, j)
                        if j == 0:
                            forced = length is not None or t < shortest or t == horizon
                            if forced:
                                row[:, 0] = STOP if t == horizon else GO
                                if t == horizon:  # the stop step draws nothing: the last step's values stay
                                    break
                                continue
                        if j in kinds:  # a level until the sequence has a value, a change after (level_first)
                            k, nl, nc = kinds[j]
                            before = torch.from_numpy(~np.isnan(last[:, k]))[:, None]
                            ban = torch.zeros(logits.shape, dtype=torch.bool)
                            ban[:, nl:nl + nc] = ~before
                            ban[:, :nl] = before
                            logits = logits.masked_fill(ban, float("-inf"))
                        row[:, j] = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=g)[:, 0]
                    ended = alive & (row[:, 0] == STOP)
                    lengths[ended] = t
                    alive &= ~ended
                    if t == horizon or not alive.any():
                        break
                    steps[:, t] = row
                    prev = net.step_embedding(row)
                chunks.append((steps.numpy(), lengths.numpy(), values))
        keep = [(np.arange(s.shape[1])[None, :] < ln[:, None]).ravel() for s, ln, _ in chunks]
        tok = np.concatenate([s.reshape(-1, m)[k] for (s, _, _), k in zip(chunks, keep)])
        reached_values = np.concatenate([v.reshape(-1, len(layout))[k] for (_, _, v), k in zip(chunks, keep)])
        lengths = np.concatenate([ln for _, ln, _ in chunks]).astype(np.int64)
        numeric = np.empty((len(tok), len(layout)))
        for j, (coarse_j, fine_j, level_j) in enumerate(layout):
            numeric[:, j] = (reached_values[:, j] if level_j is not None
                             else self._level_values(tok[:, coarse_j], tok[:, fine_j], j, rng))
        if self.scaled_:
            numeric = self._unscaled(numeric, np.concatenate(meta_chunks), lengths)
        if self.calibration_ is not None:  # the final values through the maps learned at fit (`calibrate`)
            numeric = self._calibrated(numeric, lengths, g)
        categorical = tok[:, cat_start:].astype(np.int64)
        return EncodedSequences(lengths=lengths, numeric=numeric, categorical=np.ascontiguousarray(categorical),
                                deltas=tok[:, 1].astype(np.int64), context=np.ascontiguousarray(context))

    # ------------------------------------------------------- calibration
    @staticmethod
    def _positions(lengths: np.ndarray) -> np.ndarray:
        """Per step its position in its sequence (0 at the first step)."""
        return np.arange(int(lengths.sum())) - np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)

    @staticmethod
    def _nearest(centres: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Per step the position bucket whose centre is nearest."""
        return np.searchsorted((centres[1:] + centres[:-1]) / 2, positions, side="right")

    def _fit_calibration(self, enc: EncodedSequences) -> None:
        """With `calibrate`, the maps from the trained model's own value quantiles to the training values' (per
        numeric column and position bucket), from a reference sample drawn with the calibration off."""
        self.calibration_ = None
        if self.calibrate == "off":
            return
        codec = self._codec
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.CALIBRATION_KEY,)))
        n = self.CALIBRATION_SEQUENCES
        length = codec.window if codec.single_series else int(codec.lengths[0]) if len(codec.lengths) == 1 else None
        ref = self._sample(n, rng, codec.sample_context(n, rng, {}), length)  # as `sample` draws, unconditioned
        pos_t, pos_r = self._positions(enc.lengths), self._positions(ref.lengths)
        centres = np.array([pos_t.mean()], dtype=np.float64)
        if self.calibrate in ("steps", "auto"):  # buckets by quantiles of the training steps' positions
            edges = np.unique(np.quantile(pos_t, np.arange(1, self.CALIBRATION_BUCKETS) / self.CALIBRATION_BUCKETS))
            which = np.searchsorted(edges, pos_t, side="right")
            centres = np.unique([pos_t[which == b].mean() for b in np.unique(which)]).astype(np.float64)
        k = self.CALIBRATION_QUANTILES
        p = np.linspace(0.0, 1.0, k)
        in_t, in_r = self._nearest(centres, pos_t), self._nearest(centres, pos_r)
        maps = {}
        for j in range(self._n_numeric()):
            col = self._data_column(j)
            xt, xr = enc.numeric[:, j], ref.numeric[:, j]
            ok_t, ok_r = ~np.isnan(xt), ~np.isnan(xr)
            if not ok_r.any():  # the model never draws a value of this column: nothing to map
                continue
            if self.calibrate == "auto" and not self._drifted(xt, xr, enc.lengths, rng):
                continue
            src, dst = np.empty((len(centres), k)), np.empty((len(centres), k))
            for b in range(len(centres)):
                use_t, use_r = ok_t & (in_t == b), ok_r & (in_r == b)
                if use_t.sum() < k or use_r.sum() < k:  # too few values at these steps: the pooled map
                    use_t, use_r = ok_t, ok_r
                src[b], dst[b] = np.quantile(xr[use_r], p), np.quantile(xt[use_t], p)
            maps[j] = tuple(np.ascontiguousarray(np.clip(np.maximum.accumulate(a, axis=1), col["min"], col["max"]))
                            for a in (src, dst))
        self.calibration_ = (centres, maps)

    def _drifted(self, xt: np.ndarray, xr: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> bool:
        """Whether the model's values `xr` lie further from the training values `xt` (decile TVD, deciles of the
        training values, gaps left out) than 95% of entity-bootstrap resamples of the training values do: a drift
        beyond what the training set's own size explains."""
        ok = ~np.isnan(xt)
        edges = np.unique(np.quantile(xt[ok], np.linspace(0.1, 0.9, 9)))
        bins = len(edges) + 1
        seq = np.repeat(np.arange(len(lengths)), lengths)[ok]
        per_seq = np.zeros((len(lengths), bins))
        np.add.at(per_seq, (seq, np.searchsorted(edges, xt[ok], side="right")), 1.0)
        train = per_seq.sum(axis=0) / ok.sum()
        ref = np.bincount(np.searchsorted(edges, xr[~np.isnan(xr)], side="right"), minlength=bins)
        observed = 0.5 * np.abs(ref / ref.sum() - train).sum()
        n, tvds = len(lengths), []
        for _ in range(self.CALIBRATION_RESAMPLES):  # sequences drawn with replacement: their weights
            boot = rng.multinomial(n, np.full(n, 1.0 / n)) @ per_seq
            tvds.append(0.5 * np.abs(boot / max(boot.sum(), 1.0) - train).sum())
        return bool(observed > np.quantile(tvds, 0.95))

    @staticmethod
    def _quantile_map(x: np.ndarray, src: np.ndarray, dst: np.ndarray, u: np.ndarray) -> np.ndarray:
        """x through the piecewise-linear map of knots `src` (non-decreasing) onto `dst`: linear between knots,
        the end knots' values beyond them; a value equal to tied knots src[a..b] goes to place a + u (b - a)."""
        k = len(src)
        lo, hi = np.searchsorted(src, x, side="left"), np.searchsorted(src, x, side="right")
        at = np.clip(lo, 0, k - 1).astype(np.float64)  # below the first knot: 0; above the last: k - 1
        tie = hi > lo
        at[tie] = lo[tie] + u[tie] * (hi[tie] - 1 - lo[tie])
        inner = ~tie & (lo > 0) & (lo < k)  # src[a] < x < src[a + 1]
        a = lo[inner] - 1
        at[inner] = a + (x[inner] - src[a]) / (src[a + 1] - src[a])
        return np.interp(at, np.arange(k), dst)

    def _calibrated(self, numeric: np.ndarray, lengths: np.ndarray, g) -> np.ndarray:
        """Drawn values through the calibration maps (a value at step t by the two buckets around t, blended
        linearly), gaps kept, clipped to the training range, integral columns rounded; one uniform per sequence
        and column (from the sampling's torch generator) places the values that fall on tied knots."""
        import torch

        centres, maps = self.calibration_
        n, nb = len(lengths), len(centres)
        u = torch.rand((n, max(numeric.shape[1], 1)), generator=g, dtype=torch.float64).numpy()
        seq, pos = np.repeat(np.arange(n), lengths), self._positions(lengths).astype(np.float64)
        out = numeric.copy()
        for j, (src, dst) in maps.items():
            ok = ~np.isnan(out[:, j])
            x, t, uj = out[ok, j], pos[ok], u[seq[ok], j]
            if nb == 1:
                y = self._quantile_map(x, src[0], dst[0], uj)
            else:
                b = np.clip(np.searchsorted(centres, t, side="right") - 1, 0, nb - 2)
                w = np.clip((t - centres[b]) / (centres[b + 1] - centres[b]), 0.0, 1.0)
                mapped = np.stack([self._quantile_map(x, src[i], dst[i], uj) for i in range(nb)], axis=1)
                rows = np.arange(len(x))
                y = (1.0 - w) * mapped[rows, b] + w * mapped[rows, b + 1]
            if self.calibration_window:  # the correction smoothed along each sequence: the changes kept
                y = x + self._smoothed(y - x, ok, lengths, self.calibration_window)
            col = self._data_column(j)
            y = np.clip(y, col["min"], col["max"])
            out[ok, j] = np.round(y) if col["integral"] else y
        return out

    @staticmethod
    def _smoothed(c: np.ndarray, ok: np.ndarray, lengths: np.ndarray, half: int) -> np.ndarray:
        """The mean of c over each step's window of `half` steps either side inside its sequence (its own values
        only: c is given at the steps where `ok`; negative `half`: the whole sequence), at the `ok` steps."""
        full = np.zeros(len(ok))
        full[ok] = c
        sums, counts = np.r_[0.0, np.cumsum(full)], np.r_[0, np.cumsum(ok)]
        starts = np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)[ok]
        ends = starts + np.repeat(lengths, lengths)[ok]
        if half < 0:
            lo, hi = starts, ends
        else:
            at = np.flatnonzero(ok)
            lo, hi = np.maximum(at - half, starts), np.minimum(at + half + 1, ends)
        return (sums[hi] - sums[lo]) / (counts[hi] - counts[lo])

    def _checked_calibration(self, arrays, calibrated: list[int]) -> tuple[np.ndarray, dict]:
        """The saved calibration: bucket centres (1 when pooled, increasing step positions) and per calibrated
        column (buckets, knots) non-decreasing maps inside the column's training range."""
        centres = take_array(arrays, "calibration_steps", np.float64, ndim=1)
        if not 1 <= len(centres) <= 64 or (self.calibrate == "pooled" and len(centres) != 1) \
                or (np.diff(centres) <= 0).any() or (centres < 0).any():
            raise ModelFormatError("array 'calibration_steps' must hold 1 (calibrate 'pooled') or up to 64 "
                                   "increasing step positions >= 0")
        maps, k = {}, None
        for j in calibrated:
            col = self._data_column(j)
            if k is None:
                k = take_array(arrays, f"calibration_from{j}", np.float64, ndim=2).shape[1]
            pair = []
            for key in (f"calibration_from{j}", f"calibration_to{j}"):
                a = take_array(arrays, key, np.float64, (len(centres), k))
                if not 2 <= k <= 4096 or (np.diff(a, axis=1) < 0).any() or a.min() < col["min"] \
                        or a.max() > col["max"]:
                    raise ModelFormatError(f"array {key!r} must hold 2..4096 non-decreasing knots per step bucket, "
                                           f"inside the column's training range {col['min']}..{col['max']}")
                pair.append(a)
            maps[j] = tuple(pair)
        return centres, maps

    # ------------------------------------------------------- persistence
    def _get_state(self):
        arrays = {f"net.{k}": np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in self.net_.state_dict().items()}
        for j in self.atoms_:
            arrays[f"atoms{j}"], arrays[f"edges{j}"] = self.atoms_[j], self.edges_[j]
        for j in self.catoms_:
            arrays[f"change_atoms{j}"], arrays[f"change_edges{j}"] = self.catoms_[j], self.cedges_[j]
        for k in self.matoms_:
            arrays[f"meta_atoms{k}"], arrays[f"meta_edges{k}"] = self.matoms_[k], self.medges_[k]
        if self.length_table_ is not None:
            arrays["length_table"] = self.length_table_
        state = {"history": self.history_, "changes": sorted(self.catoms_), "scaled": self.scaled_}
        if self.calibration_ is not None:
            centres, maps = self.calibration_
            arrays["calibration_steps"] = centres
            for j, (src, dst) in maps.items():
                arrays[f"calibration_from{j}"], arrays[f"calibration_to{j}"] = src, dst
            state["calibrated"] = sorted(maps)
        return state, arrays

    def _set_state(self, state, arrays):
        import torch

        codec = self._codec
        history = state.get("history")
        # files of the release before per-sequence scaling hold no 'scaled': they learned raw values
        scaled = state.get("scaled", False)
        if not {"history", "changes"} <= set(state) <= {"history", "changes", "scaled", "calibrated"} or not (
                isinstance(history, list) and all(isinstance(h, dict) for h in history)):
            raise ModelFormatError("state must hold 'history', a list of epoch records, 'changes' and 'scaled' "
                                   "(and 'calibrated' when calibrated)")
        if not isinstance(scaled, bool) or self.scale_per_sequence not in (None, scaled):
            raise ModelFormatError(f"state 'scaled' must be true or false and agree with param scale_per_sequence "
                                   f"(state {scaled!r}, param {self.scale_per_sequence!r})")
        self.scaled_ = scaled
        if not self._share_ok():
            raise ModelFormatError(f"param scheduled_sampling={self.scheduled_sampling!r} must be a share in 0..1")
        if not isinstance(self.level_first, bool):
            raise ModelFormatError(f"param level_first={self.level_first!r} must be true or false")
        if not self._ordinal_ok():
            raise ModelFormatError(f"params ordinal_init={self.ordinal_init!r} and ordinal_columns="
                                   f"{self.ordinal_columns!r} must be a number in 0..100 and one of "
                                   f"{', '.join(self.ORDINAL_COLUMNS)}")
        if self.lengths not in self.LENGTHS or not self._prior_ok():
            raise ModelFormatError(f"params lengths={self.lengths!r} and length_prior={self.length_prior!r} must be "
                                   f"one of {', '.join(self.LENGTHS)} and a number in 0..1e6")
        calibrated = state.get("calibrated")
        if not self._calibration_ok() or (self.calibrate == "off") != (calibrated is None):
            raise ModelFormatError(f"params calibrate={self.calibrate!r} and calibration_window="
                                   f"{self.calibration_window!r} must be one of {', '.join(self.CALIBRATIONS)} and a "
                                   "whole number in -1..10000, and state 'calibrated' present exactly when "
                                   "calibrate is not 'off'")
        if calibrated is not None and not (
                isinstance(calibrated, list) and all(isinstance(j, int) and not isinstance(j, bool) for j in calibrated)
                and calibrated == sorted(set(calibrated)) and set(calibrated) <= set(range(self._n_numeric()))):
            raise ModelFormatError("state 'calibrated' must list numeric column numbers, increasing")
        changes = state["changes"]
        if not (isinstance(changes, list) and all(isinstance(j, int) and not isinstance(j, bool) for j in changes)
                and changes == sorted(set(changes)) and set(changes) <= set(range(self._n_numeric()))):
            raise ModelFormatError("state 'changes' must list numeric column numbers, increasing")
        for name, lo, hi in (("num_threads", 1, 256), ("hidden", 1, 4096), ("head_hidden", 1, 4096),
                             ("embedding_dim", 1, 1024), ("max_bins", 2, 100_000), ("fine_bins", 1, 10_000),
                             ("meta_bins", 2, 100_000), ("min_validation", 0, 1_000_000)):
            v = getattr(self, name)
            if v is not None and not lo <= v <= hi:
                raise ModelFormatError(f"param {name}={v} is outside {lo}..{hi}")
        numeric = range(self._n_numeric())
        self.atoms_, self.edges_, self.catoms_, self.cedges_ = {}, {}, {}, {}
        for j in numeric:
            self.atoms_[j], self.edges_[j] = _checked_tokens(arrays, "", j)
        for j in changes:
            self.catoms_[j], self.cedges_[j] = _checked_tokens(arrays, "change_", j)
        metas = range(2 * self._n_numeric() if scaled else 0)
        self.matoms_, self.medges_ = {}, {}
        for k in metas:
            self.matoms_[k], self.medges_[k] = _checked_tokens(arrays, "meta_", k)
        self.length_table_ = None
        if self.lengths == "drawn":
            table = take_array(arrays, "length_table", np.int64, (len(codec.context_table), len(codec.lengths)))
            if (table < 0).any() or not np.array_equal(table.sum(axis=1), codec.context_counts) \
                    or not np.array_equal(table.sum(axis=0), codec.length_counts):
                raise ModelFormatError("array 'length_table' must count sequences per context row and length, "
                                       "adding up to the codec's context and length counts")
            self.length_table_ = table
        self.calibration_ = self._checked_calibration(arrays, calibrated) if calibrated is not None else None
        self.history_ = history
        vocab, e, h, hh = self._vocab_sizes(), self.embedding_dim, self.hidden, self.head_hidden
        m = len(vocab)
        # shapes first: the parameters must not make us build a network larger than the saved one
        for key, shape in (("net.embed.weight", (sum(vocab), e)), ("net.w_state", (m, h, hh)),
                           ("net.w_prefix", (m, m * e, hh)), ("net.w2", (m, hh, max(vocab))),
                           *((("net.meta_embed.weight", (sum(self._meta_sizes()), e)),
                              ("net.meta_w_prefix", (2 * len(metas), 2 * len(metas) * e, hh)),
                              ("net.meta_w2", (2 * len(metas), hh, max(self._meta_sizes())))) if scaled else ())):
            if key not in arrays or arrays[key].shape != shape:
                raise ModelFormatError(f"array {key!r} is missing or not of shape {shape} (from the params and "
                                       "vocabularies)")
        net = self._build()
        fresh = net.state_dict()
        check_array_keys(arrays, [*(f"{p}{j}" for j in numeric for p in ("atoms", "edges")),
                                  *(f"{p}{j}" for j in changes for p in ("change_atoms", "change_edges")),
                                  *(f"{p}{k}" for k in metas for p in ("meta_atoms", "meta_edges")),
                                  *(["length_table"] if self.lengths == "drawn" else []),
                                  *(["calibration_steps"] if calibrated is not None else []),
                                  *(f"calibration_{p}{j}" for j in calibrated or () for p in ("from", "to")),
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
