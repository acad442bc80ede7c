"""tailor.Client in-process (embedded): the same methods and shapes as over HTTP."""

from __future__ import annotations

import io

from tailor import Client
from tailor.settings import Settings
from tests.jobs.specs import fake_spec, put_train_data


def test_embedded_client_runs_a_job_and_streams_its_log(settings: Settings) -> None:
    put_train_data(settings)
    with Client(settings=settings) as client:
        assert client.embedded
        spec = fake_spec("sdk-ok")
        job = client.create_training_job(spec, HyperParameters={"epochs": "2", "sleep": "0.05"})  # keywords win
        out = io.StringIO()
        desc = job.wait(logs=True, timeout=30, out=out)
        assert desc["TrainingJobStatus"] == "Completed" and job.status == "Completed"
        assert "Epoch[1] Train-accuracy=0.600000" in out.getvalue() and "Epoch[2]" not in out.getvalue()
        assert [m["Epoch"] for m in job.metrics("train:accuracy")] == [0, 1]
        assert job.logs() == out.getvalue()
        summaries = client.list_training_jobs()["TrainingJobSummaries"]
        assert summaries[0]["TrainingJobName"] == "sdk-ok"
        assert (
            client.training_job("sdk-ok")
            .describe()["ModelArtifacts"]["S3ModelArtifacts"]
            .endswith("sdk-ok/output/model.tar.gz")
        )
