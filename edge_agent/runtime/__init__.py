"""The edge runtime: load a bundle, preprocess frames, run a backend, decide pass/fail. No torch here."""
