"""MixStyle: mix the feature statistics of the windows of a batch while training, so the model learns
buildings without learning one camera's colours and contrasts (Zhou, Yang, Qiao and Xiang, "Domain
Generalization with MixStyle", ICLR 2021).

What a camera, its light and its processing change in an image shows up in early convolution layers mostly
as the per-channel mean and standard deviation of each window's features (its "style"); what a building is
lives in the normalised features. For a feature map ``x`` of a batch of B windows, with per-window,
per-channel statistics ``mu = mean_hw(x)`` and ``sigma = sqrt(var_hw(x) + eps)`` (not differentiated through):

    x' = sigma_mix * (x - mu) / sigma + mu_mix,
    mu_mix = l * mu + (1 - l) * mu[perm],   sigma_mix = l * sigma + (1 - l) * sigma[perm],

with ``perm`` a random permutation of the batch and ``l ~ Beta(alpha, alpha)`` one per window. Windows of
a batch come from different places (the sampler balances places), so each window is seen with a style
between its own and another place's: new cameras made from the ones in the data. It acts with probability
``p`` per batch, in training mode only; inference, checkpoints and the model's parameters are untouched.

Here it follows the first two encoder blocks' double convolutions, whose output is both the skip the
decoder reads and the input of the next block (the paper puts it after the first residual stages; style
fades with depth, so later blocks are left alone).
"""

from __future__ import annotations

import torch
from torch import nn

ALPHA = 0.1
"""Beta(alpha, alpha) of the mixing weight: mostly near 0 or 1 (one style or the other), sometimes between (the paper's value)."""
EPS = 1e-6
BLOCKS = 2
"""How many of the first encoder blocks get a MixStyle after them."""


def mixstyle(x: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """``x`` (B, C, H, W) with each window's per-channel mean and std mixed with another window's (formula
    in the module docstring). Statistics in float32 whatever ``x``'s dtype (bf16 under autocast)."""
    b = x.shape[0]
    if b < 2:
        return x
    xf = x.float()
    mu = xf.mean(dim=(2, 3), keepdim=True).detach()
    sigma = (xf.var(dim=(2, 3), keepdim=True) + EPS).sqrt().detach()
    lam = torch.distributions.Beta(alpha, alpha).sample((b, 1, 1, 1)).to(x.device)
    perm = torch.randperm(b).to(x.device)  # torch's generator, seeded by the run
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sigma_mix = lam * sigma + (1 - lam) * sigma[perm]
    return ((xf - mu) / sigma * sigma_mix + mu_mix).to(x.dtype)


class MixStyleHooks:
    """Forward hooks that apply :func:`mixstyle` with probability ``p`` to the output of the first
    :data:`BLOCKS` encoder blocks of a :class:`~geounet.model.unet.UNet`, only while the block is in
    training mode. ``remove()`` detaches them."""

    def __init__(self, model: nn.Module, p: float, alpha: float = ALPHA):
        self.p, self.alpha = p, alpha
        self.handles = [down.conv.register_forward_hook(self._hook) for down in list(model.downs)[:BLOCKS]]

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if not module.training or self.p <= 0 or torch.rand(()) >= self.p:
            return None
        return mixstyle(output, self.alpha)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
