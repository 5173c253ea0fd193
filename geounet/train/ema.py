"""An exponential moving average of the weights (``geounet train --ema DECAY``).

After every optimizer step the average moves towards the trained weights::

    average <- decay * average + (1 - decay) * weights        (the first step copies the weights)

so it is a weighted mean over about the last ``1 / (1 - decay)`` steps (0.999: 1,000 steps), BatchNorm
statistics included. Averages of weights along one run sit nearer the middle of a flat minimum than
the last weights do, which is what transfers to unseen domains in the domain-generalisation
literature (SWA, SWAD); whether it does so for buildings is measured in docs/model.md.

With an average, the run validates both: ``best.pt`` holds the average at its best validation IoU
(what predict gets), ``best_raw.pt`` the trained weights at theirs, so one run compares the two on
the same trajectory (the average never changes the training). ``last.pt`` holds the trained weights,
and the average in its training state, so ``--resume`` continues both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["weight_average"]


def weight_average(model: torch.nn.Module, decay: float, saved: dict[str, Any] | None = None) -> AveragedModel:
    """The average of ``model``'s weights (torch's :class:`~torch.optim.swa_utils.AveragedModel` with the EMA
    update, buffers averaged too; its ``module`` is the averaged model), or the one ``saved`` in a last.pt
    (its ``state_dict()``)."""
    avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    if saved is not None:
        avg.load_state_dict(saved)
    return avg.eval()
