"""The tuning-job spec: SageMaker's CreateHyperParameterTuningJob request shape, validated in one place.

Members, enums and limits follow botocore's SageMaker service model (2017-07-24). One training job definition
(``TrainingJobDefinition``); its trials are ordinary CreateTrainingJob requests built by ``trial_request``.
What Tailor adds to SageMaker's rules, each checked here with a message naming the member:

- ``ReverseLogarithmic`` ranges lie in [0, 1) and ``Logarithmic`` ones above 0 (as SageMaker requires);
- ``Grid`` takes categorical ranges only, and runs each combination once (``MaxNumberOfTrainingJobs`` defaults
  to the grid's size and may not exceed it);
- a hyperparameter is either static or tuned, never both.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tailor.errors import ValidationError
from tailor.jobs.spec import (
    ChannelShape,
    CheckpointConfigShape,
    MetricDefinitionShape,
    OutputDataConfigShape,
    ResourceConfigShape,
    StoppingConditionShape,
    TagShape,
)

TUNING_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$"  # <= 32: trial names add -NNN-xxxxxxxx (63 in all)
MAX_TRAINING_JOBS = 500  # SageMaker's default quota of training jobs per tuning job
MAX_PARALLEL = 100
Scaling = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _NumericRange(_Shape):
    Name: str = Field(min_length=1, max_length=256)
    MinValue: str = Field(min_length=1, max_length=2500)
    MaxValue: str = Field(min_length=1, max_length=2500)
    ScalingType: Scaling = "Auto"

    def bounds(self) -> tuple[float, float]:
        try:
            low, high = float(self.MinValue), float(self.MaxValue)
        except ValueError:
            raise ValueError(f"range {self.Name!r}: MinValue and MaxValue must be numbers") from None
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ValueError(f"range {self.Name!r}: MinValue must be below MaxValue (both finite)")
        if self.ScalingType == "Logarithmic" and low <= 0:
            raise ValueError(f"range {self.Name!r}: Logarithmic scaling needs MinValue > 0")
        if self.ScalingType == "ReverseLogarithmic" and not (low >= 0 and high < 1):
            raise ValueError(f"range {self.Name!r}: ReverseLogarithmic scaling needs 0 <= MinValue < MaxValue < 1")
        return low, high

    @pydantic.model_validator(mode="after")
    def _valid(self) -> _NumericRange:
        self.bounds()
        return self


class ContinuousRangeShape(_NumericRange):
    pass


class IntegerRangeShape(_NumericRange):
    @pydantic.model_validator(mode="after")
    def _integers(self) -> IntegerRangeShape:
        for v in (self.MinValue, self.MaxValue):
            try:
                int(v)
            except ValueError:
                raise ValueError(f"integer range {self.Name!r}: {v!r} is not an integer") from None
        if self.ScalingType == "ReverseLogarithmic":
            raise ValueError(f"integer range {self.Name!r}: ReverseLogarithmic applies to continuous ranges only")
        return self


class CategoricalRangeShape(_Shape):
    Name: str = Field(min_length=1, max_length=256)
    Values: list[str] = Field(min_length=1, max_length=30)


class ParameterRangesShape(_Shape):
    IntegerParameterRanges: list[IntegerRangeShape] = Field(default_factory=list, max_length=30)
    ContinuousParameterRanges: list[ContinuousRangeShape] = Field(default_factory=list, max_length=30)
    CategoricalParameterRanges: list[CategoricalRangeShape] = Field(default_factory=list, max_length=30)

    def names(self) -> list[str]:
        return [
            r.Name
            for r in (*self.IntegerParameterRanges, *self.ContinuousParameterRanges, *self.CategoricalParameterRanges)
        ]

    def grid_size(self) -> int:
        return math.prod(len(r.Values) for r in self.CategoricalParameterRanges)


class ObjectiveShape(_Shape):
    Type: Literal["Maximize", "Minimize"]
    MetricName: str = Field(min_length=1, max_length=255)


class ResourceLimitsShape(_Shape):
    MaxNumberOfTrainingJobs: int | None = Field(default=None, ge=1, le=MAX_TRAINING_JOBS)
    MaxParallelTrainingJobs: int = Field(ge=1, le=MAX_PARALLEL)
    MaxRuntimeInSeconds: int | None = Field(default=None, ge=120, le=15_768_000)


class HyperbandStrategyConfigShape(_Shape):
    MinResource: int | None = Field(default=None, ge=1)
    MaxResource: int | None = Field(default=None, ge=1)


class StrategyConfigShape(_Shape):
    HyperbandStrategyConfig: HyperbandStrategyConfigShape | None = None


class TuningJobConfigShape(_Shape):
    Strategy: Literal["Bayesian", "Random", "Hyperband", "Grid"]
    StrategyConfig: StrategyConfigShape | None = None
    HyperParameterTuningJobObjective: ObjectiveShape | None = None
    ResourceLimits: ResourceLimitsShape
    ParameterRanges: ParameterRangesShape | None = None
    TrainingJobEarlyStoppingType: Literal["Off", "Auto"] = "Off"
    RandomSeed: int | None = Field(default=None, ge=0)


class AlgorithmSpecificationShape(_Shape):
    TrainingImage: str | None = Field(default=None, max_length=255)
    TrainingInputMode: Literal["File", "Pipe", "FastFile"] = "File"
    AlgorithmName: str | None = None
    MetricDefinitions: list[MetricDefinitionShape] = Field(default_factory=list, max_length=40)
    # Tailor's own training commands, as in CreateTrainingJob (SageMaker's tuning shape names images only).
    ContainerEntrypoint: list[str] | None = Field(default=None, min_length=1, max_length=100)
    ContainerArguments: list[str] | None = Field(default=None, min_length=1, max_length=100)


class TrainingJobDefinitionShape(_Shape):
    DefinitionName: str | None = Field(default=None, max_length=64)
    TuningObjective: ObjectiveShape | None = None
    HyperParameterRanges: ParameterRangesShape | None = None
    StaticHyperParameters: dict[str, str] = Field(default_factory=dict, max_length=100)
    AlgorithmSpecification: AlgorithmSpecificationShape
    RoleArn: str | None = Field(default=None, max_length=2048)
    InputDataConfig: list[ChannelShape] = Field(default_factory=list, max_length=20)
    OutputDataConfig: OutputDataConfigShape
    ResourceConfig: ResourceConfigShape = Field(default_factory=ResourceConfigShape)
    StoppingCondition: StoppingConditionShape = Field(default_factory=StoppingConditionShape)
    CheckpointConfig: CheckpointConfigShape | None = None
    Environment: dict[str, str] = Field(default_factory=dict, max_length=48)
    EnableNetworkIsolation: bool | None = None
    EnableManagedSpotTraining: bool | None = None


class ParentJobShape(_Shape):
    HyperParameterTuningJobName: str = Field(pattern=TUNING_NAME_PATTERN)


class WarmStartConfigShape(_Shape):
    ParentHyperParameterTuningJobs: list[ParentJobShape] = Field(min_length=1, max_length=5)
    WarmStartType: Literal["IdenticalDataAndAlgorithm", "TransferLearning"]


class TuningJobSpec(_Shape):
    HyperParameterTuningJobName: str = Field(pattern=TUNING_NAME_PATTERN, min_length=1, max_length=32)
    HyperParameterTuningJobConfig: TuningJobConfigShape
    TrainingJobDefinition: TrainingJobDefinitionShape | None = None
    WarmStartConfig: WarmStartConfigShape | None = None
    Tags: list[TagShape] = Field(default_factory=list, max_length=50)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> TuningJobSpec:
        if self.TrainingJobDefinition is None:
            raise ValueError(
                "give TrainingJobDefinition (one training job definition; TrainingJobDefinitions and "
                "Autotune are not supported)"
            )
        if self.objective is None:
            raise ValueError("give HyperParameterTuningJobConfig.HyperParameterTuningJobObjective (Type, MetricName)")
        ranges = self.ranges
        names = ranges.names()
        if not names:
            raise ValueError("give at least one range in ParameterRanges (Integer, Continuous or Categorical)")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"hyperparameter {dup[0]!r} has more than one range")
        static = sorted(set(names) & set(self.TrainingJobDefinition.StaticHyperParameters))
        if static:
            raise ValueError(f"hyperparameter {static[0]!r} is both static and tuned: keep it in one place")
        config = self.HyperParameterTuningJobConfig
        limit = config.ResourceLimits.MaxNumberOfTrainingJobs
        if config.Strategy == "Grid":
            if ranges.IntegerParameterRanges or ranges.ContinuousParameterRanges:
                raise ValueError("the Grid strategy takes CategoricalParameterRanges only")
            if limit is not None and limit > ranges.grid_size():
                raise ValueError(
                    f"MaxNumberOfTrainingJobs {limit} exceeds the grid's {ranges.grid_size()} combinations"
                )
        elif limit is None:
            raise ValueError(f"ResourceLimits.MaxNumberOfTrainingJobs is required with the {config.Strategy} strategy")
        return self

    @property
    def objective(self) -> ObjectiveShape | None:
        assert self.TrainingJobDefinition is not None
        return self.HyperParameterTuningJobConfig.HyperParameterTuningJobObjective or (
            self.TrainingJobDefinition.TuningObjective
        )

    @property
    def ranges(self) -> ParameterRangesShape:
        assert self.TrainingJobDefinition is not None
        return self.HyperParameterTuningJobConfig.ParameterRanges or (
            self.TrainingJobDefinition.HyperParameterRanges or ParameterRangesShape()
        )

    @property
    def max_training_jobs(self) -> int:
        limits = self.HyperParameterTuningJobConfig.ResourceLimits
        return limits.MaxNumberOfTrainingJobs or self.ranges.grid_size()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def trial_request(spec: TuningJobSpec, name: str, tuned: dict[str, str]) -> dict[str, Any]:
    """The CreateTrainingJob request of one trial: the definition, its static and these tuned hyperparameters."""
    d = spec.TrainingJobDefinition
    assert d is not None
    algo = d.AlgorithmSpecification.model_dump(exclude_none=True)
    out: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": algo,
        "HyperParameters": {**d.StaticHyperParameters, **tuned},
        "InputDataConfig": [c.model_dump(exclude_none=True) for c in d.InputDataConfig],
        "OutputDataConfig": d.OutputDataConfig.model_dump(exclude_none=True),
        "ResourceConfig": d.ResourceConfig.model_dump(exclude_none=True),
        "StoppingCondition": d.StoppingCondition.model_dump(exclude_none=True),
        "Environment": dict(d.Environment),
        "Tags": [t.model_dump() for t in spec.Tags],
    }
    for key in ("RoleArn", "EnableNetworkIsolation", "EnableManagedSpotTraining"):
        if getattr(d, key) is not None:
            out[key] = getattr(d, key)
    if d.CheckpointConfig is not None:
        out["CheckpointConfig"] = d.CheckpointConfig.model_dump(exclude_none=True)
    return out


def parse_tuning_spec(raw: dict[str, Any] | TuningJobSpec) -> TuningJobSpec:
    """Validate a CreateHyperParameterTuningJob request; raise ValidationError naming the first bad member."""
    if isinstance(raw, TuningJobSpec):
        return raw
    if not isinstance(raw, dict):
        raise ValidationError("a tuning job spec must be a JSON object (CreateHyperParameterTuningJob request shape)")
    try:
        return TuningJobSpec.model_validate(raw)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            raise ValidationError(f"Unknown member {where!r} in the tuning job spec") from None
        if first["type"] == "missing":
            raise ValidationError(f"Missing required member {where!r} in the tuning job spec") from None
        if where == "HyperParameterTuningJobName":
            raise ValidationError(
                f"Invalid HyperParameterTuningJobName {first.get('input')!r}: 1-32 letters, digits and hyphens, "
                "starting and ending alphanumeric"
            ) from None
        raise ValidationError(f"Invalid tuning job spec{' at ' + where if where else ''}: {msg}") from None
