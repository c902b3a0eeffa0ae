"""Manifest, splits, datasets and feature caches."""
