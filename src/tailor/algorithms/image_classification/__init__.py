"""Tailor's built-in image-classification algorithm (SageMaker's hyperparameters, PyTorch underneath).

Measured, full benchmark (``python -m bench train --resnet-epochs=1``: 60k Fashion-MNIST training images, the 10k
test set scored after every epoch, training time excludes that evaluation; 2-core EPYC Zen 3 VM shared with
other engineers' benchmarks and test suites, torch 2.13.0+cpu, float32, one run each):
  * Earlier default (fast net 32/64/128 GELU), load 5-7, ~460-620 img/s:
      90 s budget:   89.62 % (one epoch fits)                       goal 91.1 % in <= 90 s: not met
      300 s budget:  92.39 % (3 epochs); 91.21 % at the end of epoch 1, ~225 s of training
                                                                    goal >= 93.5 %: not met
  * Current default (fast net 24/48/96 ReLU, same recipe otherwise), head-to-head single runs with
    /tmp-side variants of the same ``fit`` (not yet the full bench; 90 s and 300 s budgets not re-measured):
      75 s budget, load 3-6:  32/64/128 GELU 89.75 % (673 img/s), 32/64/128 ReLU 90.22 % (754),
                              24/48/96 ReLU 90.39 % (1,041), 16/32/64 ReLU 90.82 % (1,841)
      150 s budget, load ~1.5: 24/48/96 ReLU 92.77 % (1,887 img/s, 5 epochs), 16/32/64 ReLU 92.68 % (2,831,
                              7 epochs); the calibration's 32/64/128 GELU gave 91.66 % at 150 s (quieter machine)
    Goals (91.1 % in <= 90 s, >= 93.5 % at 300 s) still not shown met. EMA of weights, batch 512, warm-up and
    label-smoothing levels were not measured.
  * Earlier pipeline check (``--quick``, 6,000 images, load ~2): ResNet-20 epoch time MXNet 1.9.1 / Tailor 1.94x
    (45.9 s vs 23.6 s per 6k images); fast net 85.71 % in a 30 s budget.
  * Calibration the default follows (MEASURED.md, quieter machine): 92.73 % at 300 s, 92.90 % with flip TTA.
  * Transfer learning (``python -m bench transfer``, same machine, load 4-7, one run): flowers 800 train / 200
    validation at 224 px, 3 epochs (2 head-only): EfficientNet-Lite0 from ImageNet 92.5 % validation accuracy
    in 192 s of training (290 s wall); the same network and recipe from scratch 52.0 % in 437 s.
GPU: ``python -m bench train_gpu`` (fastnet_wide, fp16 AMP, GPU-resident data, 60 s budget) has not been run on
a GPU yet. The 15-minute budget (``--long``) has not been measured with this default.
"""

from tailor.algorithms.image_classification.contract import run
from tailor.algorithms.image_classification.hyperparameters import (
    Hyperparameters,
    parse_hyperparameters,
    sagemaker_defaults,
    tailor_defaults,
)

__all__ = ["Hyperparameters", "parse_hyperparameters", "run", "sagemaker_defaults", "tailor_defaults"]
