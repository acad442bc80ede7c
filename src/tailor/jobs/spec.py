"""The training-job spec: SageMaker's CreateTrainingJob request shape, validated in one place.

Field names, patterns and limits follow botocore's SageMaker service model (2017-07-24). Two kinds of algorithm:

* a built-in one: ``AlgorithmSpecification.TrainingImage`` names an image an algorithm registered for
  (``tailor.algorithms.registry``), e.g. ``tailor/image-classification`` or SageMaker's
  ``<account>.dkr.ecr.<region>.amazonaws.com/image-classification:<tag>``;
* own code: ``AlgorithmSpecification.ContainerEntrypoint`` (+ ``ContainerArguments``), or any other
  ``TrainingImage``. It runs under the same contract (see ``tailor.jobs.runner``) as a sandboxed local process
  (``TrainingImage`` then only recorded) or, with a container engine, as a container of ``TrainingImage``.
  Whether a request may run it at all is decided by the service (``allow_own_code`` and
  ``tailor:RunCustomCode``), not here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tailor.algorithms import registry
from tailor.errors import ValidationError
from tailor.resources import NAME_PATTERN

_BUILTIN_ENV_RE = re.compile(r"^(OMP|MKL|OPENBLAS|KMP|CUDA|NCCL)_[A-Z0-9_]+$")


def builtin_images() -> str:
    """The registered algorithms' training images, for messages: ``'tailor/image-classification'``."""
    return " or ".join(repr(a.image) for a in registry.algorithms())


class _Shape(BaseModel):
    # SageMaker rejects unknown members; so do we, naming the member.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MetricDefinitionShape(_Shape):
    Name: str = Field(min_length=1, max_length=255)
    Regex: str = Field(min_length=1, max_length=500)

    @pydantic.field_validator("Regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as err:
            raise ValueError(f"not a valid regular expression: {err}") from None
        return v


class AlgorithmSpecificationShape(_Shape):
    TrainingImage: str | None = Field(default=None, max_length=255)
    AlgorithmName: str | None = None
    TrainingInputMode: Literal["File", "Pipe", "FastFile"] = "File"
    MetricDefinitions: list[MetricDefinitionShape] = Field(default_factory=list, max_length=40)
    EnableSageMakerMetricsTimeSeries: bool | None = None
    ContainerEntrypoint: list[str] | None = Field(default=None, min_length=1, max_length=100)
    ContainerArguments: list[str] | None = Field(default=None, min_length=1, max_length=100)

    @pydantic.model_validator(mode="after")
    def _algorithm(self) -> AlgorithmSpecificationShape:
        if self.ContainerEntrypoint:
            return self
        if not self.TrainingImage:
            raise ValueError(f"give TrainingImage ({builtin_images()}) or ContainerEntrypoint (your own command)")
        return self

    @property
    def builtin(self) -> bool:
        return not self.own_code

    @property
    def own_code(self) -> bool:
        """A command or image the caller brings (anything but the built-in algorithm)."""
        return bool(self.ContainerEntrypoint) or not self.builtin_image

    @property
    def builtin_image(self) -> bool:
        """TrainingImage selects a registered algorithm (tailor.algorithms.registry)."""
        return registry.find(self.TrainingImage) is not None

    def algorithm(self) -> registry.Selection | None:
        """The built-in algorithm and default profile the TrainingImage selects; None for a user's command.

        A request naming SageMaker's image gets SageMaker's defaults exactly; Tailor's own name, Tailor's.
        """
        return registry.find(self.TrainingImage) if self.builtin else None


class S3DataSourceShape(_Shape):
    S3DataType: Literal["S3Prefix", "ManifestFile", "AugmentedManifestFile"] = "S3Prefix"
    S3Uri: str = Field(min_length=1, max_length=1024)
    S3DataDistributionType: Literal["FullyReplicated", "ShardedByS3Key"] | None = None


class DataSourceShape(_Shape):
    S3DataSource: S3DataSourceShape


class ChannelShape(_Shape):
    ChannelName: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9.\-_]+$")
    DataSource: DataSourceShape
    ContentType: str | None = Field(default=None, max_length=256)
    CompressionType: Literal["None", "Gzip"] | None = None
    RecordWrapperType: Literal["None", "RecordIO"] | None = None
    InputMode: Literal["File", "Pipe", "FastFile"] | None = None


class OutputDataConfigShape(_Shape):
    S3OutputPath: str = Field(min_length=1, max_length=1024)
    KmsKeyId: str | None = None
    CompressionType: Literal["GZIP", "NONE"] | None = None


class ResourceConfigShape(_Shape):
    InstanceType: str = "local"  # recorded as given; every job runs on this machine
    InstanceCount: int = Field(default=1, ge=1, le=64)
    VolumeSizeInGB: int | None = Field(default=None, ge=0)


class StoppingConditionShape(_Shape):
    MaxRuntimeInSeconds: int | None = Field(default=None, ge=1, le=28 * 86400)
    MaxWaitTimeInSeconds: int | None = Field(default=None, ge=1)
    MaxPendingTimeInSeconds: int | None = Field(default=None, ge=7200)


class CheckpointConfigShape(_Shape):
    S3Uri: str = Field(min_length=1, max_length=1024)
    LocalPath: str | None = None


class TagShape(_Shape):
    Key: str = Field(min_length=1, max_length=128)
    Value: str = Field(default="", max_length=256)


class TrainingJobSpec(_Shape):
    TrainingJobName: str = Field(pattern=NAME_PATTERN, min_length=1, max_length=63)
    AlgorithmSpecification: AlgorithmSpecificationShape
    RoleArn: str | None = Field(default=None, max_length=2048)  # recorded; Tailor runs jobs as itself
    HyperParameters: dict[str, str] = Field(default_factory=dict, max_length=100)
    InputDataConfig: list[ChannelShape] = Field(default_factory=list, max_length=20)
    OutputDataConfig: OutputDataConfigShape
    ResourceConfig: ResourceConfigShape = Field(default_factory=ResourceConfigShape)
    StoppingCondition: StoppingConditionShape = Field(default_factory=StoppingConditionShape)
    CheckpointConfig: CheckpointConfigShape | None = None
    Environment: dict[str, str] = Field(default_factory=dict, max_length=100)
    Tags: list[TagShape] = Field(default_factory=list, max_length=50)
    EnableNetworkIsolation: bool | None = None
    EnableManagedSpotTraining: bool | None = None

    @pydantic.field_validator("HyperParameters")
    @classmethod
    def _hp_limits(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if len(key) > 256 or len(value) > 2500:
                raise ValueError(f"hyperparameter {key[:40]!r}: keys are at most 256 and values 2500 characters")
        return v

    @pydantic.field_validator("Environment")
    @classmethod
    def _env_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]{0,511}", key) or len(value) > 512:
                raise ValueError(f"environment variable {key[:40]!r}: name [a-zA-Z_][a-zA-Z0-9_]*, value <= 512")
        return v

    @pydantic.model_validator(mode="after")
    def _builtin_environment(self) -> TrainingJobSpec:
        # Variables such as PYTHONPATH or LD_PRELOAD would make the built-in algorithm run the caller's code
        # without the own-code permission: it takes only thread and device settings.
        if self.AlgorithmSpecification.builtin:
            for key in self.Environment:
                if not _BUILTIN_ENV_RE.match(key):
                    raise ValueError(
                        f"Environment {key!r}: the built-in algorithm accepts only thread and device variables "
                        "(OMP_*, MKL_*, OPENBLAS_*, KMP_*, CUDA_*, NCCL_*)"
                    )
        return self

    @pydantic.model_validator(mode="after")
    def _channels(self) -> TrainingJobSpec:
        names = [c.ChannelName for c in self.InputDataConfig]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"channel {sorted(dup)[0]!r} is given more than once")
        selected = self.AlgorithmSpecification.algorithm()
        for required in selected.algorithm.required_channels if selected else ():
            if required not in names:
                raise ValueError(f"the built-in algorithm needs a {required!r} channel in InputDataConfig")
        return self

    def metric_definitions(self) -> list[dict[str, str]]:
        """User-given definitions, plus the built-in algorithm's own (the user's win by name)."""
        given = [m.model_dump() for m in self.AlgorithmSpecification.MetricDefinitions]
        selected = self.AlgorithmSpecification.algorithm()
        if selected is None:
            return given
        names = {m["Name"] for m in given}
        return given + [dict(m) for m in selected.algorithm.metric_definitions if m["Name"] not in names]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def parse_spec(raw: dict[str, Any] | TrainingJobSpec) -> TrainingJobSpec:
    """Validate a CreateTrainingJob request; raise ValidationError naming the first bad member."""
    if isinstance(raw, TrainingJobSpec):
        return raw
    if not isinstance(raw, dict):
        raise ValidationError("a training job spec must be a JSON object (CreateTrainingJob request shape)")
    try:
        return TrainingJobSpec.model_validate(raw)
    except pydantic.ValidationError as err:
        raise ValidationError(_message(err)) from None


def _message(err: pydantic.ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"Unknown member {where!r} in the training job spec"
    if first["type"] == "missing":
        return f"Missing required member {where!r} in the training job spec"
    if first["type"] == "string_pattern_mismatch" and where == "TrainingJobName":
        name = first.get("input")
        return f"Invalid TrainingJobName {name!r}: must match {NAME_PATTERN} (letters, digits, hyphens; <= 63)"
    return (
        f"Invalid training job spec at {where or 'top level'}: {msg}" if where else f"Invalid training job spec: {msg}"
    )
