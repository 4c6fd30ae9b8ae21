"""Generators: learn a table and sample synthetic rows like it (pure library: DataFrames in, DataFrames out).

    from generators.registry import make_generator
    gen = make_generator("autoregressive").fit(df)          # schema inferred (or pass a TableSchema / overrides)
    synth = gen.sample(1000, seed=0, conditions={"income": ">50K"})
    synth = gen.sample(1000, seed=0, conditions=parse_conditions("income=>50K,age>=40"))  # generators.conditions
    gen.save("model_dir"); Generator.load("model_dir")       # JSON + safetensors, never pickle

    images = make_generator("image_gmm").fit(ImageData(pixels_uint8_nhwc, labels))   # or conv_vae, pixel_ar
    synth = images.sample(100, seed=0, conditions={"label": "Sneaker"})               # ImageData
"""
