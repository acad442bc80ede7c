"""SageMaker image-classification hyperparameters: one pydantic model, validated in one place.

Names, ranges and defaults follow the SageMaker "Image Classification Hyperparameters" table. Values arrive as
strings (``hyperparameters.json``) and are converted here; an unknown key or a bad value raises
``tailor.errors.ValidationError`` with a message naming the key and its valid values, before any training.

Two default profiles:

* ``sagemaker_defaults()`` -- SageMaker's defaults exactly (ResNet-152, 30 epochs, SGD lr 0.1, batch 32, no
  augmentation). Used for requests that name SageMaker's built-in image (``profile="sagemaker"``).
* ``tailor_defaults()`` -- Tailor's own CLI/SDK default when the user does not pin ``num_layers``: the fast CPU
  network, a 300 s time budget with a one-cycle schedule driven by elapsed time, SGD-Nesterov peak lr 0.2 at
  batch 256, weight decay 5e-4, label smoothing 0.1, crop+flip augmentation and flip test-time augmentation
  (fast net 24/48/96 ReLU: 92.77 % Fashion-MNIST in a 150 s budget at load ~1.5). A user who pins
  ``num_layers`` gets SageMaker's defaults for every key they do not give, so no SageMaker hyperparameter changes
  meaning.

Tailor extensions (never required, never changing a SageMaker key's meaning):

* ``architecture``   ``resnet`` (pre-activation ResNet of ``num_layers``; with ``use_pretrained_model=1`` the
                     torchvision-layout post-activation ResNet that ImageNet checkpoints exist for), ``fast``
                     (airbench-style net) or ``efficientnet_lite0`` (ImageNet weights from the ``pretrained``
                     extra).
* ``pretrained_weights``  explicit file path / file:// / https:// URL of ImageNet weights (default: the model
                     zoo, ``settings.zoo_dir``); ``pretrained_sha256`` a sha256 (or prefix) to verify.
* ``head_warmup_epochs``  with ``use_pretrained_model=1``: epochs training only the new classifier while the
                     pretrained body is frozen (BatchNorm statistics too); default 1 (2 in the pretrained profile).
* ``fine_tune_lr_factor`` with ``use_pretrained_model=1``: after the warm-up the whole network trains at
                     ``learning_rate * fine_tune_lr_factor`` (default 0.1) under ``lr_schedule``.
* ``time_budget``    seconds of training; the one-cycle schedule is driven by elapsed time and training stops
                     at the budget (``epochs`` stays an upper bound).
* ``lr_schedule``    ``step`` (SageMaker: ``lr_scheduler_step``/``factor``) or ``one_cycle`` (15 % warm-up,
                     linear decay to 0 over the time budget or the epochs).
* ``label_smoothing`` in [0, 1); ``tta`` 0/1 (average predictions over a horizontal flip, baked into the
  exported model); ``log_interval`` batches between progress lines; ``seed``.

The resolved hyperparameters (every key, defaults filled in) are always written into the job output.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tailor.errors import ValidationError

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_DEPTHS = (18, 34, 50, 101, 152, 200)
PRETRAINED_DEPTHS = (18, 34, 50, 101, 152)  # torchvision publishes ImageNet checkpoints for these


class Hyperparameters(BaseModel):
    """SageMaker's image-classification hyperparameters plus Tailor's documented extensions."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    # --- required -------------------------------------------------------------------------------------------
    num_classes: int = Field(
        ge=1, description="Number of output classes.", json_schema_extra={"valid": "positive integer"}
    )
    num_training_samples: int = Field(
        ge=1, description="Number of training examples.", json_schema_extra={"valid": "positive integer"}
    )
    # --- SageMaker, optional ----------------------------------------------------------------------------------
    augmentation_type: Literal["crop", "crop_color", "crop_color_transform"] | None = None
    beta_1: float = Field(0.9, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    beta_2: float = Field(0.999, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    checkpoint_frequency: int | None = Field(
        None, ge=1, json_schema_extra={"valid": "positive integer no greater than epochs"}
    )
    early_stopping: bool = Field(False, json_schema_extra={"valid": "True or False"})
    early_stopping_min_epochs: int = Field(10, ge=1, json_schema_extra={"valid": "positive integer"})
    early_stopping_patience: int = Field(5, ge=1, json_schema_extra={"valid": "positive integer"})
    early_stopping_tolerance: float = Field(0.0, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    epochs: int = Field(30, ge=1, json_schema_extra={"valid": "positive integer"})
    eps: float = Field(1e-8, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    gamma: float = Field(0.9, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    image_shape: str = Field("3,224,224", json_schema_extra={"valid": "'num_channels,height,width', e.g. '3,224,224'"})
    kv_store: Literal["dist_sync", "dist_async"] | None = None
    learning_rate: float = Field(0.1, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    lr_scheduler_factor: float = Field(0.1, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    lr_scheduler_step: str | None = Field(
        None, json_schema_extra={"valid": "comma-separated increasing positive epochs, e.g. '10,20'"}
    )
    mini_batch_size: int = Field(32, ge=1, json_schema_extra={"valid": "positive integer"})
    momentum: float = Field(0.9, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    multi_label: int = Field(0, ge=0, le=1, json_schema_extra={"valid": "0 or 1"})
    num_layers: int = Field(152, json_schema_extra={"valid": "one of 18, 34, 50, 101, 152, 200 or 20, 32, 44, 56, 110"})
    optimizer: Literal["sgd", "adam", "rmsprop", "nag"] = "sgd"
    precision_dtype: Literal["float32", "float16"] = "float32"
    resize: int | None = Field(None, ge=1, json_schema_extra={"valid": "positive integer"})
    top_k: int | None = Field(None, ge=2, json_schema_extra={"valid": "positive integer larger than 1"})
    use_pretrained_model: int = Field(0, ge=0, le=1, json_schema_extra={"valid": "0 or 1"})
    use_weighted_loss: int = Field(0, ge=0, le=1, json_schema_extra={"valid": "0 or 1"})
    weight_decay: float = Field(0.0001, ge=0, le=1, json_schema_extra={"valid": "float in [0, 1]"})
    # --- Tailor extensions ------------------------------------------------------------------------------------
    architecture: Literal["resnet", "fast", "efficientnet_lite0"] = "resnet"
    pretrained_weights: str | None = Field(None, json_schema_extra={"valid": "a file path, file:// or https:// URL"})
    pretrained_sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{8,64}$", json_schema_extra={"valid": "8 to 64 hex digits of a sha256"}
    )
    head_warmup_epochs: int = Field(1, ge=0, json_schema_extra={"valid": "non-negative integer"})
    fine_tune_lr_factor: float = Field(0.1, gt=0, le=1, json_schema_extra={"valid": "float in (0, 1]"})
    time_budget: float | None = Field(None, gt=0, json_schema_extra={"valid": "positive number of seconds"})
    lr_schedule: Literal["step", "one_cycle"] = "step"
    label_smoothing: float = Field(0.0, ge=0, lt=1, json_schema_extra={"valid": "float in [0, 1)"})
    tta: int = Field(0, ge=0, le=1, json_schema_extra={"valid": "0 or 1"})
    log_interval: int = Field(50, ge=1, json_schema_extra={"valid": "positive integer"})
    seed: int = Field(0, ge=0, json_schema_extra={"valid": "non-negative integer"})

    @field_validator("num_layers")
    @classmethod
    def _depth(cls, v: int) -> int:
        if v not in CIFAR_DEPTHS + IMAGENET_DEPTHS:
            raise ValueError("not a supported depth")
        return v

    @field_validator("image_shape")
    @classmethod
    def _shape(cls, v: str) -> str:
        parts = [p.strip() for p in v.split(",")]
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError("not three positive integers")
        return ",".join(parts)

    @field_validator("lr_scheduler_step")
    @classmethod
    def _steps(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        parts = [p.strip() for p in v.split(",")]
        if not all(p.isdigit() and int(p) > 0 for p in parts) or sorted(map(int, parts)) != list(map(int, parts)):
            raise ValueError("not increasing positive integers")
        return ",".join(parts)

    @model_validator(mode="after")
    def _cross_checks(self) -> Hyperparameters:
        if self.checkpoint_frequency is not None and self.checkpoint_frequency > self.epochs:
            raise ValueError(
                f"checkpoint_frequency ({self.checkpoint_frequency}) must be no greater than epochs ({self.epochs})"
            )
        if self.multi_label and self.top_k is not None:
            raise ValueError("top_k is not defined for multi_label=1; remove top_k")
        if self.use_pretrained_model and self.architecture == "fast":
            raise ValueError(
                "use_pretrained_model=1 needs a network with ImageNet weights: architecture=efficientnet_lite0 or "
                "num_layers 18/34/50/101/152"
            )
        if self.use_pretrained_model and self.architecture == "resnet" and self.num_layers not in PRETRAINED_DEPTHS:
            raise ValueError(
                f"use_pretrained_model=1: no ImageNet ResNet-{self.num_layers}; use num_layers 18, 34, 50, 101 or 152"
            )
        if self.use_pretrained_model and self.shape[0] != 3:
            raise ValueError(f"use_pretrained_model=1 needs RGB images: image_shape {self.image_shape} is not 3,H,W")
        if self.top_k is not None and self.top_k > self.num_classes:
            raise ValueError(f"top_k ({self.top_k}) must be no greater than num_classes ({self.num_classes})")
        return self

    # --- derived views --------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = (int(p) for p in self.image_shape.split(","))
        return c, h, w

    @property
    def lr_steps(self) -> list[int]:
        return [int(p) for p in self.lr_scheduler_step.split(",")] if self.lr_scheduler_step else []

    def resolved(self) -> dict[str, str]:
        """Every key that applies, as the string SageMaker would show, for hyperparameters.json / model.json.

        ``None`` values are omitted, and so is ``num_layers`` unless the network is a ResNet: the fast net and
        EfficientNet have no such depth, and a recorded "num_layers 152" beside them would misstate what ran.
        """
        out: dict[str, str] = {}
        for key, value in self.model_dump().items():
            if value is None or (key == "num_layers" and self.architecture != "resnet"):
                continue
            out[key] = str(value)
        return out

    def stopping_rule(self) -> str:
        """When training ends, in words (the log says it beside the network, so `epochs` is read right)."""
        if self.time_budget:
            return (
                f"{self.time_budget:g} s of training (time_budget; epochs={self.epochs} is only an upper bound "
                "that a faster machine could reach first)"
            )
        return f"{self.epochs} epochs"


def sagemaker_defaults() -> dict[str, str]:
    """SageMaker's defaults exactly, as strings (required keys excluded)."""
    fields = Hyperparameters.model_fields
    return {k: str(f.default) for k, f in fields.items() if f.is_required() is False and f.default is not None}


def tailor_defaults() -> dict[str, str]:
    """Tailor's default for users who do not pin ``num_layers``: the fast net under a time budget."""
    return {
        "architecture": "fast",
        "time_budget": "300",
        "epochs": "200",  # an upper bound: the time budget ends training first on CPUs
        "lr_schedule": "one_cycle",
        "optimizer": "nag",
        "learning_rate": "0.2",  # peak of the one-cycle schedule at batch 256 (docs/MEASURED.md)
        "mini_batch_size": "256",
        "momentum": "0.9",
        "weight_decay": "0.0005",  # applied to conv/linear weights only, not BN or bias
        "label_smoothing": "0.1",
        "augmentation_type": "crop",
        "tta": "1",
    }


def pretrained_defaults() -> dict[str, str]:
    """Tailor's default for ``use_pretrained_model=1`` or ``architecture=efficientnet_lite0`` without a pinned
    ``num_layers``: EfficientNet-Lite0 fine-tuned from ImageNet (the flowers bench in the README measured it).

    One-cycle over the epochs: its 15 % ramp falls in the head warm-up (body frozen), then the whole network
    trains at learning_rate * fine_tune_lr_factor decaying linearly to 0.
    """
    return {
        "architecture": "efficientnet_lite0",
        "epochs": "3",  # flowers at 224 px: 0.885 / 0.930 / 0.925 validation accuracy after epochs 1 / 2 / 3
        "lr_schedule": "one_cycle",
        "optimizer": "nag",
        "learning_rate": "0.01",  # the classifier's peak; 0.1 blew logits up (train loss 48 on flowers)
        "fine_tune_lr_factor": "0.1",
        "head_warmup_epochs": "2",
        "mini_batch_size": "32",
        "momentum": "0.9",
        "weight_decay": "0.00005",  # conv/linear weights only; ImageNet features need little regularising here
        "label_smoothing": "0.1",
        "augmentation_type": "crop",
        "tta": "1",
    }


Profile = Literal["tailor", "sagemaker"]


def parse_hyperparameters(raw: dict[str, Any], *, profile: Profile = "tailor") -> Hyperparameters:
    """Validate user hyperparameters (string values) under a default profile; raise ValidationError."""
    known = Hyperparameters.model_fields
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise ValidationError(f"Additional properties are not allowed ({unknown[0]!r} was unexpected)")
    values = {k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items()}
    values = {k: v for k, v in values.items() if v != ""}
    pins_network = "num_layers" in values or values.get("architecture") == "resnet"
    wants_pretrained = values.get("use_pretrained_model") in ("1", 1) or values.get("architecture") == (
        "efficientnet_lite0"
    )
    if profile == "tailor" and not pins_network:
        values = {**(pretrained_defaults() if wants_pretrained else tailor_defaults()), **values}
    if values.get("num_layers") is not None and "architecture" not in values:
        values["architecture"] = "resnet"
    try:
        return Hyperparameters.model_validate(values)
    except pydantic.ValidationError as err:
        raise ValidationError(_message(err, values)) from None


def _message(err: pydantic.ValidationError, values: dict[str, Any]) -> str:
    first = err.errors()[0]
    loc = first.get("loc") or ()
    if not loc:  # a cross-field check
        return f"Invalid hyperparameters: {first['msg'].removeprefix('Value error, ')}"
    key = str(loc[0])
    if first["type"] == "missing":
        return f"Missing required hyperparameter {key!r}"
    field = Hyperparameters.model_fields[key]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    valid = extra.get("valid")
    if valid is None:  # a Literal: list its members
        ctx = first.get("ctx") or {}
        valid = str(ctx.get("expected", first["msg"])).replace("'", "")
    return f"Invalid value {values.get(key)!r} for hyperparameter {key!r}: valid values are {valid}"
