"""Recipe ``coral``: cross-validated classification on the official protocol (README.md)."""
