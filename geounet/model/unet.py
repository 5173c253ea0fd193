"""The U-Net of the seed documents, with configurable width and depth.

Encoder blocks: two 3x3 conv + BatchNorm + ReLU, then 2x2 max-pool; a bottleneck double
conv; decoder blocks: 2x2 transposed conv, concatenated skip connection, two 3x3 convs;
a 1x1 output conv. ``forward`` returns logits: the sigmoid belongs to the loss and to
inference.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig


class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice; padding keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Module):
    """Double conv, then 2x2 max-pool; returns (skip, pooled)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = DoubleConv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.conv(x)
        return skip, self.pool(skip)


class Up(nn.Module):
    """2x2 transposed conv halving the channels, concatenate the skip, double conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """U-Net returning one logit map per output channel, same height and width as the input."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths = [config.width * 2**i for i in range(config.depth + 1)]
        self.downs = nn.ModuleList()
        ch = config.in_channels
        for w in widths[:-1]:
            self.downs.append(Down(ch, w))
            ch = w
        self.bottleneck = DoubleConv(ch, widths[-1])
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(config.depth)))
        self.head = nn.Conv2d(widths[0], config.out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.config.multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"input sides {tuple(x.shape[-2:])} must be multiples of {m} (2**depth)")
        skips = []
        for down in self.downs:
            skip, x = down(x)
            skips.append(skip)
        x = self.bottleneck(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return self.head(x)


def build_model(config: ModelConfig) -> UNet:
    """A freshly initialised U-Net for ``config``."""
    return UNet(config)
