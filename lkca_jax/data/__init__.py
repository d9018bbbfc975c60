"""Data: file readers and writers, the paper's split protocols, TFDS builders, the input pipeline."""
