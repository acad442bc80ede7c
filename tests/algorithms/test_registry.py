"""The algorithm registry: images select an algorithm and its default profile; jobs validate through it."""

from __future__ import annotations

import pytest

from tailor.algorithms import registry
from tailor.algorithms.image_classification import ALGORITHM, sagemaker_defaults, tailor_defaults
from tailor.errors import ValidationError
from tailor.jobs.spec import parse_spec


@pytest.mark.parametrize(
    ("image", "profile"),
    [
        ("tailor/image-classification", "tailor"),
        ("tailor/image-classification:1.2", "tailor"),
        ("image-classification", "sagemaker"),
        ("811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1", "sagemaker"),
        ("390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/image-classification:latest", "sagemaker"),
    ],
)
def test_images_select_the_built_in_classifier_and_its_profile(image: str, profile: str) -> None:
    selected = registry.find(image)
    assert selected is not None and selected.algorithm is ALGORITHM and selected.profile == profile


@pytest.mark.parametrize("image", [None, "", "my/own-image:1", "image-classification-extra", "x/image-classification"])
def test_other_images_select_nothing(image: str | None) -> None:
    assert registry.find(image) is None
    with pytest.raises(ValidationError, match="is not a built-in algorithm: use 'tailor/image-classification'"):
        registry.select(image)


def test_resolving_fills_the_profile_s_defaults_once() -> None:
    given = {"num_classes": "10", "num_training_samples": "60"}
    sagemaker = registry.select("image-classification").resolve(given)
    tailor = registry.select("tailor/image-classification").resolve(given)
    assert sagemaker["num_layers"] == sagemaker_defaults()["num_layers"] == "152"
    assert tailor["architecture"] == tailor_defaults()["architecture"]
    again = registry.select("image-classification").resolve(sagemaker)
    assert again == sagemaker  # resolved hyperparameters resolve to themselves: the contract may re-read them
    with pytest.raises(ValidationError, match="epochs"):
        registry.select("image-classification").resolve({**given, "epochs": "0"})


def test_a_registered_algorithm_is_what_jobs_validate_against(monkeypatch: pytest.MonkeyPatch) -> None:
    other = registry.Algorithm(
        name="echo",
        image="tailor/echo",
        aliases=((r"tailor/echo", "tailor"),),
        hyperparameters=dict,
        resolve=lambda raw, profile: {"greeting": "hello", **raw},
        entry_point="tailor_echo",
        metric_definitions=({"Name": "echo:score", "Regex": r"score=([0-9.]+)"},),
        required_channels=("input",),
    )
    monkeypatch.setitem(registry._ALGORITHMS, other.name, other)
    spec = {
        "TrainingJobName": "echo-1",
        "AlgorithmSpecification": {"TrainingImage": "tailor/echo"},
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://data/x"}}}],
    }
    with pytest.raises(ValidationError, match="needs a 'input' channel"):
        parse_spec(spec)
    spec["InputDataConfig"][0]["ChannelName"] = "input"
    parsed = parse_spec(spec)
    selected = parsed.AlgorithmSpecification.algorithm()
    assert selected is not None and selected.algorithm is other
    args = ["-m", "tailor_echo", "--job-dir", "/jobs/echo-1", "--defaults", "tailor"]
    assert selected.arguments("/jobs/echo-1") == args
    assert [m["Name"] for m in parsed.metric_definitions()] == ["echo:score"]
    with pytest.raises(ValueError, match="registered already"):
        registry.register(registry.Algorithm(**{**other.__dict__, "entry_point": "elsewhere"}))
