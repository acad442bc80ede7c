"""One forward-shape check per registered network (timm's smoke test), plus normalisation inside the model."""

from __future__ import annotations

import pytest
import torch

from tailor.algorithms.image_classification.networks import create_model, list_models
from tailor.errors import ValidationError


def _bottleneck(name: str) -> bool:
    depth = "".join(c for c in name.removeprefix("resnet").removesuffix("_v1") if c.isdigit())
    return name.startswith("resnet") and int(depth or 0) >= 50


# Each network once, grey and RGB alternating along the registry: the channel count only changes the stem's
# input width, and building ResNet-152/200 twice cost ~8 s of the suite for nothing more.
# The bottleneck ResNets (50+ layers) take 1-6 s each to build and run: marked slow, so the inner loop keeps one
# check per network family.
@pytest.mark.parametrize(
    ("name", "channels"),
    [
        pytest.param(n, 1 + 2 * (i % 2), marks=[pytest.mark.slow] if _bottleneck(n) else [])
        for i, n in enumerate(list_models())
    ],
)
def test_forward_shape(name: str, channels: int) -> None:
    model = create_model(name, num_classes=7, in_channels=channels, image_size=28).eval()
    with torch.inference_mode():
        out = model(torch.randint(0, 256, (2, channels, 28, 28)).float())
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_imagenet_stem_for_large_images() -> None:
    model = create_model("resnet18", num_classes=4, in_channels=3, image_size=64).eval()
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


def test_normalisation_lives_in_the_model() -> None:
    model = create_model("fastnet", num_classes=3, in_channels=1, image_size=28, mean=[50.0], std=[10.0])
    x = torch.full((1, 1, 2, 2), 70.0)
    assert torch.allclose(model.normalize(x), torch.full_like(x, 2.0))


def test_unknown_model() -> None:
    with pytest.raises(ValidationError, match="registered models"):
        create_model("resnet7", num_classes=2)


def test_short_budgets_take_the_narrow_fast_net_and_record_it() -> None:
    from tailor.algorithms.image_classification.networks import SHORT_BUDGET_S, fastnet_kwargs, short_budget

    assert short_budget(60) and short_budget(SHORT_BUDGET_S)
    assert not short_budget(SHORT_BUDGET_S + 1) and not short_budget(300) and not short_budget(None)
    # Epochs that fit in the budget at the default net's best rate: epochs bind, the wider net stays.
    assert not short_budget(60, work=1_000 * 10 * 28 * 28)
    assert short_budget(60, work=60_000 * 200 * 28 * 28)
    short, default = fastnet_kwargs(short=True), fastnet_kwargs()
    assert (short["widths"], short["stem_width"]) == ([16, 32, 64], 8)
    assert (default["widths"], default["stem_width"]) == ([24, 48, 96], 16)
    sizes = {}
    for name, kw in (("short", short), ("default", default)):
        model = create_model("fastnet", num_classes=10, in_channels=1, image_size=28, **kw)
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
        sizes[name] = sum(p.numel() for p in model.parameters())
    assert sizes["short"] < sizes["default"] / 2
