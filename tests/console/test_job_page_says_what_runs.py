"""A built-in job's page says what trains and what ends it (the fast net's `epochs` is only an upper bound)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tailor.algorithms.image_classification.hyperparameters import parse_hyperparameters
from tailor.db import Database
from tailor.jobs.store import TrainingJobRow, utcnow
from tailor.settings import Settings
from tests.console.conftest import Console
from tests.jobs.specs import fake_spec

pytestmark = pytest.mark.slow  # a browser and a server


def test_fast_network_job_page_names_the_time_budget(settings: Settings, console: Console) -> None:
    hp = parse_hyperparameters({"num_classes": "10", "num_training_samples": "42000", "image_shape": "1,28,28"})
    spec = {**fake_spec("fast-job"), "HyperParameters": hp.resolved()}
    spec["AlgorithmSpecification"] = {"TrainingImage": "tailor/image-classification", "TrainingInputMode": "File"}
    now = utcnow()
    db = Database(settings)
    with db.session() as s:
        s.add(
            TrainingJobRow(
                name="fast-job",
                arn="arn:aws:sagemaker:us-east-1:000000000000:training-job/fast-job",
                spec=spec,
                status="Completed",
                secondary_status="Completed",
                transitions=[],
                final_metrics=[],
                creation_time=now,
                last_modified_time=now + timedelta(seconds=300),
                training_start_time=now,
                training_end_time=now + timedelta(seconds=300),
                job_dir=str(settings.jobs_dir / "fast-job"),
            )
        )
    db.dispose()
    console.go("/jobs/fast-job")
    console.page.wait_for_selector("#trains-for")
    text = console.page.inner_text("#trains-for")
    assert text == "fast trains for 300 s of training (time_budget; epochs 200 is an upper bound).", text
    assert "num_layers" not in console.page.inner_text("#hyperparameters")
