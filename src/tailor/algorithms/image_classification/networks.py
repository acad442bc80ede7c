"""Networks for image classification, behind a small registry (``create_model``, ``list_models``).

Every network takes raw pixels as float 0..255 (uint8 cast to float) in NCHW and normalises them in its first
layer (``Normalize``, per-channel mean/std stored as buffers), so training, the ONNX export and serving can
never preprocess differently.

* ``resnet<N>``: pre-activation ResNet as in MXNet's image-classification example (He et al. 2016,
  "Identity Mappings"). CIFAR-style depths 20/32/44/56/110 ((N-2) % 6 == 0, basic units, widths 16/32/64);
  ImageNet-style 18/34 (basic) and 50/101/152/200 (bottleneck, widths 256/512/1024/2048). For images of
  32 px or less the ImageNet-style nets use a 3x3 stride-1 stem without max-pool (7x7/2 + pool would leave
  a 1x1 map after the first stage on 28x28 inputs).
* ``fastnet``: airbench-style CPU network (conv widths 24/48/96 after a 16-channel stem, BatchNorm, ReLU,
  max-pool; 16/32/64 after an 8-channel stem when a CPU job's time budget is 90 s or less and ends before its
  epochs); ~1.5x the earlier 32/64/128
  GELU net's training speed on this CPU (measured trade below).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from tailor.algorithms.image_classification.efficientnet import efficientnet_lite0
from tailor.algorithms.image_classification.layers import Normalize, Stats

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a factory ``fn(num_classes, in_channels, image_size, mean, std) -> nn.Module``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered network; kwargs are the factory's (see ``register_model``)."""
    from tailor.errors import ValidationError

    if name not in _REGISTRY:
        raise ValidationError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name](**kwargs)


class Classifier(nn.Module):
    """``normalize -> body -> head``; the common shape of every registered network."""

    def __init__(self, normalize: Normalize, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.normalize = normalize
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.normalize(x)))


class FlipTTA(nn.Module):
    """Averages logits over the image and its horizontal mirror (+0.2 % on Fashion-MNIST, docs/MEASURED.md)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.model(x) + self.model(torch.flip(x, dims=[3])))


def inference_model(model: nn.Module, tta: bool) -> nn.Module:
    """The exact module exported to ONNX and run by the torch runtime of ``load_model``."""
    return FlipTTA(model) if tta else model


def _defaults(in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None) -> Normalize:
    return Normalize(
        mean if mean is not None else [127.5] * in_channels, std if std is not None else [64.0] * in_channels
    )


# --- pre-activation ResNet ----------------------------------------------------------------------------------
class _Basic(nn.Module):
    """Pre-activation unit: BN-ReLU-conv twice; the shortcut (1x1 conv when the shape changes) adds the input."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self._shortcut(cin, cout, stride)

    def _shortcut(self, cin: int, cout: int, stride: int) -> None:
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else None

    def _convs(self, act: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.bn2(self.conv1(act))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu(self.bn1(x))
        skip = self.shortcut(act) if self.shortcut is not None else x
        return self._convs(act) + skip


class _Bottleneck(_Basic):
    """Pre-activation bottleneck: 1x1 down to cout/4, 3x3, 1x1 up, each after BN-ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        nn.Module.__init__(self)
        mid = cout // 4
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid), nn.Conv2d(mid, cout, 1, bias=False)
        self._shortcut(cin, cout, stride)

    def _convs(self, act: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.relu(self.bn3(super()._convs(act))))


_IMAGENET_UNITS = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
    200: [3, 24, 36, 3],
}


def preact_resnet(
    depth: int, num_classes: int, in_channels: int = 3, image_size: int = 224, mean: Stats = None, std: Stats = None
) -> nn.Module:
    """Pre-activation ResNet of ``depth`` (MXNet example's layouts)."""
    if depth in _IMAGENET_UNITS:
        units = _IMAGENET_UNITS[depth]
        bottleneck = depth >= 50
        widths = [256, 512, 1024, 2048] if bottleneck else [64, 128, 256, 512]
        stem_width = 64
        if image_size <= 32:
            stem: list[nn.Module] = [nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False)]
        else:
            stem = [
                nn.Conv2d(in_channels, stem_width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            ]
    elif depth >= 8 and (depth - 2) % 6 == 0:
        units = [(depth - 2) // 6] * 3
        bottleneck = False
        widths = [16, 32, 64]
        stem_width = 16
        stem = [nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False)]
    else:
        raise ValueError(f"num_layers {depth} is neither ImageNet-style nor (n-2) % 6 == 0")
    unit = _Bottleneck if bottleneck else _Basic
    layers: list[nn.Module] = list(stem)
    cin = stem_width
    for stage, (count, width) in enumerate(zip(units, widths, strict=True)):
        for i in range(count):
            layers.append(unit(cin, width, 2 if (i == 0 and stage > 0) else 1))
            cin = width
    layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    model = Classifier(_defaults(in_channels, mean, std), nn.Sequential(*layers), nn.Linear(cin, num_classes))
    _init_like_mxnet(model)
    return model


def _init_like_mxnet(model: nn.Module) -> None:
    """MXNet's image-classification initialiser, ``Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)``:
    weights ~ N(0, 2 / fan_in) (He init), biases 0; BatchNorm scale 1, shift 0.

    PyTorch's default (uniform, variance 1 / (3 fan_in)) is 6x smaller in variance. Behind BatchNorm a smaller
    weight norm is a larger effective step (lr / |w|^2), so at SageMaker's constant lr 0.1 the weights moved
    faster than BatchNorm's running statistics (momentum 0.1, ~10 steps) could follow: on 3,500 Fashion-MNIST
    images a ResNet-20 validated at 10.5 % and 16.1 % after epochs 1-2 (loss 16.6, 6.9) while training at
    40-68 %; with this initialisation 40.3 % and 53.7 % (bench/bench_train.py --parity has the figures).
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


for _depth in (20, 32, 44, 56, 110, 18, 34, 50, 101, 152, 200):
    register_model(f"resnet{_depth}")(functools.partial(preact_resnet, _depth))


# --- airbench-style fast net --------------------------------------------------------------------------------
# Running-statistics momentum (PyTorch convention: weight of the newest batch). The default 0.1 keeps ~35 % of
# the initial mean 0 / var 1 after 10 steps, so a short job (700 images, 15 s: ~40 steps) evaluated at chance
# for 5+ epochs while its train accuracy rose. 0.4 (airbench's 0.6 in its convention) tracks within ~5 steps.
BN_MOMENTUM = 0.4


# ReLU, not GELU: on this CPU the whole training step ran ~12 % faster (754 vs 673 img/s, 32/64/128) at equal
# accuracy (90.22 % vs 89.75 % in a 75 s budget); GELU's erf costs real time on 28x28 maps.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU}


class _ConvGroup(nn.Sequential):
    """conv -> max-pool/2 -> BN -> act -> conv -> BN -> act (pooling early halves the second conv's cost)."""

    def __init__(self, cin: int, cout: int, activation: str = "relu") -> None:
        act = ACTIVATIONS[activation]
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
            act(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
            act(),
        )


class _Scale(nn.Module):
    """Fixed logit scale (airbench multiplies its logits by 1/9 for a softer start)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


# The CPU default's shape. Training cost is dominated by the first group's 28x28 / 14x14 maps, so width buys
# accuracy per epoch and costs epochs per minute. Fashion-MNIST, 60k images, 75 s budgets, one run each, load 3-6
# (img/s, test accuracy): 32/64/128 GELU 673, 89.75 %; 32/64/128 ReLU 754, 90.22 %; 24/48/96 ReLU 1,041,
# 90.39 %; 16/32/64 ReLU 1,841, 90.82 % (2.3 epochs). Batch 128 (lr 0.1) with 16/32/64: 1,404, 90.70 %.
# 150 s budgets, load ~1.5: 16/32/64 2,831 img/s, 92.68 % (7 epochs); 24/48/96 1,887 img/s, 92.77 % (5 epochs).
# The narrowest wins short budgets; at 150 s they tie, so the default (a 300 s budget) takes 24/48/96.
FASTNET_WIDTHS: tuple[int, ...] = (24, 48, 96)
FASTNET_STEM = 16
FASTNET_ACTIVATION = "relu"
# Budgets of SHORT_BUDGET_S or less take 16/32/64 after an 8-channel stem: the stem's output feeds the costliest
# conv (the first group's, at full resolution), so a thinner stem buys epochs. 60 s budgets, alternating runs of
# bench_train's Tailor run, quiet (load 1.5-1.9), test accuracy: 24/48/96 stem 16 89.68-90.04 % (6 runs, mean
# 89.87); 16/32/64 stem 16 90.33-90.64 (4, mean 90.49); 16/32/64 stem 8 90.44-91.00 (8, mean 90.83); stem 4
# 89.90 / 90.40; 12/24/48 89.59 / 89.91; 20/40/80 stem 8 89.36 / 89.40; 24/48/96 stem 8 89.98 / 90.00.
# 90 s: the short budgets measured (60 and 75 s, the table above); at 150 s the widths tie. Budgets up to 300 s
# also train with flips and no translation (train.FLIPS_ONLY_BUDGET_S).
SHORT_BUDGET_S = 90.0
FASTNET_SHORT_WIDTHS: tuple[int, ...] = (16, 32, 64)
FASTNET_SHORT_STEM = 8
# Only when time binds: a job whose epochs fit in its budget at the default net's best training rate here
# (~1,800-1,900 img/s at 28x28 on a fast day, docs/MEASURED.md) keeps the wider net, which is better per epoch
# (a 1,000-image, 10-epoch notebook job in a 60 s budget validated at 79-80 % on the narrow one).
FASTNET_PIXELS_PER_S = 2_000 * 28 * 28


def short_budget(time_budget: float | None, work: float = math.inf, limit: float = SHORT_BUDGET_S) -> bool:
    """Whether a time budget (seconds; None: bounded by epochs) is short and binds: at most ``limit``, and ending
    before the job's ``work`` (pixels to train on: images x epochs x H x W) at the default net's rate."""
    return time_budget is not None and time_budget <= limit and work > time_budget * FASTNET_PIXELS_PER_S


def fastnet_kwargs(short: bool = False) -> dict[str, object]:
    """The fast net's shape (``short``: a budget that ``short_budget`` calls short), recorded in model.json so an
    artifact rebuilds the net it was trained as."""
    return {
        "widths": list(FASTNET_SHORT_WIDTHS if short else FASTNET_WIDTHS),
        "stem_width": FASTNET_SHORT_STEM if short else FASTNET_STEM,
        "activation": FASTNET_ACTIVATION,
    }


@register_model("fastnet")
def fastnet(
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 224,
    mean: Stats = None,
    std: Stats = None,
    widths: Sequence[int] = FASTNET_WIDTHS,
    stem_width: int = FASTNET_STEM,
    activation: str = FASTNET_ACTIVATION,
) -> nn.Module:
    """Stem conv 3x3 -> three conv groups (each halves the map) -> global max-pool -> linear."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"fastnet activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False),
        nn.BatchNorm2d(stem_width, momentum=BN_MOMENTUM),
        ACTIVATIONS[activation](),
    ]
    cin = stem_width
    for width in widths:
        layers.append(_ConvGroup(cin, width, activation))
        cin = width
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    head = nn.Sequential(nn.Linear(cin, num_classes, bias=False), _Scale(1 / 9))
    return Classifier(_defaults(in_channels, mean, std), nn.Sequential(*layers), head)


@register_model("fastnet_wide")
def fastnet_wide(
    num_classes: int, in_channels: int = 3, image_size: int = 224, mean: Stats = None, std: Stats = None
) -> nn.Module:
    """The fast net at airbench94's GPU widths (64/256/256, stem 32; ~2 M parameters): ~7x the CPU default's
    compute, for GPUs (``python -m bench train_gpu``), where the small net leaves the card idle."""
    return fastnet(
        num_classes, in_channels, image_size, mean, std, widths=(64, 256, 256), stem_width=32, activation="gelu"
    )


# --- torchvision-layout ResNet (v1, post-activation) for ImageNet weights ------------------------------------
# torchvision's published ImageNet ResNets are the original post-activation design; the registry's resnet<N>
# is pre-activation, so their weights cannot be mapped onto it. These modules use torchvision's exact
# attribute names (conv1, bn1, layer1.0.conv1, ..., downsample.0/1, fc) so its state dicts load unchanged.
# Stride sits on the 3x3 convolution of a bottleneck ("ResNet v1.5"), as in torchvision.
class TorchvisionBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + skip)


class TorchvisionBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + skip)


class TorchvisionResNet(nn.Module):
    """``normalize`` then torchvision's ResNet; ``fc`` is the classifier ``use_pretrained_model`` replaces."""

    classifier_name = "fc"

    def __init__(self, normalize: Normalize, num_layers: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if num_layers not in TORCHVISION_DEPTHS:
            raise ValueError(f"torchvision ResNets have 18/34/50/101/152 layers, not {num_layers}")
        block: type[TorchvisionBasicBlock] | type[TorchvisionBottleneck] = (
            TorchvisionBottleneck if num_layers >= 50 else TorchvisionBasicBlock
        )
        self.normalize = normalize
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for stage, (count, width) in enumerate(zip(_IMAGENET_UNITS[num_layers], (64, 128, 256, 512), strict=True)):
            stride = 1 if stage == 0 else 2
            downsample = None
            if stride != 1 or cin != width * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(cin, width * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(width * block.expansion),
                )
            blocks = [block(cin, width, stride, downsample)]
            cin = width * block.expansion
            blocks += [block(cin, width, 1, None) for _ in range(count - 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


TORCHVISION_DEPTHS = (18, 34, 50, 101, 152)
# torchvision's ImageNet preprocessing, in pixel units: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
TORCHVISION_MEAN = [123.675, 116.28, 103.53]
TORCHVISION_STD = [58.395, 57.12, 57.375]


def torchvision_resnet(
    depth: int, num_classes: int, in_channels: int = 3, image_size: int = 224, mean: Stats = None, std: Stats = None
) -> nn.Module:
    """torchvision's ResNet (the layout ImageNet checkpoints exist for), normalising as torchvision does."""
    rgb = in_channels == 3
    normalize = _defaults(
        in_channels, mean or (TORCHVISION_MEAN if rgb else None), std or (TORCHVISION_STD if rgb else None)
    )
    return TorchvisionResNet(normalize, depth, num_classes, in_channels)


for _depth in TORCHVISION_DEPTHS:
    register_model(f"resnet{_depth}_v1")(functools.partial(torchvision_resnet, _depth))
register_model("efficientnet_lite0")(efficientnet_lite0)


def classifier_name(model: nn.Module) -> str:
    """The attribute holding the final classifier layer (``head`` for ``Classifier``-shaped networks)."""
    return str(getattr(model, "classifier_name", "head"))


def model_name(architecture: str, num_layers: int, pretrained: bool = False) -> str:
    """Registry name for resolved hyperparameters.

    ``use_pretrained_model=1`` with a ResNet picks the torchvision-layout ``resnet<N>_v1`` (what ImageNet
    checkpoints exist for); EfficientNet-Lite0 is one network with or without pretrained weights.
    """
    if architecture == "fast":
        return "fastnet"
    if architecture == "efficientnet_lite0":
        return "efficientnet_lite0"
    return f"resnet{num_layers}_v1" if pretrained else f"resnet{num_layers}"
