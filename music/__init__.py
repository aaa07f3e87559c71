"""Music: chorale synthesis, genre classification, voice-to-MIDI transcription."""
