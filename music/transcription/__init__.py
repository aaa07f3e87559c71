"""Voice-to-MIDI transcription: note lists, metrics, the SSVD split, baselines and models."""
