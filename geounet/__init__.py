"""geounet: find buildings in large aerial GeoTIFFs with a U-Net."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def load_model(path=None, device="cpu"):
    """Load a geounet checkpoint (the bundled default model when ``path`` is None).

    Returns ``(model, info)``: the U-Net in eval mode on ``device`` and the
    :class:`geounet.config.CheckpointInfo` that describes its bands, normalisation,
    pixel size and training metrics. Loading never executes code from the file.
    """
    from .model.checkpoint import load_model as _load

    return _load(path, device=device)
