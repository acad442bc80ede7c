"""Every SageMaker hyperparameter: its default, a valid string value and an invalid one with a clear message."""

from __future__ import annotations

import pytest

from tailor.algorithms.image_classification.hyperparameters import (
    Hyperparameters,
    parse_hyperparameters,
    sagemaker_defaults,
    tailor_defaults,
)
from tailor.errors import ValidationError

REQUIRED = {"num_classes": "10", "num_training_samples": "60000"}

# key -> (SageMaker default or None, a valid string value and its parsed form, an invalid string value)
TABLE = {
    "num_classes": (None, ("3", 3), "0"),
    "num_training_samples": (None, ("5", 5), "-1"),
    "augmentation_type": (None, ("crop_color", "crop_color"), "rotate"),
    "beta_1": (0.9, ("0.5", 0.5), "1.5"),
    "beta_2": (0.999, ("0.99", 0.99), "-0.1"),
    "checkpoint_frequency": (None, ("5", 5), "0"),
    "early_stopping": (False, ("True", True), "maybe"),
    "early_stopping_min_epochs": (10, ("3", 3), "0"),
    "early_stopping_patience": (5, ("2", 2), "zero"),
    "early_stopping_tolerance": (0.0, ("0.01", 0.01), "2"),
    "epochs": (30, ("12", 12), "0"),
    "eps": (1e-8, ("1e-6", 1e-6), "abc"),
    "gamma": (0.9, ("0.95", 0.95), "1.01"),
    "image_shape": ("3,224,224", ("1, 28, 28", "1,28,28"), "28,28"),
    "kv_store": (None, ("dist_sync", "dist_sync"), "local"),
    "learning_rate": (0.1, ("0.05", 0.05), "3"),
    "lr_scheduler_factor": (0.1, ("0.5", 0.5), "-1"),
    "lr_scheduler_step": (None, ("10,20", "10,20"), "20,10"),
    "mini_batch_size": (32, ("128", 128), "0"),
    "momentum": (0.9, ("0", 0.0), "1.5"),
    "multi_label": (0, ("1", 1), "2"),
    "num_layers": (152, ("20", 20), "19"),
    "optimizer": ("sgd", ("nag", "nag"), "adagrad"),
    "precision_dtype": ("float32", ("float16", "float16"), "bfloat16"),
    "resize": (None, ("256", 256), "0"),
    "top_k": (None, ("5", 5), "1"),
    "use_pretrained_model": (0, ("1", 1), "yes"),
    "use_weighted_loss": (0, ("1", 1), "2"),
    "weight_decay": (0.0001, ("0.0005", 0.0005), "2"),
}


def test_table_covers_every_sagemaker_key() -> None:
    extensions = {"architecture", "time_budget", "lr_schedule", "label_smoothing", "tta", "log_interval", "seed"}
    extensions |= {"pretrained_weights", "pretrained_sha256", "head_warmup_epochs", "fine_tune_lr_factor"}
    assert set(TABLE) == set(Hyperparameters.model_fields) - extensions


@pytest.mark.parametrize("key", sorted(TABLE))
def test_sagemaker_default(key: str) -> None:
    default = TABLE[key][0]
    hp = parse_hyperparameters(REQUIRED, profile="sagemaker")
    if key not in REQUIRED:
        assert getattr(hp, key) == default


@pytest.mark.parametrize("key", sorted(TABLE))
def test_valid_string_value(key: str) -> None:
    text, parsed = TABLE[key][1]
    hp = parse_hyperparameters({**REQUIRED, key: text}, profile="sagemaker")
    assert getattr(hp, key) == parsed


@pytest.mark.parametrize("key", sorted(TABLE))
def test_invalid_value_names_key_and_valid_values(key: str) -> None:
    bad = TABLE[key][2]
    with pytest.raises(ValidationError) as err:
        parse_hyperparameters({**REQUIRED, key: bad}, profile="sagemaker")
    message = str(err.value)
    assert repr(key) in message and repr(bad) in message and "valid values" in message


def test_unknown_key_message_is_sagemakers() -> None:
    with pytest.raises(
        ValidationError, match=r"^Additional properties are not allowed \('mini_batch_siz' was unexpected\)$"
    ):
        parse_hyperparameters({**REQUIRED, "mini_batch_siz": "32"})


@pytest.mark.parametrize("key", ["num_classes", "num_training_samples"])
def test_required(key: str) -> None:
    raw = {k: v for k, v in REQUIRED.items() if k != key}
    with pytest.raises(ValidationError, match=f"Missing required hyperparameter '{key}'"):
        parse_hyperparameters(raw)


def test_cross_field_checks() -> None:
    with pytest.raises(ValidationError, match="checkpoint_frequency"):
        parse_hyperparameters({**REQUIRED, "epochs": "3", "checkpoint_frequency": "5"}, profile="sagemaker")
    with pytest.raises(ValidationError, match="top_k"):
        parse_hyperparameters({**REQUIRED, "num_classes": "3", "top_k": "5"})


def test_profiles() -> None:
    sm = parse_hyperparameters(REQUIRED, profile="sagemaker")
    assert (sm.architecture, sm.num_layers, sm.epochs, sm.mini_batch_size, sm.time_budget) == (
        "resnet",
        152,
        30,
        32,
        None,
    )
    assert sagemaker_defaults()["num_layers"] == "152"
    tailor = parse_hyperparameters(REQUIRED)
    assert tailor.architecture == "fast" and tailor.time_budget == float(tailor_defaults()["time_budget"])
    # Pinning num_layers means SageMaker's meaning for everything not given.
    pinned = parse_hyperparameters({**REQUIRED, "num_layers": "20"})
    assert (pinned.architecture, pinned.num_layers, pinned.learning_rate, pinned.time_budget) == (
        "resnet",
        20,
        0.1,
        None,
    )
    assert pinned.resolved()["num_layers"] == "20"
    # The fast net has no depth: "num_layers 152" beside it would misstate what runs.
    assert "num_layers" not in tailor.resolved() and parse_hyperparameters(tailor.resolved()) == tailor
    assert "300 s of training" in tailor.stopping_rule() and pinned.stopping_rule() == "30 epochs"
