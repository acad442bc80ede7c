"""Tailor's built-in image-classification algorithm (SageMaker's hyperparameters, PyTorch underneath).

Measured (``python -m bench train --quick``, 2-core EPYC Zen 3 VM shared with ~5 busy engineers, load ~2,
torch 2.13.0+cpu, float32, one run each -- a pipeline check, not the full benchmark):
  * 6,000 Fashion-MNIST training images, 10k test images:
      fast net (Tailor default), 30 s budget:    85.71 % test accuracy, 6.9 s per 6k-image epoch (~870 img/s)
      Tailor ResNet-20 (SGD 0.1, batch 128):     23.6 s per epoch (~254 img/s), 68.09 % after 1 epoch
      MXNet 1.9.1 ResNet-20, Module.fit, .rec:   45.9 s per epoch, 58.74 % after 1 epoch
      ResNet-20 epoch time, MXNet / Tailor:      1.94x
  * Calibration the default follows (MEASURED.md): 92.73 % at 300 s, 92.90 % with flip TTA.
  * Transfer learning (``python -m bench transfer``, same machine, load 4-7, one run): flowers 800 train / 200
    validation at 224 px, 3 epochs (2 head-only): EfficientNet-Lite0 from ImageNet 92.5 % validation accuracy
    in 192 s of training (290 s wall); the same network and recipe from scratch 52.0 % in 437 s.
The full run (60k images, 300 s / 900 s budgets, time to 91.1 %) is ``python -m bench train [--long]``; its
figures belong here once measured on a quiet machine.
"""

from tailor.algorithms.image_classification.contract import run
from tailor.algorithms.image_classification.hyperparameters import (
    Hyperparameters,
    parse_hyperparameters,
    sagemaker_defaults,
    tailor_defaults,
)

__all__ = ["Hyperparameters", "parse_hyperparameters", "run", "sagemaker_defaults", "tailor_defaults"]
