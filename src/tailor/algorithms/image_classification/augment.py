"""Batch augmentations of the training loop, on whole uint8 / float batches on the training device (never per
image in Python): random crop +-2 px with horizontal flip (flips only under a time budget of 300 s or less,
where translation measured 0.8-0.9 points worse: train.FLIPS_ONLY_BUDGET_S), colour jitter and small affine
transforms."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PAD = 2  # random-crop translation in pixels (airbench / docs/MEASURED.md recipe)


def crop_flip(images: torch.Tensor, gen: torch.Generator, pad: int = PAD) -> torch.Tensor:
    """Random translation by up to ``pad`` px (zero pad + crop) and horizontal flip, for a whole uint8 set at once;
    ``pad`` 0 only flips."""
    out = translate(images, gen, pad) if pad else images.clone()
    flip = (torch.rand(images.shape[0], generator=gen) < 0.5).to(images.device)
    out[flip] = out[flip].flip(3)
    return out


def translate(images: torch.Tensor, gen: torch.Generator, pad: int) -> torch.Tensor:
    """Each image shifted by a random offset of up to ``pad`` px in x and y, zero-filled (uint8 in, uint8 out)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(images.device)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(images.device)
    out = torch.empty_like(images)
    for oy in range(2 * pad + 1):  # (2 pad + 1)^2 shifted slices (25 at pad 2) instead of n Python-level crops
        for ox in range(2 * pad + 1):
            idx = ((dy == oy) & (dx == ox)).nonzero().squeeze(1)
            if idx.numel():
                out[idx] = padded[idx, :, oy : oy + h, ox : ox + w]
    return out


def color_jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness and contrast +-20 %, saturation +-40 % (RGB only), on a float 0..255 batch."""
    n = x.shape[0]

    def rand(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=gen)).to(x.device)

    x = x * rand(0.8, 1.2)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * rand(0.8, 1.2) + mean
    if x.shape[1] == 3:
        gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).expand_as(x)
        x = (x - gray) * rand(0.6, 1.4) + gray
    return x.clamp(0, 255)


def random_affine(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """SageMaker's crop_color_transform extras: rotation <= 10 deg, shear <= 0.1, aspect ratio change <= 0.25."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(10)
    shear = (torch.rand(n, generator=gen) * 2 - 1) * 0.1
    aspect = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.25
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * aspect.sqrt(), -sin + shear
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos / aspect.sqrt()
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
