"""One module per model family: definition, training recipe and predictor."""
