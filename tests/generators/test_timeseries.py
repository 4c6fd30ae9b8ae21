"""The timeseries kind's own promises (the shared ones are in test_kind_contract.py), on every sequence model."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from generators.base import MODEL_FILE, WEIGHTS_FILE, Generator
from generators.data import SequenceData
from generators.errors import ConditionError, InvalidDataError, ModelFormatError
from generators.registry import REGISTRY, list_generators, make_generator
from tests.generators.conftest import make_panel

SEQUENCE_MODELS = list_generators("timeseries")
# the learned-distribution promises (lengths, gaps, conditions moving the lengths) are our models' quality floor;
# SDV's PAR is the anchor they are benchmarked against, held to the structural promises only
OWN_MODELS = [name for name in SEQUENCE_MODELS if name != "par"]
# enough training for the learned-distribution tests, still a few seconds per model
TRAINED = {"sequence_ar": {"epochs": 25, "min_updates": 250}, "sequence_vae": {"epochs": 25, "min_updates": 100}}


def _model(name: str, **extra):
    return make_generator(name, **{**REGISTRY[name].test_params, **TRAINED.get(name, {"epochs": 25}), **extra})


def two_regime_panel(n: int = 40, seed: int = 0, gap_rate: float = 0.2) -> SequenceData:
    """Integer ids and steps; `kind` short sequences (4-5 steps) and long ones (16-18), gaps in `level`."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n):
        short = e % 2 == 0
        length = int(rng.integers(4, 6) if short else rng.integers(16, 19))
        for t in range(length):
            rows.append({"id": 100 + e, "step": 10 + 2 * t, "kind": "short" if short else "long",
                         "level": np.nan if rng.random() < gap_rate else float(rng.normal(5 if short else 50, 1))})
    return SequenceData(pd.DataFrame(rows), time="step", entity="id")


@pytest.fixture(scope="module", params=OWN_MODELS)
def regimes(request):
    data = two_regime_panel()
    return _model(request.param).fit(data), data


def test_entity_ids_are_fresh_and_types_kept(regimes):
    gen, data = regimes
    s = gen.sample(30, seed=0)
    assert s.entity == "id" and s.time == "step"
    assert not set(s.frame["id"]) & set(data.frame["id"])
    assert s.frame["id"].nunique() == 30
    assert list(s.frame.columns) == list(data.frame.columns)
    assert (s.frame.dtypes == data.frame.dtypes).all()
    # integer steps on the learned grid: even numbers, 2 apart within a sequence
    assert (s.frame["step"] % 2 == 0).all()
    assert (s.frame.groupby("id")["step"].diff().dropna() == 2).all()


def test_lengths_are_learned(regimes):
    gen, data = regimes
    s = gen.sample(200, seed=1)
    lengths = s.frame.groupby("id").size()
    short = (lengths <= 8).mean()
    assert 0.3 <= short <= 0.7
    assert lengths.max() <= data.frame.groupby("id").size().max()
    # the context says which regime: conditioning on it moves the lengths
    long_only = gen.sample(60, seed=2, conditions={"kind": "long"}).frame
    assert (long_only["kind"] == "long").all()
    assert long_only.groupby("id").size().median() >= 12


def test_gaps_are_reproduced_at_about_the_real_rate(regimes):
    gen, data = regimes
    real = data.frame["level"].isna().mean()
    synth = gen.sample(200, seed=3).frame["level"].isna().mean()
    assert abs(synth - real) < 0.08, (real, synth)


def test_fixed_length_and_context_constant_within_entity(regimes):
    gen, _ = regimes
    s = gen.sample(10, seed=4, length=7).frame
    assert (s.groupby("id").size() == 7).all()
    assert (s.groupby("id")["kind"].nunique() == 1).all()


def test_conditions_on_unseen_values_or_non_context_columns_are_refused(regimes):
    gen, _ = regimes
    with pytest.raises(ConditionError, match="never held"):
        gen.sample(3, conditions={"kind": "medium"})
    with pytest.raises(ConditionError, match="context"):
        gen.sample(3, conditions={"level": 5.0})


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_dates_stay_dates_and_datetimes_stay_on_the_day_grid(name):
    base = make_panel(16, seed=1)
    frame = base.frame.copy()
    frame["day"] = frame["day"].dt.date
    gen = _model(name, epochs=2).fit(SequenceData(frame, time="day", entity="store"))
    s = gen.sample(5, seed=0).frame
    assert all(type(v) is dt.date for v in s["day"])
    gen = _model(name, epochs=2).fit(base)
    s = gen.sample(5, seed=0).frame
    assert not set(s["store"]) & set(base.frame["store"])  # fresh text ids
    assert (s.groupby("store")["region"].nunique() == 1).all()
    assert s["day"].dtype == base.frame["day"].dtype
    assert (s["day"] == s["day"].dt.normalize()).all()


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_a_single_long_series_is_sampled_as_new_segments(name, tmp_path):
    t = np.arange(400)
    frame = pd.DataFrame({"t": t, "signal": np.sin(t / 5.0) + 0.05 * np.random.default_rng(0).normal(size=400),
                          "beat": np.where(t % 40 < 3, "peak", "flat")})
    gen = _model(name, window=40).fit(SequenceData(frame, time="t"))
    s = gen.sample(4, seed=0)
    assert isinstance(s, SequenceData) and s.entity == "segment"
    assert list(s.frame.columns) == ["segment", "t", "signal", "beat"]
    assert (s.frame.groupby("segment").size() == 40).all() and s.frame["segment"].nunique() == 4
    assert (s.frame.groupby("segment")["t"].diff().dropna() == 1).all()
    longer = gen.sample(2, seed=0, length=90).frame
    assert (longer.groupby("segment").size() == 90).all()
    gen.save(tmp_path / "m")
    again = Generator.load(tmp_path / "m").sample(4, seed=0)
    assert again.frame.equals(s.frame)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_tampered_model_files_are_refused(name, tmp_path):
    gen = _model(name, epochs=1).fit(make_panel(12))
    gen.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    for path, value in ((("codec", "context_table", "codes"), [99] * len(doc["codec"]["context_table"]["codes"])),
                        (("codec", "time", "dtype"), "object"),
                        (("codec", "values", 0, "kind"), "image"),
                        (("codec", "starts", "probs"), [1.5] * len(doc["codec"]["starts"]["probs"])),
                        (("codec", "entity", "prefix"), 7)):
        bad = json.loads(json.dumps(doc))
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(bad))
        with pytest.raises(ModelFormatError):
            Generator.load(tmp_path / "m")
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(doc))
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(tmp_path / "m" / WEIGHTS_FILE))
    floats = sorted(k for k, v in arrays.items() if v.dtype.kind == "f" and v.size > 1)
    for change in (lambda a: np.full_like(a, np.nan), lambda a: a[:-1], lambda a: a.astype(np.float16)):
        bad = dict(arrays)
        bad[floats[-1]] = np.ascontiguousarray(change(arrays[floats[-1]]))
        save_file(bad, str(tmp_path / "m" / WEIGHTS_FILE))
        with pytest.raises(ModelFormatError):
            Generator.load(tmp_path / "m")
    save_file({**arrays, "extra": np.zeros(2)}, str(tmp_path / "m" / WEIGHTS_FILE))
    with pytest.raises(ModelFormatError):
        Generator.load(tmp_path / "m")


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_bad_sequences_are_refused_in_one_line(name):
    frame = make_panel(8).frame
    cases = {
        "repeat": pd.concat([frame, frame.iloc[:1]], ignore_index=True),
        "single step": frame.groupby("store").head(1),
        "no values at all": frame.assign(sales=np.nan),
    }
    for what, bad in cases.items():
        with pytest.raises(InvalidDataError, match=what) as info:
            make_generator(name, **REGISTRY[name].test_params).fit(SequenceData(bad, time="day", entity="store"))
        assert "\n" not in str(info.value)
    with pytest.raises(InvalidDataError, match="not in the frame"):
        make_generator(name).fit(SequenceData(frame, time="when", entity="store"))
    with pytest.raises(InvalidDataError, match="changes within an entity"):
        make_generator(name).fit(SequenceData(frame, time="day", entity="store", context=["promo"]))
    assert frame.equals(make_panel(8).frame)


def test_a_numeric_context_with_many_values_is_binned_and_conditions_on_a_number():
    rng = np.random.default_rng(1)
    rows = [{"id": e, "t": t, "income": 1000.0 + 10 * e, "x": float(rng.normal())}
            for e in range(40) for t in range(int(rng.integers(3, 6)))]
    gen = _model("sequence_ar", epochs=1).fit(SequenceData(pd.DataFrame(rows), time="t", entity="id"))
    assert gen.codec_.context[0]["kind"] == "binned"
    s = gen.sample(5, seed=0, conditions={"income": "1234.5"}).frame  # a number typed on a command line
    assert (s["income"] == 1234.5).all()
    free = gen.sample(50, seed=0).frame.groupby("id")["income"].first()
    assert free.between(1000, 1390).all() and free.nunique() > 10  # drawn within bins, not copied
    with pytest.raises(ConditionError, match="between"):
        gen.sample(2, conditions={"income": 5.0})


def test_the_last_step_of_a_full_length_sequence_keeps_its_drawn_value():
    """Series that climb by exactly 1 per step, all of the longest length: every sampled step, the last included,
    climbs by 1 (the stop step after it draws nothing that could overwrite it)."""
    rows = [{"id": e, "step": t, "level": float(e % 7 + t)} for e in range(40) for t in range(8)]
    data = SequenceData(pd.DataFrame(rows), time="step", entity="id")
    sample = _model("sequence_ar").fit(data).sample(60, seed=1).frame
    steps = sample.sort_values(["id", "step"]).groupby("id")["level"].apply(lambda s: np.diff(s.to_numpy()))
    last = np.array([d[-1] for d in steps])
    inner = np.concatenate([d[:-1] for d in steps])
    assert np.mean(np.isclose(inner, 1.0, atol=0.05)) > 0.9
    assert np.mean(np.isclose(last, 1.0, atol=0.05)) > 0.9


def _levels_panel(n: int = 60, seed: int = 0) -> SequenceData:
    """Each entity its own level (5 for `low` speakers, 50 for `high`, spread 1) around which it wiggles."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n):
        base = (5.0 if e % 2 else 50.0) + rng.normal(0, 1)
        rows += [{"id": e, "step": t, "who": "low" if e % 2 else "high", "x": base + float(rng.normal(0, 0.5))}
                 for t in range(int(rng.integers(6, 10)))]
    return SequenceData(pd.DataFrame(rows), time="step", entity="id")


def test_per_sequence_scaling_draws_a_level_per_sequence_and_saves_bit_identical(tmp_path):
    data = _levels_panel()
    gen = _model("sequence_ar", scale_per_sequence=None).fit(data)
    assert gen.scaled_  # the levels carry nearly all the variance: scaled by the auto rule
    s = gen.sample(80, seed=0).frame
    means = s.groupby("id")["x"].mean()
    who = s.groupby("id")["who"].first()
    assert means[who == "high"].median() > means[who == "low"].median() + 30  # the context sets the level
    assert s["x"].between(data.frame["x"].min(), data.frame["x"].max()).all()
    assert s.equals(gen.sample(80, seed=0).frame)
    gen.save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m")
    assert loaded.scaled_ and loaded.sample(80, seed=0).frame.equals(s)
    doc = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    for bad in ("yes", False):  # not a bool; disagrees with the file's own params (which said scale)
        changed = {**doc, "params": {**doc["params"], "scale_per_sequence": True}, "state": {**doc["state"],
                                                                                             "scaled": bad}}
        (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(changed))
        with pytest.raises(ModelFormatError, match="scaled"):
            Generator.load(tmp_path / "m")


def _load_as_previous_release(gen, folder, params, state=()):
    """`gen` saved, then loaded from a file written as a release without `params` (and `state` keys) would have."""
    gen.save(folder)
    doc = json.loads((folder / MODEL_FILE).read_text())
    for name in params:
        del doc["params"][name]
    for name in state:
        del doc["state"][name]
    (folder / MODEL_FILE).write_text(json.dumps(doc))
    return Generator.load(folder)


def test_a_file_of_the_release_before_per_sequence_scaling_loads_and_samples_the_same(tmp_path):
    gen = _model("sequence_ar", epochs=2, min_updates=10).fit(_levels_panel(30))
    assert gen.scaled_ is False  # the default learns raw values, as the previous release did
    loaded = _load_as_previous_release(gen, tmp_path / "m", ("scale_per_sequence", "meta_bins", "input_noise"),
                                       ("scaled",))
    assert loaded.scale_per_sequence is False and loaded.scaled_ is False
    assert loaded.sample(20, seed=3).frame.equals(gen.sample(20, seed=3).frame)


def _climbing_panel(n: int = 40, seed: int = 0) -> SequenceData:
    """Smooth series that all start near 0 and climb by about 1 a step for 12 steps (drawn as changes)."""
    rng = np.random.default_rng(seed)
    rows = [{"id": e, "step": t, "x": float(start + t + rng.normal(0, 0.05))}
            for e, start in enumerate(rng.uniform(0, 0.5, n)) for t in range(12)]
    return SequenceData(pd.DataFrame(rows), time="step", entity="id")


def test_a_change_coded_column_starts_with_a_level_and_then_changes():
    """level_first: the first value is a drawn level (near 0 here), never a change added to the mid-range (6)."""
    data = _climbing_panel()
    gen = _model("sequence_ar", calibrate="off").fit(data)  # drawn values as they are: calibration would mask both
    assert gen.level_first and 0 in gen.catoms_  # the column is drawn as changes
    s = gen.sample(200, seed=0).frame.sort_values(["id", "step"])
    first = s.groupby("id")["x"].first()
    assert first.max() < 1.5
    old = _model("sequence_ar", level_first=False, calibrate="off").fit(data)
    assert old.sample(200, seed=0).frame.groupby("id")["x"].first().max() > 3  # what it fixes


def test_a_file_of_the_release_before_level_first_loads_and_samples_the_same(tmp_path):
    gen = _model("sequence_ar", epochs=3, min_updates=10, level_first=False).fit(_climbing_panel())
    loaded = _load_as_previous_release(gen, tmp_path / "m", ("level_first", "min_validation", "scheduled_sampling",
                                                             "ordinal_init", "ordinal_columns"))
    assert loaded.level_first is False and loaded.min_validation == 0 and loaded.scheduled_sampling == 0.0
    assert loaded.ordinal_init == 0.0 and loaded.ordinal_columns == "all"
    assert loaded.sample(30, seed=3).frame.equals(gen.sample(30, seed=3).frame)


def test_input_noise_is_seeded_and_changes_the_fit():
    data = _levels_panel(30)
    noisy = [_model("sequence_ar", epochs=3, min_updates=10, input_noise=0.3).fit(data).sample(10, seed=0).frame
             for _ in range(2)]
    plain = _model("sequence_ar", epochs=3, min_updates=10).fit(data).sample(10, seed=0).frame
    assert noisy[0].equals(noisy[1]) and not noisy[0].equals(plain)


def test_scheduled_sampling_is_seeded_changes_the_fit_and_keeps_levels_first():
    data = _climbing_panel()
    runs = [_model("sequence_ar", epochs=3, min_updates=10, scheduled_sampling=0.5).fit(data) for _ in range(2)]
    plain = _model("sequence_ar", epochs=3, min_updates=10).fit(data)
    s = runs[0].sample(30, seed=0).frame
    assert 0 in runs[0].catoms_ and s.equals(runs[1].sample(30, seed=0).frame)
    assert not s.equals(plain.sample(30, seed=0).frame)
    assert runs[0].history_ != plain.history_
    with pytest.raises(ValueError, match="scheduled_sampling"):
        _model("sequence_ar", scheduled_sampling=1.5).fit(data)


def test_scheduled_history_draws_at_the_share_of_steps_and_moves_the_reached_level():
    import torch

    data = _climbing_panel()
    gen = _model("sequence_ar", epochs=2, min_updates=10).fit(data)
    enc = gen._codec.encode(data)
    tokens = torch.from_numpy(gen._tokenize(enc))
    lengths = torch.from_numpy(enc.lengths)
    context = torch.from_numpy(np.ascontiguousarray(enc.context))
    levels = torch.from_numpy(gen._true_levels(enc))
    coarse, fine, level = gen._layout()[0][0]
    for share, lo, hi in ((0.0, 0.0, 0.0), (1.0, 0.3, 1.0)):
        gen.scheduled_sampling = share
        history = gen._scheduled_history(gen.net_, tokens, lengths, context, None, levels, torch.Generator())
        assert torch.equal(history[..., 0], tokens[..., 0])  # the stop column stays true
        steps = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
        moved = (history[..., coarse] != tokens[..., coarse])[steps].float().mean().item()
        assert lo <= moved <= hi
        # where the drawn change equals the true one the reached level is the true one
        same = (history[..., coarse] == tokens[..., coarse]) & (history[..., fine] == tokens[..., fine]) & steps
        assert torch.equal(history[..., level][same], tokens[..., level][same])
        nl, _ = gen._token_counts(0)
        assert (history[..., level][steps] < nl).all()  # no gaps in the data: every reached level is a level


def test_a_scaled_model_with_tampered_scale_arrays_is_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    gen = _model("sequence_ar", scale_per_sequence=True, epochs=2, min_updates=10).fit(_levels_panel(30))
    gen.save(tmp_path / "m")
    weights = tmp_path / "m" / WEIGHTS_FILE
    arrays = load_file(str(weights))
    edges = next(k for k in arrays if k.startswith("meta_edges") and arrays[k].size >= 2)
    changes = [({**arrays, edges: np.full_like(arrays[edges], np.nan)}, "NaN"),
               ({**arrays, edges: arrays[edges][::-1].copy()}, "increasing"),
               ({**arrays, "net.meta_w2": arrays["net.meta_w2"][..., :-1].copy()}, "net.meta_w2"),
               ({k: v for k, v in arrays.items() if k != "net.meta_embed.weight"}, "net.meta_embed.weight"),
               ({k: v for k, v in arrays.items() if not k.startswith("meta_")}, "meta_")]
    for bad, message in changes:
        save_file(bad, str(weights))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")
    save_file(arrays, str(weights))
    assert Generator.load(tmp_path / "m").sample(10, seed=2).frame.equals(gen.sample(10, seed=2).frame)


def _drawn(**extra):
    """sequence_ar drawing lengths; lengths do not depend on the net, so a short fit is enough."""
    return _model("sequence_ar", epochs=2, min_updates=10, lengths="drawn", **extra).fit(two_regime_panel())


def test_drawn_lengths_follow_the_training_lengths_per_context_value():
    data = two_regime_panel()
    real = data.frame.groupby("id").agg(kind=("kind", "first"), n=("step", "size"))
    pooled = real["n"].value_counts(normalize=True)
    gen = _drawn()
    assert gen._codec.context_names == ["kind"]
    s = gen.sample(600, seed=0).frame
    synth = s.groupby("id").agg(kind=("kind", "first"), n=("step", "size"))
    for kind in ("short", "long"):
        counts = real.loc[real["kind"] == kind, "n"].value_counts()
        expected = (counts.reindex(pooled.index, fill_value=0) + gen.length_prior * pooled)
        expected /= expected.sum()
        got = synth.loc[synth["kind"] == kind, "n"].value_counts(normalize=True).reindex(pooled.index, fill_value=0)
        assert set(synth.loc[synth["kind"] == kind, "n"]) <= set(pooled.index)
        assert 0.5 * (got - expected).abs().sum() < 0.1, (kind, got, expected)
    exact = _drawn(length_prior=0).sample(200, seed=0).frame.groupby("id").agg(kind=("kind", "first"),
                                                                                n=("step", "size"))
    assert set(exact.loc[exact["kind"] == "short", "n"]) <= {4, 5}
    assert set(exact.loc[exact["kind"] == "long", "n"]) <= {16, 17, 18}
    assert s.equals(gen.sample(600, seed=0).frame)


def test_drawn_lengths_respect_a_condition(tmp_path):
    gen = _drawn(length_prior=0)
    for kind, allowed in (("short", {4, 5}), ("long", {16, 17, 18})):
        s = gen.sample(60, seed=1, conditions={"kind": kind}).frame
        assert (s["kind"] == kind).all() and set(s.groupby("id").size()) <= allowed
    gen.save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m")
    assert loaded.sample(40, seed=2).frame.equals(gen.sample(40, seed=2).frame)


def test_a_file_of_the_release_before_lengths_loads_and_samples_the_same(tmp_path):
    gen = _model("sequence_ar", epochs=3, min_updates=10).fit(two_regime_panel())
    loaded = _load_as_previous_release(gen, tmp_path / "m", ("lengths", "length_prior"))
    assert loaded.lengths == "learned"
    assert loaded.sample(30, seed=3).frame.equals(gen.sample(30, seed=3).frame)


def test_tampered_length_tables_and_length_params_are_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    gen = _drawn()
    gen.save(tmp_path / "m")
    weights, model = tmp_path / "m" / WEIGHTS_FILE, tmp_path / "m" / MODEL_FILE
    arrays, doc = load_file(str(weights)), model.read_text()
    table = arrays["length_table"]
    moved = table.copy()
    full, empty = int(table[0].argmax()), int(table[0].argmin())
    moved[0, full], moved[0, empty] = moved[0, full] - 1, moved[0, empty] + 1  # same row sums, other lengths
    negative = table.copy()
    negative[0, 0], negative[0, 1] = -1, negative[0, 1] + negative[0, 0] + 1
    changes = [({**arrays, "length_table": moved}, "length_table"),
               ({**arrays, "length_table": negative}, "length_table"),
               ({**arrays, "length_table": table.astype(np.float64)}, "length_table"),
               ({**arrays, "length_table": table[:, :-1].copy()}, "length_table"),
               ({k: v for k, v in arrays.items() if k != "length_table"}, "length_table")]
    for bad, message in changes:
        save_file(bad, str(weights))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")
    save_file(arrays, str(weights))
    for key, value in (("lengths", "sometimes"), ("length_prior", -1.0), ("length_prior", True)):
        d = json.loads(doc)
        d["params"][key] = value
        model.write_text(json.dumps(d))
        with pytest.raises(ModelFormatError, match="length"):
            Generator.load(tmp_path / "m")
    model.write_text(doc)
    assert Generator.load(tmp_path / "m").sample(10, seed=2).frame.equals(gen.sample(10, seed=2).frame)
    with pytest.raises(ValueError, match="lengths"):
        _model("sequence_ar", lengths="sometimes").fit(two_regime_panel())


def test_saved_level_first_and_min_validation_out_of_range_are_refused(tmp_path):
    gen = _model("sequence_ar", epochs=2, min_updates=5).fit(_climbing_panel())
    gen.save(tmp_path / "m")
    model = tmp_path / "m" / MODEL_FILE
    doc = model.read_text()
    for key, value in (("min_validation", -5), ("min_validation", 10**7), ("level_first", "yes"), ("level_first", 1),
                       ("ordinal_init", -1), ("ordinal_init", 101), ("ordinal_init", True), ("ordinal_init", "2"),
                       ("ordinal_columns", "some"), ("ordinal_columns", 1)):
        d = json.loads(doc)
        d["params"][key] = value
        model.write_text(json.dumps(d))
        with pytest.raises(ModelFormatError, match=key):
            Generator.load(tmp_path / "m")
    model.write_text(doc)
    assert Generator.load(tmp_path / "m").sample(5, seed=1).frame.equals(gen.sample(5, seed=1).frame)


def _rough_panel(n: int = 16, steps: int = 50, phi: float = 0.6, seed: int = 0) -> SequenceData:
    """A few AR(1) series (lag-1 autocorrelation about 0.5): steps as large as the spread, so drawn as levels."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n):
        x = 0.0
        for t in range(steps):
            x = phi * x + rng.normal()
            rows.append({"id": e, "step": t, "x": x})
    return SequenceData(pd.DataFrame(rows), time="step", entity="id")


def _lag1(frame: pd.DataFrame) -> float:
    out = []
    for _, g in frame.groupby("id"):
        x = g.sort_values("step")["x"].to_numpy()
        x = x - x.mean()
        out.append((x[1:] * x[:-1]).sum() / (x * x).sum())
    return float(np.mean(out))


def test_ordinal_init_keeps_the_autocorrelation_of_a_few_rough_series_and_is_seeded(tmp_path):
    """Random token embeddings: early stopping keeps a net whose steps ignore the last ones (BasicMotions' case)."""
    data = _rough_panel()
    real = _lag1(data.frame)
    params = {"min_validation": 4, "epochs": 60, "min_updates": 0, "hidden": 32, "head_hidden": 32, "max_bins": 16,
              "calibrate": "off"}
    plain = _model("sequence_ar", **params, ordinal_init=0.0).fit(data)
    ordinal = [_model("sequence_ar", **params, ordinal_init=2.0).fit(data) for _ in range(2)]
    assert not plain.catoms_ and not ordinal[0].catoms_  # level-coded, as BasicMotions' columns are
    assert _lag1(plain.sample(40, seed=0).frame) < 0.2
    sample = ordinal[0].sample(40, seed=0).frame
    assert abs(_lag1(sample) - real) < 0.15
    assert sample.equals(ordinal[1].sample(40, seed=0).frame)
    ordinal[0].save(tmp_path / "m")
    assert Generator.load(tmp_path / "m").sample(40, seed=0).frame.equals(sample)
    with pytest.raises(ValueError, match="ordinal_init"):
        _model("sequence_ar", ordinal_init=-1.0).fit(data)
    with pytest.raises(ValueError, match="ordinal_columns"):
        _model("sequence_ar", ordinal_init=2.0, ordinal_columns="some").fit(data)


def test_ordinal_columns_rough_starts_only_the_columns_drawn_as_levels():
    """'rough': a level-coded panel starts as with 'all', a change-coded one as with the random start."""
    rough, smooth = _rough_panel(), _climbing_panel()
    params = {"min_validation": 4, "epochs": 10, "min_updates": 0, "calibrate": "off"}
    for data, same_as in ((rough, {"ordinal_init": 2.0, "ordinal_columns": "all"}), (smooth, {"ordinal_init": 0.0})):
        picked = _model("sequence_ar", **params, ordinal_init=2.0, ordinal_columns="rough").fit(data)
        assert picked.sample(20, seed=1).frame.equals(_model("sequence_ar", **params, **same_as).fit(data)
                                                      .sample(20, seed=1).frame)
    assert not _model("sequence_ar", **params, ordinal_init=2.0, ordinal_columns="all").fit(smooth).sample(
        20, seed=1).frame.equals(_model("sequence_ar", **params, ordinal_init=0.0).fit(smooth).sample(20, seed=1).frame)  # 'all' does start them


@pytest.mark.parametrize("extra", [{}, {"scale_per_sequence": True, "level_first": False}])
def test_the_training_loss_is_the_full_forward_loss_where_the_mask_reads(extra):
    """`_loss` (heads only at real steps and predicted columns, no vocabulary padding) against the loss of the
    full (B, T, m, vmax) forward + `_restrict` + `_mask`, in float64: same value, same gradients."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    rows = [{"id": e, "step": t, "x": float(start + t + rng.normal(0, 0.05)),
             "y": np.nan if rng.random() < 0.2 else float(rng.normal()), "flag": "ab"[int(rng.random() < 0.5)],
             "grp": "lh"[e % 2]}
            for e, start in enumerate(rng.uniform(0, 0.5, 30)) for t in range(int(rng.integers(5, 13)))]
    data = SequenceData(pd.DataFrame(rows), time="step", entity="id")
    gen = _model("sequence_ar", epochs=2, min_updates=10, **extra).fit(data)
    enc = gen._codec.encode(data)
    if gen.scaled_:
        meta, z = gen._scaled(enc.numeric, enc.lengths)
        enc = dataclasses.replace(enc, numeric=z)
    tokens, lengths = torch.from_numpy(gen._tokenize(enc)), torch.from_numpy(enc.lengths)
    context = torch.from_numpy(np.ascontiguousarray(enc.context))
    meta = torch.from_numpy(gen._meta_tokens(meta)) if gen.scaled_ else None
    assert len(set(lengths.tolist())) > 1 and 2 in gen.net_.vocab_sizes[1:] and 1 in gen.net_.vocab_sizes
    assert bool(gen.level_first and gen.catoms_) != gen.scaled_  # level_first bans in the first case
    net = gen.net_.double().train()
    named = list(net.named_parameters())
    fast = gen._loss(net, tokens, lengths, context, meta)
    logits = gen._restrict(net(tokens, context, meta), tokens, lengths)
    mask = gen._mask(tokens, lengths, gen._input_only())
    full = F.cross_entropy(logits[mask], tokens[mask], reduction="sum")
    if meta is not None:
        full = full + F.cross_entropy(net.meta_logits(net.context_vector(context), meta).flatten(0, 1),
                                      meta.flatten(), reduction="sum")
    full = full / len(tokens)
    assert torch.isfinite(fast) and abs(fast.item() - full.item()) < 1e-10 * abs(full.item())
    for (name, _), a, b in zip(named, torch.autograd.grad(fast, [p for _, p in named], allow_unused=True),
                               torch.autograd.grad(full, [p for _, p in named], allow_unused=True)):
        a = torch.zeros_like(b) if a is None else a
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), name
    # the sampler's per-column heads (only the columns before j read) are the forward's heads
    states, _ = net.step_inputs(tokens, context, meta)
    full_logits = net(tokens, context, meta)
    for j, v in enumerate(net.vocab_sizes):
        assert torch.allclose(net.column_logits(states[:, 3], tokens[:, 3], j), full_logits[:, 3, j, :v], atol=1e-12)


def _drifting_panel(n: int = 60, seed: int = 0) -> SequenceData:
    """Persistent series around 0 (x, 10% gaps) and an integral one that follows it (k, drawn as changes)."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n):
        x = rng.normal(0, 1)
        for t in range(20):
            x = 0.95 * x + rng.normal(0, 0.3)
            rows.append({"id": e, "step": t, "x": x if rng.random() > 0.1 else np.nan, "k": int(round(4 * x)) + 10})
    return SequenceData(pd.DataFrame(rows), time="step", entity="id")


def _decile_tvd(real: np.ndarray, synth: np.ndarray) -> float:
    from quality.columns import decile_codes

    (r, s), k = decile_codes(real, [synth])
    return float(0.5 * np.abs(np.bincount(r, minlength=k) / len(r) - np.bincount(s, minlength=k) / len(s)).sum())


BARE = {"ordinal_init": 0.0, "min_validation": 0}  # the training these calibration tests were written against


def _calibrated(calibrate: str = "pooled", **extra):
    """A barely trained sequence_ar (its marginals are off) with the calibration on."""
    return _model("sequence_ar", epochs=2, min_updates=10, calibrate=calibrate, **BARE, **extra).fit(_drifting_panel())


def test_the_calibration_brings_the_pooled_marginal_to_the_training_one_and_keeps_the_rest():
    data = _drifting_panel()
    off = _model("sequence_ar", epochs=2, min_updates=10, calibrate="off", **BARE).fit(data)
    assert 1 in off.catoms_  # k is drawn as changes (it drifts)
    raw = off.sample(300, seed=0).frame
    for calibrate, window in (("pooled", 0), ("steps", 2)):
        gen = _calibrated(calibrate, calibration_window=window)
        assert sorted(gen.calibration_[1]) == [0, 1] and len(gen.calibration_[0]) == (1 if calibrate == "pooled" else 4)
        s = gen.sample(300, seed=0).frame
        # the same network and tokens: ids, times, lengths and gaps as drawn, only the values mapped
        assert s[["id", "step"]].equals(raw[["id", "step"]]) and s["x"].isna().equals(raw["x"].isna())
        for c in ("x", "k"):
            before, after = (_decile_tvd(data.frame[c].to_numpy(float), f[c].to_numpy(float)) for f in (raw, s))
            assert after < before and after < 0.06, (calibrate, c, before, after)
        assert (s["k"] == np.round(s["k"])).all() and str(s["k"].dtype) == str(data.frame["k"].dtype)
        for c in ("x", "k"):
            assert s[c].dropna().between(data.frame[c].min(), data.frame[c].max()).all()
    # the exact pooled map is monotone: values keep their order (ties of the drawn values may spread)
    s = _calibrated("pooled", calibration_window=0).sample(300, seed=0).frame
    pairs = pd.DataFrame({"raw": raw["x"], "mapped": s["x"]}).dropna().groupby("raw")["mapped"].agg(["min", "max"])
    assert (pairs["max"].to_numpy()[:-1] <= pairs["min"].to_numpy()[1:] + 1e-12).all()


def test_the_calibration_is_seeded_fixed_at_fit_and_saved_bit_identical(tmp_path):
    runs = [_calibrated("steps") for _ in range(2)]
    (c0, m0), (c1, m1) = runs[0].calibration_, runs[1].calibration_
    assert np.array_equal(c0, c1) and all(np.array_equal(a, b) for j in m0 for a, b in zip(m0[j], m1[j]))
    s = runs[0].sample(40, seed=3).frame
    assert s.equals(runs[1].sample(40, seed=3).frame) and s.equals(runs[0].sample(40, seed=3).frame)
    runs[0].save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m")
    assert loaded.calibrate == "steps" and loaded.sample(40, seed=3).frame.equals(s)
    other = _model("sequence_ar", epochs=2, min_updates=10, calibrate="steps", seed=1).fit(_drifting_panel())
    assert not np.array_equal(other.calibration_[1][1][0], m0[1][0])  # another seed, another reference sample


def test_the_calibration_maps_the_unscaled_values_of_a_scaled_model(tmp_path):
    data = _levels_panel(30)
    gen = _model("sequence_ar", scale_per_sequence=True, epochs=2, min_updates=10, calibrate="pooled").fit(data)
    src, dst = gen.calibration_[1][0]
    assert gen.scaled_ and dst[0, 0] == data.frame["x"].min() and dst[0, -1] == data.frame["x"].max()
    s = gen.sample(30, seed=0).frame
    assert s["x"].between(data.frame["x"].min(), data.frame["x"].max()).all()
    gen.save(tmp_path / "m")
    assert Generator.load(tmp_path / "m").sample(30, seed=0).frame.equals(s)


def test_auto_calibrates_only_columns_that_drift_beyond_the_training_noise():
    gen = _calibrated("auto")
    assert list(gen.calibration_[1]) == [1]  # k drifts (TVD .16); x (.05) is within the training set's noise
    assert gen.sample(20, seed=0).frame["x"].equals(_calibrated("off").sample(20, seed=0).frame["x"])


def test_a_file_of_the_release_before_calibration_loads_and_samples_the_same(tmp_path):
    gen = _model("sequence_ar", epochs=2, min_updates=10, calibrate="off").fit(_drifting_panel(30))
    assert gen.calibration_ is None
    loaded = _load_as_previous_release(gen, tmp_path / "m", ("calibrate", "calibration_window"))
    assert loaded.calibrate == "off" and loaded.calibration_ is None
    assert loaded.sample(20, seed=3).frame.equals(gen.sample(20, seed=3).frame)


def test_tampered_calibrations_and_calibration_params_are_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    gen = _calibrated("steps")
    gen.save(tmp_path / "m")
    weights, model = tmp_path / "m" / WEIGHTS_FILE, tmp_path / "m" / MODEL_FILE
    arrays, doc = load_file(str(weights)), model.read_text()
    src, dst = arrays["calibration_from1"], arrays["calibration_to1"]
    nan, down = dst.copy(), src.copy()
    nan[1, 3] = np.nan
    down[0, 5] = down[0, 4] - 1.0
    changes = [({**arrays, "calibration_to1": nan}, "calibration_to1"),
               ({**arrays, "calibration_from1": down}, "calibration_from1"),
               ({**arrays, "calibration_to1": dst + 1e3}, "calibration_to1"),  # outside the training range
               ({**arrays, "calibration_from1": src[:, :-1].copy()}, "calibration_from1"),
               ({**arrays, "calibration_to1": dst[:-1].copy()}, "calibration_to1"),
               ({**arrays, "calibration_to1": dst.astype(np.float32)}, "calibration_to1"),
               ({**arrays, "calibration_steps": arrays["calibration_steps"][::-1].copy()}, "calibration_steps"),
               ({k: v for k, v in arrays.items() if k != "calibration_to0"}, "calibration_to0"),
               ({k: v for k, v in arrays.items() if k != "calibration_steps"}, "calibration_steps"),
               ({**arrays, "calibration_from7": src, "calibration_to7": dst}, "calibration_")]  # no column 7
    for bad, message in changes:
        save_file(bad, str(weights))
        with pytest.raises(ModelFormatError, match=message) as caught:
            Generator.load(tmp_path / "m")
        assert "\n" not in str(caught.value)
    save_file(arrays, str(weights))
    for params, state, message in (({"calibrate": "sometimes"}, {}, "calibrate"),
                                   ({"calibrate": "off"}, {}, "calibrate"),  # the state still says calibrated
                                   ({"calibrate": "pooled"}, {}, "calibration_steps"),  # 4 buckets, not pooled
                                   ({"calibration_window": -2}, {}, "calibration_window"),
                                   ({"calibration_window": True}, {}, "calibration_window"),
                                   ({}, {"calibrated": [0]}, "calibration_"),  # arrays of column 1 left over
                                   ({}, {"calibrated": [0, 7]}, "calibrated"),
                                   ({}, {"calibrated": [1, 0]}, "calibrated")):
        d = json.loads(doc)
        d["params"].update(params)
        d["state"].update(state)
        model.write_text(json.dumps(d))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")
    d = json.loads(doc)
    del d["state"]["calibrated"]
    model.write_text(json.dumps(d))
    with pytest.raises(ModelFormatError, match="calibrated"):
        Generator.load(tmp_path / "m")
    model.write_text(doc)
    assert Generator.load(tmp_path / "m").sample(10, seed=2).frame.equals(gen.sample(10, seed=2).frame)
    for bad in ({"calibrate": "yes"}, {"calibrate": True}, {"calibration_window": -2}, {"calibration_window": 1.5}):
        with pytest.raises(ValueError, match="calibrat"):
            _model("sequence_ar", epochs=1, min_updates=1, **bad).fit(_drifting_panel(10))
