"""Thin recipes: one folder each with ``__main__.py`` (stages), ``conf.yml`` and README."""
