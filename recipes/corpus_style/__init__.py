"""Recipe ``corpus_style``: style (genre) classification of rendered music21 corpus works."""
