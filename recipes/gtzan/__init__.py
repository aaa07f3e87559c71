"""Recipe ``gtzan``: track-level genre classification on the fault-filtered split (README.md)."""
