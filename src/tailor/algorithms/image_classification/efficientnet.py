"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for CPUs and accelerators).

Lite differs from EfficientNet-B0 in what makes it quantisation- and CPU-friendly: no squeeze-and-excitation,
ReLU6 instead of swish, and a fixed stem (32) and head (1280) width. 4.65 M parameters, 0.4 GFLOPs at 224 px.

Layout (expand ratio, kernel, stride, output channels, repeats) per stage, as in the reference:
    (1,3,1,16,1) (6,3,2,24,2) (6,5,2,40,2) (6,3,2,80,3) (6,5,1,112,3) (6,5,2,192,4) (6,3,1,320,1)

Strided convolutions use TensorFlow's "SAME" padding (asymmetric: the extra pixel goes right/bottom), as the
ImageNet weights were trained with; symmetric padding shifts every stride-2 feature map by half a pixel.
BatchNorm eps is 1e-3 (TensorFlow's), also what the weights expect.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tailor.algorithms.image_classification.layers import Normalize, Stats

STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4))
STAGES = (*STAGES, (6, 3, 1, 320, 1))
STEM, HEAD = 32, 1280
BN_EPS = 1e-3
DROPOUT = 0.2


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding, computed from the input size (constant once traced for ONNX)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
        pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project; identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = SameConv2d(cin, mid, 1) if expand != 1 else None
        self.expand_bn = _bn(mid) if expand != 1 else None
        self.depthwise = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self.depthwise_bn = _bn(mid)
        self.project = SameConv2d(mid, cout, 1)
        self.project_bn = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand is not None and self.expand_bn is not None:
            out = self.act(self.expand_bn(self.expand(out)))
        out = self.act(self.depthwise_bn(self.depthwise(out)))
        out = self.project_bn(self.project(out))
        return out + x if self.skip else out


class EfficientNetLite(nn.Module):
    """``normalize -> stem -> blocks -> head conv -> pool -> dropout -> classifier``.

    ``classifier`` is the layer ``use_pretrained_model=1`` re-initialises for ``num_classes``.
    """

    classifier_name = "classifier"

    def __init__(self, normalize: nn.Module, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.normalize = normalize
        self.stem = SameConv2d(in_channels, STEM, 3, 2)
        self.stem_bn = _bn(STEM)
        blocks: list[nn.Module] = []
        cin = STEM
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = SameConv2d(cin, HEAD, 1)
        self.head_bn = _bn(HEAD)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(DROPOUT)
        self.classifier = nn.Linear(HEAD, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem_bn(self.stem(self.normalize(x))))
        x = self.act(self.head_bn(self.head(self.blocks(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


def reference_key_map(num_blocks: int | None = None) -> dict[str, str]:
    """Reference (``_conv_stem``/``_blocks.N._depthwise_conv``/``_fc``) parameter prefix -> this module's."""
    n = num_blocks if num_blocks is not None else sum(s[4] for s in STAGES)
    mapping = {
        "_conv_stem.": "stem.",
        "_bn0.": "stem_bn.",
        "_conv_head.": "head.",
        "_bn1.": "head_bn.",
        "_fc.": "classifier.",
    }
    for i in range(n):
        mapping |= {
            f"_blocks.{i}._expand_conv.": f"blocks.{i}.expand.",
            f"_blocks.{i}._bn0.": f"blocks.{i}.expand_bn.",
            f"_blocks.{i}._depthwise_conv.": f"blocks.{i}.depthwise.",
            f"_blocks.{i}._bn1.": f"blocks.{i}.depthwise_bn.",
            f"_blocks.{i}._project_conv.": f"blocks.{i}.project.",
            f"_blocks.{i}._bn2.": f"blocks.{i}.project_bn.",
        }
    return mapping


def efficientnet_lite0(
    num_classes: int, in_channels: int = 3, image_size: int = 224, mean: Stats = None, std: Stats = None
) -> nn.Module:
    """EfficientNet-Lite0; ``mean``/``std`` default to the ImageNet weights' (pixel units)."""
    from_imagenet = in_channels == 3
    mean = mean if mean is not None else (IMAGENET_MEAN if from_imagenet else [127.5] * in_channels)
    std = std if std is not None else (IMAGENET_STD if from_imagenet else [64.0] * in_channels)
    return EfficientNetLite(Normalize(mean, std), num_classes, in_channels)


# What the Lite0 ImageNet weights expect: TensorFlow's Lite preprocessing (x - 127) / 128, not the usual
# ImageNet mean/std. Measured on 40 daisy photos (ImageNet class 985): top-1 85 % with 127/128, 75 % with
# mean (0.485, 0.456, 0.406) / std (0.229, 0.224, 0.225).
IMAGENET_MEAN = [127.0, 127.0, 127.0]
IMAGENET_STD = [128.0, 128.0, 128.0]
