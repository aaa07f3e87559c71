"""SATB chorale separation recipe: ``python -m recipes.satb_separation <stage>``."""
