"""minisora: a small Sora-like video generator, built from scratch to learn from."""
__version__ = "0.1.0"
