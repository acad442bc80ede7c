"""Tuning-job requests for tests: the fake training command (tests/jobs/fake_algo.py) as the definition, so a
trial takes a second; its ``scale`` hyperparameter sets how good a trial is."""

from __future__ import annotations

from typing import Any

from tests.jobs.specs import fake_spec


def fake_tuning(
    name: str,
    *,
    strategy: str = "Random",
    max_jobs: int | None = 3,
    parallel: int = 1,
    ranges: dict[str, Any] | None = None,
    static: dict[str, str] | None = None,
    **config: Any,
) -> dict[str, Any]:
    job = fake_spec("unused", **(static or {}))
    limits: dict[str, Any] = {"MaxParallelTrainingJobs": parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
            "ResourceLimits": limits,
            "ParameterRanges": ranges
            or {"ContinuousParameterRanges": [{"Name": "scale", "MinValue": "0.2", "MaxValue": "1.0"}]},
            **config,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": job["AlgorithmSpecification"],
            "StaticHyperParameters": job["HyperParameters"],
            "InputDataConfig": job["InputDataConfig"],
            "OutputDataConfig": job["OutputDataConfig"],
            "ResourceConfig": job["ResourceConfig"],
            "StoppingCondition": {"MaxRuntimeInSeconds": 120},
        },
    }
