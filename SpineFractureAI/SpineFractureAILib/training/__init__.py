"""Training entry points and dataset exporters, one module per model."""
