"""The `--follow` bar counts training seconds of a time budget, or epochs completed when no budget is set;
`tailor jobs plot`'s epoch axis."""

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


def test_an_epoch_counts_when_it_ends_not_when_its_first_batch_logs() -> None:
    bar = Progress({"epochs": "2"})
    assert bar.advance("Epoch[1] Batch [50]\tSpeed: 900.00 samples/sec\taccuracy=0.700000") == 0
    assert bar.advance("Epoch[0] Time cost=3.2") == 1 and bar.done == 1  # epoch 0 done; the last one only started
    assert bar.advance("Epoch[1] Validation-accuracy=0.8") == 0
    assert bar.advance("Epoch[1] Train-accuracy=0.8") == 1 and bar.done == bar.total


def test_axis_of_a_one_epoch_curve_spans_whole_epochs() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tailor.cli.jobs import _epoch_axis

    fig, ax = plt.subplots()
    ax.plot([0], [0.5], marker="o")
    _epoch_axis(ax, [0])
    assert ax.get_xlim() == (-0.5, 0.5) and [t for t in ax.get_xticks() if -0.5 <= t <= 0.5] == [0.0]
    plt.close(fig)
