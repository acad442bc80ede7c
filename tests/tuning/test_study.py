"""The search's pieces without training: strategies onto Optuna's samplers and pruner, scaling types, the
strings trials get and the best-trial rule."""

from __future__ import annotations

from datetime import UTC, datetime

import optuna
import pytest

from tailor.errors import ValidationError
from tailor.tuning import study as search
from tailor.tuning.shapes import best_trial
from tailor.tuning.spec import parse_tuning_spec
from tailor.tuning.store import TuningTrialRow
from tests.tuning.specs import fake_tuning

RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
        {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"},
        {"Name": "dropout", "MinValue": "0", "MaxValue": "0.5", "ScalingType": "Linear"},
    ],
    "IntegerParameterRanges": [{"Name": "mini_batch_size", "MinValue": "16", "MaxValue": "256", "ScalingType": "Auto"}],
    "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam"]}],
}


@pytest.mark.parametrize(
    ("strategy", "early", "sampler", "pruner"),
    [
        ("Bayesian", "Off", optuna.samplers.TPESampler, optuna.pruners.NopPruner),
        ("Random", "Off", optuna.samplers.RandomSampler, optuna.pruners.NopPruner),
        ("Hyperband", "Off", optuna.samplers.RandomSampler, optuna.pruners.HyperbandPruner),
        ("Bayesian", "Auto", optuna.samplers.TPESampler, optuna.pruners.HyperbandPruner),
    ],
)
def test_strategies_map_onto_optunas_samplers_and_pruner(
    strategy: str, early: str, sampler: type, pruner: type
) -> None:
    spec = parse_tuning_spec(
        fake_tuning("s", strategy=strategy, ranges=RANGES, TrainingJobEarlyStoppingType=early, RandomSeed=0)
    )
    created = search.create(spec)
    assert isinstance(created.sampler, sampler) and isinstance(created.pruner, pruner)
    assert created.direction == optuna.study.StudyDirection.MAXIMIZE


def test_scaling_types_and_the_strings_trials_get() -> None:
    spec = parse_tuning_spec(fake_tuning("s", ranges=RANGES, RandomSeed=0))
    created = search.create(spec)
    seen = []
    for _ in range(30):
        values = search.to_strings(spec, created.ask(search.distributions(spec)).params)
        assert 0.001 <= float(values["learning_rate"]) <= 0.1
        assert 0.9 <= float(values["momentum"]) <= 0.999
        assert values["mini_batch_size"].isdigit() and 16 <= int(values["mini_batch_size"]) <= 256
        assert values["optimizer"] in ("sgd", "adam")
        assert search.from_strings(spec, values) is not None  # back into the study after a restart
        seen.append(float(values["momentum"]))
    # ReverseLogarithmic is dense near 1: most draws above the range's middle (0.9495)
    assert sum(m > 0.9495 for m in seen) > 20
    assert search.from_strings(spec, {**values, "learning_rate": "0.5"}) is None  # outside this job's range


def test_hyperband_budget_comes_from_the_epochs() -> None:
    spec = parse_tuning_spec(fake_tuning("s", strategy="Hyperband", static={"epochs": "9"}))
    assert search.max_resource(spec) == 9
    spec = parse_tuning_spec(
        fake_tuning(
            "s",
            strategy="Hyperband",
            static={"epochs": "9"},
            StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 27}},
        )
    )
    assert search.max_resource(spec) == 27


def test_reverse_logarithmic_needs_the_unit_interval() -> None:
    ranges = {
        "ContinuousParameterRanges": [
            {"Name": "m", "MinValue": "0.5", "MaxValue": "1.0", "ScalingType": "ReverseLogarithmic"}
        ]
    }
    with pytest.raises(ValidationError, match="ReverseLogarithmic scaling needs 0 <= MinValue < MaxValue < 1"):
        parse_tuning_spec(fake_tuning("s", ranges=ranges))


def test_the_best_trial_is_the_best_completed_objective() -> None:
    def trial(n: int, state: str, objective: float | None) -> TuningTrialRow:
        return TuningTrialRow(
            number=n,
            state=state,
            objective=objective,
            training_job_name=f"t-{n:03d}-00000000",
            params={},
            creation_time=datetime.now(UTC),
        )

    trials = [trial(1, "complete", 0.5), trial(2, "pruned", 0.9), trial(3, "complete", 0.7), trial(4, "complete", 0.7)]
    assert best_trial(trials, maximize=True).number == 3  # a stopped trial never wins; a tie goes to the first
    assert best_trial(trials, maximize=False).number == 1  # Minimize
    assert best_trial([trial(1, "failed", None)], maximize=True) is None
