"""Recipe ``esc50``: cross-validated classification on the official protocol (README.md)."""
