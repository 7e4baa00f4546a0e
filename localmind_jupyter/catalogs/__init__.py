"""Catalog data files, one per backend type: models worth offering before they are installed."""
