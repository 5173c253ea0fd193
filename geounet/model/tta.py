"""Test-time augmentation: average a model over the 8 flips and 90-degree rotations of its input.

Aerial images have no "up", so the model should give the same answer for every dihedral
view of a window; averaging the views' probabilities cancels much of its orientation noise
at 8x the compute. The wrapper returns logits again (of the averaged probabilities), so it
drops into any code that runs a geounet model.
"""

from __future__ import annotations

import torch
from torch import nn


class DihedralTTA(nn.Module):
    """Wraps a (B, C, H, W) -> (B, K, H, W) logits model; square inputs keep their shape under rotation."""

    def __init__(self, model: nn.Module, views: int = 8):
        super().__init__()
        if views not in (1, 2, 4, 8):
            raise ValueError("views must be 1, 2, 4 or 8")
        self.model = model
        self.views = views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for i in range(self.views):
            k, flip = i % 4, i >= 4
            if self.views == 2:
                k, flip = 0, i == 1
            v = torch.flip(x, dims=(-1,)) if flip else x
            v = torch.rot90(v, k, dims=(-2, -1)) if k else v
            p = torch.sigmoid(self.model(v.contiguous(memory_format=torch.channels_last)).float())
            p = torch.rot90(p, -k, dims=(-2, -1)) if k else p
            p = torch.flip(p, dims=(-1,)) if flip else p
            total = p if total is None else total + p
        return torch.logit(total / self.views, eps=1e-6)
