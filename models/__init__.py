"""One package per model family: its data, training recipe, export and predictor.

Each family's `__init__` is light (no torch): it declares the family's registry entry `SPEC`
and a `load(folder)` that imports the heavy parts only when a model is served. Adding a family
is adding its package and its name here.
"""

FAMILIES = ("image_classifier", "patent_similarity", "recommender", "text_to_image")
