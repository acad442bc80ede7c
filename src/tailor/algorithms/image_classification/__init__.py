"""Tailor's built-in image-classification algorithm (SageMaker's hyperparameters, PyTorch underneath).

Measured figures: see the header of ``train.py`` and ``bench/bench_train.py``.
"""

from tailor.algorithms.image_classification.contract import run
from tailor.algorithms.image_classification.hyperparameters import (
    Hyperparameters,
    parse_hyperparameters,
    sagemaker_defaults,
    tailor_defaults,
)

__all__ = ["Hyperparameters", "parse_hyperparameters", "run", "sagemaker_defaults", "tailor_defaults"]
