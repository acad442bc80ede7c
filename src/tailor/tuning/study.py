"""The search: SageMaker's tuning strategies on Optuna's samplers and pruner.

- ``Bayesian`` -> TPE (``TPESampler``, constant liar so parallel trials spread out), ``Random`` ->
  ``RandomSampler``, ``Grid`` -> ``GridSampler`` over the categorical values, ``Hyperband`` -> random sampling
  with the ``HyperbandPruner``; ``TrainingJobEarlyStoppingType: Auto`` adds the same pruner to any strategy.
- Ranges: Linear and Auto are uniform, Logarithmic is Optuna's log scale, ReverseLogarithmic samples
  ``1 - v`` on a log scale (dense near 1, e.g. momentum 0.9-0.999), as SageMaker defines it.
- The study lives in memory. The database's trial rows are its record: ``seed`` adds finished trials back after
  a restart, and a warm start adds its parents' trials the same way.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tailor.tuning.spec import TuningJobSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the study's progress is the tuning job's, not Optuna's log
log = logging.getLogger("tailor.tuning")

_REVERSED = "__reverse_log"  # marks a ReverseLogarithmic parameter's distribution (sampled as 1 - v)
# Hyperband's downsampling rate: a third of the trials at each rung go on (Li et al. 2018; Optuna's default).
REDUCTION_FACTOR = 3


@dataclass(frozen=True)
class Finished:
    """A finished trial as the study needs it: tuned values (strings), its end, objective and epoch values."""

    params: dict[str, str]
    state: str  # a TuningTrialRow state
    objective: float | None
    intermediate: dict[int, float]


def distributions(spec: TuningJobSpec) -> dict[str, BaseDistribution]:
    ranges = spec.ranges
    out: dict[str, BaseDistribution] = {}
    for r in ranges.ContinuousParameterRanges:
        low, high = r.bounds()
        if r.ScalingType == "ReverseLogarithmic":
            out[r.Name] = FloatDistribution(1 - high, 1 - low, log=True)
        else:
            out[r.Name] = FloatDistribution(low, high, log=r.ScalingType == "Logarithmic")
    for r in ranges.IntegerParameterRanges:
        out[r.Name] = IntDistribution(int(r.MinValue), int(r.MaxValue), log=r.ScalingType == "Logarithmic")
    for r in ranges.CategoricalParameterRanges:
        out[r.Name] = CategoricalDistribution(list(r.Values))
    return out


def _reversed(spec: TuningJobSpec) -> set[str]:
    return {r.Name for r in spec.ranges.ContinuousParameterRanges if r.ScalingType == "ReverseLogarithmic"}


def to_strings(spec: TuningJobSpec, params: dict[str, Any]) -> dict[str, str]:
    """Optuna's values as the hyperparameter strings a training job gets (9 significant digits for floats)."""
    flip = _reversed(spec)
    out: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, float):
            out[name] = format(1 - value if name in flip else value, ".9g")
        else:
            out[name] = str(value)
    return out


def from_strings(spec: TuningJobSpec, values: dict[str, str]) -> dict[str, Any] | None:
    """Hyperparameter strings back to Optuna values; None when a value lies outside this job's ranges."""
    flip = _reversed(spec)
    out: dict[str, Any] = {}
    for name, dist in distributions(spec).items():
        if name not in values:
            return None
        try:
            if isinstance(dist, FloatDistribution):
                v: Any = float(values[name])
                v = 1 - v if name in flip else v
            elif isinstance(dist, IntDistribution):
                v = int(values[name])
            else:
                v = values[name]
        except ValueError:
            return None
        if not _inside(dist, v):
            return None
        out[name] = v
    return out


def _inside(dist: BaseDistribution, v: Any) -> bool:
    if isinstance(dist, FloatDistribution | IntDistribution):
        return dist.low <= v <= dist.high
    assert isinstance(dist, CategoricalDistribution)
    return v in dist.choices


def max_resource(spec: TuningJobSpec) -> int | str:
    """Hyperband's largest budget in epochs: StrategyConfig's MaxResource, else the trials' ``epochs``."""
    hb = spec.HyperParameterTuningJobConfig.StrategyConfig
    if hb and hb.HyperbandStrategyConfig and hb.HyperbandStrategyConfig.MaxResource:
        return hb.HyperbandStrategyConfig.MaxResource
    assert spec.TrainingJobDefinition is not None
    epochs = spec.TrainingJobDefinition.StaticHyperParameters.get("epochs")
    if epochs and epochs.isdigit():
        return int(epochs)
    for r in spec.ranges.IntegerParameterRanges:
        if r.Name == "epochs":
            return int(r.MaxValue)
    return "auto"  # Optuna takes the longest finished trial's


def prunes(spec: TuningJobSpec) -> bool:
    config = spec.HyperParameterTuningJobConfig
    return config.Strategy == "Hyperband" or config.TrainingJobEarlyStoppingType == "Auto"


def create(spec: TuningJobSpec) -> optuna.Study:
    config = spec.HyperParameterTuningJobConfig
    seed = config.RandomSeed
    sampler: optuna.samplers.BaseSampler
    if config.Strategy == "Bayesian":
        # TPE models the objective after a few random trials: a tenth of the budget, 2..10 of them.
        startup = min(10, max(2, spec.max_training_jobs // 10))
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    elif config.Strategy == "Grid":
        sampler = optuna.samplers.GridSampler(
            {r.Name: list(r.Values) for r in spec.ranges.CategoricalParameterRanges}, seed=seed
        )
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if prunes(spec):
        hb = config.StrategyConfig.HyperbandStrategyConfig if config.StrategyConfig else None
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=(hb.MinResource if hb and hb.MinResource else 1),
            max_resource=max_resource(spec),
            reduction_factor=REDUCTION_FACTOR,
        )
    assert spec.objective is not None
    direction = "maximize" if spec.objective.Type == "Maximize" else "minimize"
    return optuna.create_study(
        study_name=spec.HyperParameterTuningJobName, sampler=sampler, pruner=pruner, direction=direction
    )


_STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def seed(study: optuna.Study, spec: TuningJobSpec, trials: Iterable[Finished]) -> int:
    """Add finished trials (this job's before a restart, or a warm start's parents') to the study; how many fit
    this job's ranges and were added."""
    dists = distributions(spec)
    added = 0
    for t in trials:
        params = from_strings(spec, t.params)
        if params is None:
            continue  # a parent's trial outside this job's ranges tells the model nothing it can place
        state = _STATES.get(t.state, TrialState.FAIL)
        value = t.objective if state is not TrialState.FAIL else None
        if state is not TrialState.FAIL and value is None:
            state = TrialState.FAIL
        if state is TrialState.PRUNED:
            value = None
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params=params,
                distributions={k: dists[k] for k in params},
                intermediate_values=dict(t.intermediate),
            )
        )
        added += 1
    return added


def grid_combinations(spec: TuningJobSpec) -> list[dict[str, str]]:
    """Every combination of a Grid job's values, in a seeded random order (the order trials run in)."""
    ranges = sorted(spec.ranges.CategoricalParameterRanges, key=lambda r: r.Name)
    combos = [
        dict(zip([r.Name for r in ranges], c, strict=True)) for c in itertools.product(*(r.Values for r in ranges))
    ]
    random.Random(spec.HyperParameterTuningJobConfig.RandomSeed or 0).shuffle(combos)
    return combos


def enqueue_remaining(study: optuna.Study, spec: TuningJobSpec, launched: list[dict[str, str]]) -> None:
    """After a restart, queue a Grid job's combinations not yet run (trial numbers no longer map to grid
    points, so each remaining point is asked for by value)."""
    done = [dict(p) for p in launched]
    for combo in grid_combinations(spec):
        if combo in done:
            done.remove(combo)
        else:
            study.enqueue_trial(combo)


def tell(study: optuna.Study, trial: optuna.trial.Trial, state: TrialState, value: float | None) -> None:
    try:
        study.tell(trial, value if state is TrialState.COMPLETE else None, state=state)
    except RuntimeError as err:
        # GridSampler ends `optimize` loops by calling Study.stop once the grid is done; there is no loop here
        # (the trial is recorded before that call), and the tuning job counts its own trials.
        if "Study.stop" not in str(err):
            raise
