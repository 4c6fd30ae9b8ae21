"""Generators: learn a table and sample synthetic rows like it (pure library: DataFrames in, DataFrames out).

    from generators.registry import make_generator
    gen = make_generator("autoregressive").fit(df)          # schema inferred (or pass a TableSchema / overrides)
    synth = gen.sample(1000, seed=0, conditions={"income": ">50K"})
    gen.save("model_dir"); Generator.load("model_dir")       # JSON + safetensors, never pickle

Sequences (long frames: one row per entity and step) go through the same protocol:
    seq = make_generator("sequence_ar").fit(SequenceData(frame, time="day", entity="store"))
    seq.sample(100, seed=0, conditions={"region": "north"}).frame   # fresh store ids, learned lengths and dates
"""
