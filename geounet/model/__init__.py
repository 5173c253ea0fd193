"""The model: the U-Net (:mod:`.unet`), self-describing checkpoints (:mod:`.checkpoint`) and
test-time augmentation (:mod:`.tta`).

Choosing the torch device and autocast stays in :mod:`geounet.device`: train and predict
both use it for more than the model (batches, pinned memory, grad scaling). The bundled
weights stay in ``geounet/models/`` (package data).
"""

from .checkpoint import load_model
from .tta import DihedralTTA
from .unet import UNet, build_model

__all__ = ["UNet", "build_model", "load_model", "DihedralTTA"]
