"""Training algorithms. Each registers itself in ``tailor.algorithms.registry`` when this package is imported,
so anything that looks an algorithm up through the registry finds every built-in one."""

from tailor.algorithms import image_classification  # registers the built-in image classifier

__all__ = ["image_classification"]
