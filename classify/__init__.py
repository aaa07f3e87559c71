"""Shared classification core: front ends, augmentation, heads, datasets, training, CV."""
