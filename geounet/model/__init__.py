"""The model: the U-Net (:mod:`.unet`), self-describing checkpoints (:mod:`.checkpoint`),
test-time augmentation (:mod:`.tta`) and the model as prediction runs it, BatchNorm folded (:mod:`.inference`).

Choosing the torch device and autocast stays in :mod:`geounet.device`: train and predict
both use it for more than the model (batches, pinned memory, grad scaling). The bundled
weights stay in ``geounet/models/`` (package data).
"""

from .checkpoint import load_model
from .inference import fold_batchnorm, inference_model
from .tta import DihedralTTA
from .unet import UNet, build_model

__all__ = ["UNet", "build_model", "load_model", "DihedralTTA", "fold_batchnorm", "inference_model"]
