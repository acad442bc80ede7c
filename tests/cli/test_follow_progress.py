"""The `--follow` bar counts training seconds of a time budget, or epochs when no budget is set."""

from __future__ import annotations

from tailor.cli._jobs_common import Progress


def test_time_budgeted_job_counts_training_seconds_not_epochs() -> None:
    bar = Progress({"time_budget": "300", "epochs": "200"})
    assert (bar.total, bar.unit) == (300.0, "s")
    lines = [
        "Epoch[0] Batch [50]\tSpeed: 900.00 samples/sec\taccuracy=0.700000\tlr=0.10000\ttrain_seconds=14.5",
        "Epoch[0] Train-accuracy=0.750000",
        "Epoch[0] Train-seconds=61.0",
        "Epoch[1] Validation-accuracy=0.880000",  # an epoch number alone moves nothing
    ]
    moves = [bar.advance(line) for line in lines]
    assert moves == [14.5, 0.0, 61.0 - 14.5, 0.0] and bar.done == 61.0
    assert bar.advance("Epoch[4] Train-seconds=301.2") == 300.0 - 61.0  # never past the budget
    bar = Progress({"time_budget": "30"})
    bar.advance("Epoch[0] Train-seconds=29.9")
    bar.advance("Time budget of 30 s reached after epoch 0")
    assert bar.done == 30.0


def test_epoch_job_counts_epochs() -> None:
    bar = Progress({"epochs": "3"})
    assert (bar.total, bar.unit) == (3, "epoch")
    moved = [bar.advance(f"Epoch[{e}] Train-accuracy=0.5") for e in (0, 0, 1, 2)]
    assert moved == [1, 0, 1, 1] and bar.done == 3
