"""SDV's PARSynthesizer (deepecho's PAR) behind the sequence protocol, saved without pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd

from generators.base import take_array
from generators.errors import ModelFormatError
from generators.safe_state import StateReader, StateWriter
from generators.tabular._sdv import _quiet, _seeded
from generators.timeseries.base import EncodedSequences, SequenceGenerator

_TABLE = "sequences"
_KEY = "sid"
# left out of the saved graph: unfitted default transformers (they hold Faker instances) and the context
# synthesizer (contexts are drawn by our codec), both rebuilt or unused; the network is saved as its weights
_SKIP = {("DataProcessor", "_transformers_by_sdtype"), ("PARSynthesizer", "_context_synthesizer"),
         ("PARModel", "_model")}


class PARGenerator(SequenceGenerator):
    """SDV PARSynthesizer: a GRU over steps with a probabilistic output per column (the anchor users know).

    It learns the codec's encoded sequences as an SDV table: the context codes as categorical context columns,
    numerics as numerical columns (gaps as nulls), categoricals and the time-step tokens as categorical
    columns ("v0", "v1"...). Contexts are drawn by the codec (so conditions work as for every sequence model) and
    handed to PAR, which draws the steps and the lengths.
    """

    name = "par"

    def __init__(self, *, epochs: int = 128, sample_size: int = 1, window: int | None = None, seed: int = 0):
        self.epochs = epochs
        self.sample_size = sample_size
        self.window = window
        self.seed = seed

    # ------------------------------------------------------------ frames
    def _names(self) -> dict[str, list[str]]:
        codec = self._codec
        return {"context": [f"ctx{j}" for j in range(len(codec.context))],
                "numeric": [f"x{j}" for j in range(len(codec.numeric_columns))],
                "categorical": [f"c{j}" for j in range(len(codec.categorical_sizes))],
                "delta": ["dt"] if codec.n_delta_tokens > 1 else []}

    def _metadata(self):
        from sdv.metadata import Metadata

        names = self._names()
        cols = {_KEY: {"sdtype": "id"}}
        cols.update({c: {"sdtype": "categorical"} for c in names["context"] + names["categorical"] + names["delta"]})
        cols.update({c: {"sdtype": "numerical"} for c in names["numeric"]})
        return Metadata.load_from_dict({"tables": {_TABLE: {"columns": cols, "sequence_key": _KEY}}})

    def _new_synthesizer(self):
        from sdv.sequential import PARSynthesizer

        return PARSynthesizer(self._metadata(), context_columns=self._names()["context"], epochs=self.epochs,
                              sample_size=self.sample_size, enforce_min_max_values=False, enforce_rounding=False,
                              verbose=False, cuda=False)

    def _to_sdv(self, enc: EncodedSequences) -> pd.DataFrame:
        names = self._names()
        seq = np.repeat(np.arange(len(enc.lengths)), enc.lengths)
        out: dict[str, object] = {_KEY: seq}
        for j, c in enumerate(names["context"]):
            out[c] = [f"v{v}" for v in enc.context[seq, j]]
        for j, c in enumerate(names["numeric"]):
            out[c] = enc.numeric[:, j]
        for j, c in enumerate(names["categorical"]):
            out[c] = [f"v{v}" for v in enc.categorical[:, j]]
        if names["delta"]:
            out["dt"] = [f"v{v}" for v in enc.deltas]
        return pd.DataFrame(out)

    @staticmethod
    def _codes(series: pd.Series, size: int) -> np.ndarray:
        text = series.astype(str)
        ok = text.str.fullmatch(r"v\d{1,9}")
        codes = np.zeros(len(text), np.int64)
        codes[ok.to_numpy()] = text[ok].str[1:].astype(np.int64).to_numpy()
        return np.clip(codes, 0, size - 1)

    # --------------------------------------------------------------- fit
    def _fit(self, enc: EncodedSequences) -> None:
        synth = self._new_synthesizer()
        with _quiet(), _seeded(self.seed):
            synth.fit({_TABLE: self._to_sdv(enc)})
        self.synthesizer_ = synth

    # ------------------------------------------------------------ sample
    def _sample(self, n: int, rng: np.random.Generator, context: np.ndarray, length: int | None
                ) -> EncodedSequences:
        names, codec = self._names(), self._codec
        seed = int(rng.integers(0, 2**31 - 1))
        synth = self.synthesizer_
        ctx = pd.DataFrame({c: [f"v{v}" for v in context[:, j]] for j, c in enumerate(names["context"])},
                           index=range(n))
        with _quiet(), _seeded(seed):
            if names["context"]:
                ctx = synth._process_context_columns(ctx)
            ctx[_KEY] = np.arange(n)
            # SDV's public sampler draws contexts from its own context model; ours come from the codec
            df = synth._sample(ctx, length)
        df = df.reset_index(drop=True)
        sid = df[_KEY].to_numpy(dtype=np.int64)
        order = np.argsort(sid, kind="stable")
        df = df.iloc[order].reset_index(drop=True)
        lengths = np.bincount(sid, minlength=n).astype(np.int64)
        if (lengths == 0).any():
            raise AssertionError("PAR drew an empty sequence")
        horizon = length if length is not None else codec.max_length
        pos = np.arange(len(df)) - np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)
        keep = pos < horizon
        df, lengths = df[keep].reset_index(drop=True), np.minimum(lengths, horizon)
        numeric = np.stack([pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
                            for c in names["numeric"]], axis=1) if names["numeric"] else np.zeros((len(df), 0))
        categorical = np.stack([self._codes(df[c], size) for c, size in zip(names["categorical"],
                                                                            codec.categorical_sizes)], axis=1) \
            if names["categorical"] else np.zeros((len(df), 0), np.int64)
        deltas = self._codes(df["dt"], codec.n_delta_tokens) if names["delta"] else np.zeros(len(df), np.int64)
        return EncodedSequences(lengths=lengths, numeric=np.ascontiguousarray(numeric),
                                categorical=np.ascontiguousarray(categorical), deltas=deltas,
                                context=np.ascontiguousarray(context))

    # ------------------------------------------------------- persistence
    def _get_state(self):
        writer = StateWriter(skip=_SKIP)
        state = writer.encode(self.synthesizer_)
        model = self.synthesizer_._model
        arrays = dict(writer.arrays)
        for k, v in model._model.state_dict().items():
            arrays[f"par_net.{k}"] = np.ascontiguousarray(v.detach().cpu().numpy())
        return {"synthesizer": state, "net": [int(model._data_dims), int(model._ctx_dims)]}, arrays

    def _set_state(self, state, arrays):
        import torch
        from deepecho.models.par import PARModel, PARNet
        from sdv.sequential import PARSynthesizer

        if set(state) != {"synthesizer", "net"}:
            raise ModelFormatError("state must hold exactly the synthesizer and the network sizes")
        dims = state["net"]
        if not (isinstance(dims, list) and len(dims) == 2 and all(isinstance(d, int) and not isinstance(d, bool)
                                                                 and 0 <= d <= 100_000 for d in dims)):
            raise ModelFormatError("state 'net' must be two sizes (data, context)")
        net_arrays = {k: v for k, v in arrays.items() if k.startswith("par_net.")}
        reader = StateReader({k: v for k, v in arrays.items() if k not in net_arrays}, finite=True)
        synth = reader.decode(state["synthesizer"])
        if type(synth) is not PARSynthesizer or type(getattr(synth, "_model", None)) is not PARModel:
            raise ModelFormatError(f"saved state holds a {type(synth).__name__}, expected a fitted PARSynthesizer")
        unused = sorted(set(arrays) - reader.used - set(net_arrays))
        if unused:
            raise ModelFormatError(f"the weights hold array {unused[0]!r}, which the saved state never uses")
        fresh = self._new_synthesizer()
        if synth.get_metadata().to_dict() != fresh.get_metadata().to_dict() or not synth._fitted \
                or synth.context_columns != fresh.context_columns:
            raise ModelFormatError("the saved synthesizer is unfitted or describes other columns than the model's")
        if [synth._model._data_dims, synth._model._ctx_dims] != dims:
            raise ModelFormatError("the network sizes disagree with the saved PAR model")
        synth._data_processor._transformers_by_sdtype = fresh._data_processor._transformers_by_sdtype
        synth._context_synthesizer = None
        with torch.random.fork_rng(devices=[]):
            net = PARNet(dims[0], dims[1])
        expected = net.state_dict()
        if set(net_arrays) != {f"par_net.{k}" for k in expected}:
            raise ModelFormatError("the PAR network weights are not exactly the ones its sizes call for")
        net.load_state_dict({k: torch.from_numpy(take_array(net_arrays, f"par_net.{k}", t.numpy().dtype,
                                                            tuple(t.shape)).copy()) for k, t in expected.items()})
        net.eval()
        synth._model._model = net
        self.synthesizer_ = synth
        # SDV's internals are too many to check one by one: draw a few sequences and check them instead
        codec = self._codec
        try:
            enc = self._sample(2, np.random.default_rng(0), codec.sample_context(2, np.random.default_rng(0), {}),
                               None)
            enc.check(codec)
        except Exception as exc:  # noqa: BLE001 - whatever a tampered synthesizer raises
            raise ModelFormatError(f"the saved PAR model cannot sample ({type(exc).__name__}: "
                                   f"{str(exc)[:200]})") from exc
