"""Tailor: classify your own images on your own machines."""

from tailor.client import Client, TrainingJob

__version__ = "0.1.0"
__all__ = ["Client", "TrainingJob", "__version__"]
