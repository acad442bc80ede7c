"""The built-in image classifier as the algorithm registry knows it: the images that select it, its
hyperparameters, the module the runner launches and the MXNet-style metric lines it prints."""

from __future__ import annotations

from collections.abc import Mapping

from tailor.algorithms.image_classification.hyperparameters import Hyperparameters, parse_hyperparameters
from tailor.algorithms.registry import Algorithm, register

_TAG = r"(?::[A-Za-z0-9_.-]+)?"
_ECR = r"(?:\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/)?"  # any AWS account's registry, any region
_NUM = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
# Lines of train.py's log (``Epoch[3] Train-accuracy=0.912345``), as SageMaker's built-in algorithm prints them.
METRIC_DEFINITIONS: tuple[Mapping[str, str], ...] = (
    {"Name": "train:accuracy", "Regex": rf"Epoch\[\d+\] Train-accuracy={_NUM}"},
    {"Name": "validation:accuracy", "Regex": rf"Epoch\[\d+\] Validation-accuracy={_NUM}"},
    {"Name": "train:loss", "Regex": rf"Epoch\[\d+\] Train-(?:loss|cross-entropy)={_NUM}"},
    {"Name": "validation:loss", "Regex": rf"Epoch\[\d+\] Validation-(?:loss|cross-entropy)={_NUM}"},
)


def _resolve(raw: Mapping[str, str], profile: str) -> dict[str, str]:
    return parse_hyperparameters(dict(raw), profile="sagemaker" if profile == "sagemaker" else "tailor").resolved()


ALGORITHM = register(
    Algorithm(
        name="image-classification",
        image="tailor/image-classification",
        aliases=(
            # Tailor's own name: Tailor's defaults (the fast network and a time budget).
            (rf"tailor/image-classification{_TAG}", "tailor"),
            # SageMaker's built-in image in any registry/region (e.g.
            # 811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1): SageMaker's defaults exactly.
            (rf"{_ECR}image-classification{_TAG}", "sagemaker"),
        ),
        hyperparameters=Hyperparameters,
        resolve=_resolve,
        entry_point="tailor.algorithms.image_classification",
        metric_definitions=METRIC_DEFINITIONS,
        required_channels=("train",),
    )
)
