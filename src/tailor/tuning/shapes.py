"""SageMaker's response shapes for tuning jobs, built from the rows: DescribeHyperParameterTuningJob,
HyperParameterTuningJobSummary and HyperParameterTrainingJobSummary (plain dicts with ``datetime`` values)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tailor.db import utcnow
from tailor.jobs.store import TrainingJobRow
from tailor.tuning.store import TuningJobRow, TuningTrialRow

Rows = tuple[TuningJobRow, list[TuningTrialRow], dict[str, TrainingJobRow]]


def best_trial(trials: list[TuningTrialRow], maximize: bool) -> TuningTrialRow | None:
    """The Completed trial with the best objective (the earlier one on a tie); stopped trials never win."""
    done = [t for t in trials if t.state == "complete" and t.objective is not None]
    if not done:
        return None
    sign = -1.0 if maximize else 1.0
    return min(done, key=lambda t: (sign * float(t.objective or 0.0), t.number))


def elapsed(start: datetime, end: datetime | None) -> int:
    return max(0, round(((end or utcnow()) - start).total_seconds()))


def _objective(row: TuningJobRow) -> dict[str, str]:
    config = row.spec["HyperParameterTuningJobConfig"]
    return config.get("HyperParameterTuningJobObjective") or row.spec["TrainingJobDefinition"]["TuningObjective"]


def _live(t: TuningTrialRow, job: TrainingJobRow | None) -> bool:
    """Still running: its training job has not ended (or is being created)."""
    if job is not None:
        return job.status in ("InProgress", "Stopping")
    return t.state == "running"


def _objective_status(t: TuningTrialRow) -> str:
    if t.state == "running":  # until the tuning job has read its objective
        return "Pending"
    return "Succeeded" if t.objective is not None else "Failed"


def trial_summary(
    row: TuningJobRow, t: TuningTrialRow, job: TrainingJobRow | None, job_arn: Callable[[str], str]
) -> dict[str, Any]:
    status = job.status if job is not None else "Failed"  # a trial whose CreateTrainingJob was refused
    out: dict[str, Any] = {
        "TrainingJobName": t.training_job_name,
        "TrainingJobArn": job.arn if job is not None else job_arn(t.training_job_name),
        "TuningJobName": row.name,
        "CreationTime": job.creation_time if job is not None else t.creation_time,
        "TrainingJobStatus": status,
        "TunedHyperParameters": dict(t.params),
        "ObjectiveStatus": _objective_status(t),
    }
    if job is not None and job.training_start_time:
        out["TrainingStartTime"] = job.training_start_time
    if job is not None and job.training_end_time:
        out["TrainingEndTime"] = job.training_end_time
    reason = t.reason or (job.failure_reason if job is not None else None)
    if reason:
        out["FailureReason"] = reason
    if t.objective is not None:
        objective = _objective(row)
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": objective["Type"],
            "MetricName": objective["MetricName"],
            "Value": t.objective,
        }
    return out


def counters(trials: list[TuningTrialRow], jobs: dict[str, TrainingJobRow]) -> tuple[dict[str, int], dict[str, int]]:
    """TrainingJobStatusCounters (an interrupted trial is a RetryableError) and ObjectiveStatusCounters."""
    status = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    objective = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for t in trials:
        job = jobs.get(t.training_job_name)
        live = _live(t, job)
        if t.state == "interrupted":
            status["RetryableError"] += 1
        elif live:
            status["InProgress"] += 1
        elif job is not None and job.status in ("Completed", "Stopped"):
            status[job.status] += 1
        else:
            status["NonRetryableError"] += 1
        if t.state == "running":  # until the tuning job has read its objective
            objective["Pending"] += 1
        elif t.objective is not None:
            objective["Succeeded"] += 1
        else:
            objective["Failed"] += 1
    return status, objective


def summary(row: TuningJobRow, trials: list[TuningTrialRow], jobs: dict[str, TrainingJobRow]) -> dict[str, Any]:
    status, objective = counters(trials, jobs)
    config = row.spec["HyperParameterTuningJobConfig"]
    out: dict[str, Any] = {
        "HyperParameterTuningJobName": row.name,
        "HyperParameterTuningJobArn": row.arn,
        "HyperParameterTuningJobStatus": row.status,
        "Strategy": config["Strategy"],
        "CreationTime": row.creation_time,
        "LastModifiedTime": row.last_modified_time,
        "TrainingJobStatusCounters": status,
        "ObjectiveStatusCounters": objective,
        "ResourceLimits": config["ResourceLimits"],
    }
    if row.end_time:
        out["HyperParameterTuningEndTime"] = row.end_time
    return out


def describe(
    row: TuningJobRow,
    trials: list[TuningTrialRow],
    jobs: dict[str, TrainingJobRow],
    job_arn: Callable[[str], str],
    parents: list[Rows],
) -> dict[str, Any]:
    status, objective = counters(trials, jobs)
    out: dict[str, Any] = {
        "HyperParameterTuningJobName": row.name,
        "HyperParameterTuningJobArn": row.arn,
        "HyperParameterTuningJobConfig": row.spec["HyperParameterTuningJobConfig"],
        "TrainingJobDefinition": row.spec["TrainingJobDefinition"],
        "HyperParameterTuningJobStatus": row.status,
        "CreationTime": row.creation_time,
        "LastModifiedTime": row.last_modified_time,
        "TrainingJobStatusCounters": status,
        "ObjectiveStatusCounters": objective,
        "ConsumedResources": {"RuntimeInSeconds": elapsed(row.creation_time, row.end_time)},
    }
    if row.end_time:
        out["HyperParameterTuningEndTime"] = row.end_time
    if row.failure_reason:
        out["FailureReason"] = row.failure_reason
    maximize = _objective(row)["Type"] == "Maximize"
    best = best_trial(trials, maximize)
    if best is not None:
        out["BestTrainingJob"] = trial_summary(row, best, jobs.get(best.training_job_name), job_arn)
    if row.spec.get("WarmStartConfig"):
        out["WarmStartConfig"] = row.spec["WarmStartConfig"]
        # The best over this job and its parents, as SageMaker's OverallBestTrainingJob.
        pool = [(row, t, jobs) for t in trials] + [(p, t, pj) for p, pt, pj in parents for t in pt]
        champion = best_trial([t for _, t, _ in pool], maximize)
        if champion is not None:
            owner, _, owner_jobs = next(x for x in pool if x[1] is champion)
            out["OverallBestTrainingJob"] = trial_summary(
                owner, champion, owner_jobs.get(champion.training_job_name), job_arn
            )
    return out
