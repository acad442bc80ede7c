"""Layers more than one network module shares (kept apart so the network modules never import each other)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Per-channel mean or std in pixel units (None: the network's default).
Stats = Sequence[float] | None


class Normalize(nn.Module):
    """Pixels 0..255 -> (x - mean) / std per channel. ``mean``/``std`` are in pixel units."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std
