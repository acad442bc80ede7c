"""The console's tuning pages in a real browser against a real `tailor server`: the trials table sorted by
objective with the best job highlighted, and the charts of the objective per trial and per hyperparameter."""

from __future__ import annotations

import pytest

from tailor import Client
from tailor.settings import Settings
from tests.console.conftest import Console
from tests.jobs.specs import put_train_data
from tests.tuning.specs import fake_tuning

pytestmark = pytest.mark.slow  # a browser and a server


def test_tuning_page_ranks_trials_and_highlights_the_best(settings: Settings, console: Console) -> None:
    put_train_data(settings)
    ranges = {
        "ContinuousParameterRanges": [{"Name": "scale", "MinValue": "0.2", "MaxValue": "1.0"}],
        "CategoricalParameterRanges": [{"Name": "flavour", "Values": ["plain", "spicy"]}],
    }
    with Client(url=console.url) as client:
        client.create_hyper_parameter_tuning_job(fake_tuning("page-tune", max_jobs=4, parallel=2, ranges=ranges))
        desc = client.wait_hyper_parameter_tuning_job("page-tune", timeout=60)
        trials = client.list_training_jobs_for_hyper_parameter_tuning_job("page-tune", MaxResults=100)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    best = desc["BestTrainingJob"]["TrainingJobName"]
    page = console.page
    console.go("/tuning")
    page.wait_for_selector("#tuning-jobs tr[data-name='page-tune']")
    assert "Completed" in page.inner_text("#tuning-jobs tr[data-name='page-tune']")
    page.click("#tuning-jobs a")
    page.wait_for_selector("#trials tr.best")
    assert page.get_attribute("#trials tr.best", "data-job") == best
    assert page.inner_text("#best-job") == best
    # Sorted by objective, best first; one click on the header turns the order around.
    by_objective = sorted(
        trials["TrainingJobSummaries"], key=lambda t: -t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    )
    order = lambda: page.eval_on_selector_all("#trials-body tr", "rows => rows.map(r => r.dataset.job)")  # noqa: E731
    assert order() == [t["TrainingJobName"] for t in by_objective]
    # One chart per trial, one per hyperparameter (a categorical one too), the best dot marked.
    assert int(page.get_attribute("#chart-objective", "data-points")) == 4
    assert int(page.get_attribute("#chart-hp-scale", "data-points")) == 4
    assert int(page.get_attribute("#chart-hp-flavour", "data-points")) == 4
    assert page.locator("#chart-objective circle.best").count() == 1
    console.shot("tuning-job")
    page.click("#trials th[data-sort='objective']")
    assert order() == [t["TrainingJobName"] for t in reversed(by_objective)]
