"""The model as prediction runs it: BatchNorm folded into the convolutions before it, channels-last.

In eval mode a BatchNorm layer is a fixed per-channel affine map, ``y = (x - mean) / sqrt(var + eps) * gamma
+ beta``; after a convolution it can be multiplied into that convolution's weights and bias (the
convolution then computes ``y`` directly, :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`), which saves
one pass over every activation map per layer: 18 of them in a depth-4 U-Net. The result equals the
unfolded model up to float rounding; its masks agree with the unfolded model's at IoU >= 0.99 on real
imagery (tests/test_inference.py; docs/benchmarks.md, "A faster model at equal masks").

Folding fixes the BatchNorm statistics, so it must come after anything that re-estimates them
(``predict --adapt``): :func:`geounet.predict.driver.predict_raster` adapts first, then folds.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "inference_model", "to_channels_last"]


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    """Whether ``bn`` (directly after ``conv``) is a fixed affine map that can go into ``conv``'s weights."""
    return (
        type(conv) is nn.Conv2d
        and isinstance(bn, nn.BatchNorm2d)
        and not conv.training
        and not bn.training  # in training mode BatchNorm uses the batch's statistics: nothing fixed to fold
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == conv.out_channels
    )


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` in an
    ``nn.Sequential`` folded into that convolution (the BatchNorm becomes ``nn.Identity``). ``model`` itself
    is left untouched; it is returned as it is when it has nothing to fold (no copy made)."""
    pairs = [
        (seq, i)
        for seq in model.modules()
        if isinstance(seq, nn.Sequential)
        for i in range(len(seq) - 1)
        if _foldable(seq[i], seq[i + 1])
    ]
    if not pairs:
        return model
    memo: dict[int, object] = {}
    net = copy.deepcopy(model, memo)
    for seq, i in pairs:
        twin = memo[id(seq)]  # the same Sequential in the copy
        with torch.no_grad():
            twin[i] = fuse_conv_bn_eval(twin[i], twin[i + 1])
        twin[i + 1] = nn.Identity()
    return net


def inference_model(model: nn.Module) -> nn.Module:
    """``model`` as prediction runs it: BatchNorm folded (:func:`fold_batchnorm`, a copy) and the weights
    in channels-last memory format (faster convolutions on CPU and CUDA). ``model`` is left untouched."""
    net = fold_batchnorm(model)
    return model if net is model else to_channels_last(net)


def to_channels_last(net: nn.Module) -> nn.Module:
    """``net`` with its weights in channels-last memory format (in place), or as it is when a module cannot
    take that format: channels-last is only a speed-up."""
    try:
        return net.to(memory_format=torch.channels_last)
    except Exception:  # noqa: BLE001 - any module works, channels-last is only a speed-up
        return net
