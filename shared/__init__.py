"""Code every demo shares: the model registry, Hub I/O, device choice, UI pieces and the CLI."""
