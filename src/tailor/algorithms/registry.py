"""The algorithm registry: how training jobs know the built-in algorithms without importing them.

An algorithm declares itself once (``register``): its name, the training images that select it (each with
the default profile it implies), its hyperparameter model, the module the runner launches and the metric lines
it prints. ``tailor.jobs`` validates a CreateTrainingJob request through ``find(image)``; ``tailor.algorithms``
registers into it when imported. This module imports no algorithm (and nothing above it), so the job layer
depends on the registry, never on ``image_classification``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tailor.errors import ValidationError


@dataclass(frozen=True)
class Algorithm:
    name: str
    image: str  # the canonical TrainingImage, named in messages
    aliases: tuple[tuple[str, str], ...]  # (training-image pattern for re.fullmatch, the default profile it selects)
    hyperparameters: type  # the typed model of the hyperparameters (pydantic)
    #: (raw string hyperparameters, profile) -> every hyperparameter resolved, as strings; ValidationError
    #: naming the key and its valid values when one is bad.
    resolve: Callable[[Mapping[str, str], str], dict[str, str]]
    entry_point: str  # run as ``python -m <entry_point> --job-dir <dir> --defaults <profile>``
    metric_definitions: tuple[Mapping[str, str], ...] = ()  # MetricDefinitions applied to its log
    required_channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selection:
    """An algorithm as a training image selects it: the default profile is worked out here, once."""

    algorithm: Algorithm
    profile: str

    def resolve(self, hyperparameters: Mapping[str, str]) -> dict[str, str]:
        return self.algorithm.resolve(dict(hyperparameters), self.profile)

    def arguments(self, job_dir: Any) -> list[str]:
        """The Python arguments that run it on a job dir under the training contract."""
        return ["-m", self.algorithm.entry_point, "--job-dir", str(job_dir), "--defaults", self.profile]


_ALGORITHMS: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add ``algorithm`` (registering the same declaration twice is harmless; a different one is an error)."""
    known = _ALGORITHMS.get(algorithm.name)
    if known is not None and known != algorithm:
        raise ValueError(f"algorithm {algorithm.name!r} is registered already")
    _ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def algorithms() -> list[Algorithm]:
    return sorted(_ALGORITHMS.values(), key=lambda a: a.name)


def find(image: str | None) -> Selection | None:
    """The registered algorithm a training image selects, with its default profile; None for any other image."""
    for algorithm in algorithms():
        for pattern, profile in algorithm.aliases:
            if image and re.fullmatch(pattern, image):
                return Selection(algorithm, profile)
    return None


def select(image: str | None) -> Selection:
    """``find`` for an image that must name a built-in algorithm; ValidationError naming the choices if not."""
    found = find(image)
    if found is None:
        choices = " or ".join(repr(a.image) for a in algorithms())
        raise ValidationError(
            f"TrainingImage {image!r} is not a built-in algorithm: use {choices} or give ContainerEntrypoint to "
            "run your own command"
        )
    return found
