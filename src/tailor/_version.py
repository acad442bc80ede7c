"""The package version, at the bottom of the import graph so any module (and model.json) can record it."""

__version__ = "0.1.0"
