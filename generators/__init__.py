"""Generators: learn data of one kind and sample new data like it (pure library: frames and arrays in and out).

Tables:
    from generators.registry import make_generator
    gen = make_generator("autoregressive").fit(df)          # schema inferred (or pass a TableSchema / overrides)
    synth = gen.sample(1000, seed=0, conditions={"income": ">50K"})
    synth = gen.sample(1000, seed=0, conditions=parse_conditions("income=>50K,age>=40"))  # generators.conditions
    gen.save("model_dir"); Generator.load("model_dir")       # JSON + safetensors, never pickle

Sequences (long frames: one row per entity and step) go through the same protocol:
    seq = make_generator("sequence_ar").fit(SequenceData(frame, time="day", entity="store"))
    seq.sample(100, seed=0, conditions={"region": "north"}).frame   # fresh store ids, learned lengths and dates

Images (uint8 pixels (n, h, w, c) and labels):
    images = make_generator("image_gmm").fit(ImageData(pixels_uint8_nhwc, labels))   # or conv_vae, pixel_ar
    synth = images.sample(100, seed=0, conditions={"label": "Sneaker"})               # ImageData
"""
