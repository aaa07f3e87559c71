"""Recipe ``fma_small``: track-level genre classification, official split (README.md)."""
