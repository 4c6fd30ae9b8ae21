"""Shared wrapper putting an SDV single-table synthesizer behind the Generator protocol."""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from generators.codec import ModelColumn
from generators.errors import ModelFormatError
from generators.safe_state import StateReader, StateWriter
from generators.tabular.base import TableGenerator

_TABLE = "table"
# rebuilt from a fresh synthesizer at load time: unfitted default transformers (they hold Faker instances)
_SKIP = {("DataProcessor", "_transformers_by_sdtype")}


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed numpy's and torch's global generators (SDV draws from them) and restore them afterwards."""
    import torch

    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)


def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    for name in ("sdv", "rdt", "copulas", "ctgan", "SingleTableSynthesizer", "MultiTableSynthesizer"):
        logger = logging.getLogger(name)
        level = logger.level
        logger.setLevel(logging.ERROR)
        stack.callback(logger.setLevel, level)
    return stack


def _module_buffers(model) -> list:
    """(buffer, copy) for every buffer of the torch modules a CTGAN/TVAE model holds."""
    import torch

    modules = [v for v in vars(model).values() if isinstance(v, torch.nn.Module)]
    return [(b, b.detach().clone()) for m in modules for b in m.buffers()]


class SDVGenerator(TableGenerator):
    """Base for SDV synthesizers. The model frame goes to SDV with categorical codes as strings ("v0", "v1"...)."""

    synthesizer: ClassVar[str] = ""  # class name in sdv.single_table

    def _synthesizer_kwargs(self) -> dict[str, Any]:
        return {}

    def _metadata(self):
        from sdv.metadata import Metadata

        cols = {c.name: ({"sdtype": "categorical"} if c.type == "categorical" else {"sdtype": "numerical"})
                for c in self.model_columns_}
        return Metadata.load_from_dict({"tables": {_TABLE: {"columns": cols}}})

    def _new_synthesizer(self):
        import sdv.single_table

        cls = getattr(sdv.single_table, self.synthesizer)
        return cls(self._metadata(), enforce_min_max_values=True, enforce_rounding=False,
                   **self._synthesizer_kwargs())

    def _to_sdv(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for c in self.model_columns_:
            x = frame[c.name].to_numpy()
            out[c.name] = (pd.Series(x.astype(np.int64)).map(lambda v: f"v{v}").astype(object)
                           if c.type == "categorical" else x.astype(float))
        return pd.DataFrame(out)

    def _from_sdv(self, df: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for c in self.model_columns_:
            if c.type == "categorical":
                codes = df[c.name].astype(str)
                if not codes.str.fullmatch(r"v\d{1,9}").all():
                    raise ModelFormatError(f"SDV drew values of {c.name!r} that are not category codes")
                out[c.name] = codes.str[1:].astype(np.int64).to_numpy()
            else:
                out[c.name] = df[c.name].astype(float).to_numpy()
        return pd.DataFrame(out)

    def _fit(self, frame: pd.DataFrame, columns: list[ModelColumn]) -> None:
        self.model_columns_ = columns
        synth = self._new_synthesizer()
        with _quiet(), _seeded(self.seed):
            synth.fit({_TABLE: self._to_sdv(frame)})
        self.synthesizer_ = synth

    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        seed = int(rng.integers(0, 2**31 - 1))
        synth = self.synthesizer_
        with _quiet(), _seeded(seed):
            synth.reset_sampling()
            # SDV has no public per-call seed; this is what its own sampling uses under the hood
            synth._set_random_state(seed)
            buffers = _module_buffers(synth._model)
            try:
                df = synth.sample(n)
            finally:
                # sampling must leave the model as it was (a saved model must not depend on what was sampled
                # before): drop the advanced generators, restore the buffers (CTGAN samples with batch norm in
                # training mode, which updates its running statistics)
                synth._set_random_state(None)
                for buffer, saved in buffers:
                    buffer.copy_(saved)
        if isinstance(df, dict):  # SDV 2 returns {table name: frame}
            df = df[_TABLE]
        return self._from_sdv(df)

    def _get_state(self):
        writer = StateWriter(skip=_SKIP)
        state = writer.encode(self.synthesizer_)
        return {"synthesizer": state}, writer.arrays

    def _set_state(self, state, arrays):
        import sdv.single_table

        if list(state) != ["synthesizer"]:
            raise ModelFormatError("state must hold exactly the synthesizer")
        reader = StateReader(arrays, finite=True)
        synth = reader.decode(state["synthesizer"])
        if type(synth) is not getattr(sdv.single_table, self.synthesizer):
            raise ModelFormatError(f"saved state holds a {type(synth).__name__}, expected {self.synthesizer}")
        unused = sorted(set(arrays) - reader.used)
        if unused:
            raise ModelFormatError(f"the weights hold array {unused[0]!r}, which the saved state never uses")
        fresh = self._new_synthesizer()
        if synth.get_metadata().to_dict() != fresh.get_metadata().to_dict() or not synth._fitted:
            raise ModelFormatError("the saved synthesizer is unfitted or describes other columns than the model's")
        synth._data_processor._transformers_by_sdtype = fresh._data_processor._transformers_by_sdtype
        self.synthesizer_ = synth
        # SDV's internals are too many to check one by one: draw a few rows and check them instead
        try:
            rows = self._sample(4, np.random.default_rng(0))
        except Exception as exc:  # noqa: BLE001 - whatever a tampered synthesizer raises
            root = exc
            while root.__cause__ or root.__context__:  # SDV re-raises with a message about output files
                root = root.__cause__ or root.__context__
            raise ModelFormatError(f"the saved synthesizer cannot sample ({type(root).__name__}: "
                                   f"{str(root)[:200]})") from exc
        for c in self.model_columns_:
            x = rows[c.name].to_numpy()
            if (not np.isfinite(x).all() if c.type == "numeric"
                    else ((x < 0) | (x >= c.n_categories)).any()):
                raise ModelFormatError(f"the saved synthesizer draws impossible values for {c.name!r}")
