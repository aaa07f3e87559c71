"""Source separation: models, stem datasets, losses, chunked inference, evaluation."""
