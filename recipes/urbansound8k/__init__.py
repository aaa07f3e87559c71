"""Recipe ``urbansound8k``: cross-validated classification on the official protocol (README.md)."""
