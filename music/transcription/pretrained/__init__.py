"""The shipped voice2midi model (``voice2midi.pt``) and its SHA-256 manifest.

Install one with :func:`music.transcription.stages.install`; ``wb transcribe`` checks the
checksum before loading it (:func:`music.transcription.stages.shipped_model`).
"""
