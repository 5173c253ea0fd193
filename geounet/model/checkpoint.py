"""Self-describing checkpoints: weights plus the typed config that rebuilds model and preprocessing.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, saved with
``torch.save`` and read back with ``torch.load(weights_only=True)``, so loading one
never executes code from the file.
"""

from __future__ import annotations

import os
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..config import CheckpointInfo, ModelConfig, Preprocessing
from ..errors import CheckpointError, first_line
from .unet import UNet, build_model

FORMAT = "geounet-checkpoint"
FORMAT_VERSION = 1
DEFAULT_MODEL = "default.pt"


def default_model_path() -> Path:
    """Path of the model shipped inside the package."""
    return Path(str(resources.files("geounet") / "models" / DEFAULT_MODEL))


def bundled_models() -> list[str]:
    """Names of the models shipped inside the package (``default``, ``multiscale``, ...)."""
    return sorted(p.name[:-3] for p in resources.files("geounet").joinpath("models").iterdir() if p.name.endswith(".pt"))


def model_path(name_or_path: str | os.PathLike | None) -> Path:
    """The checkpoint file for ``--model``: None is the default model, a bare name of a bundled
    model (``multiscale``) is that model, anything else a path. A file of that name in the working
    folder wins over a bundled model of the same name."""
    if name_or_path is None:
        return default_model_path()
    p = Path(name_or_path)
    if not p.exists() and str(name_or_path) in bundled_models():
        return Path(str(resources.files("geounet") / "models" / f"{name_or_path}.pt"))
    return p


def checkpoint_dict(
    model: torch.nn.Module,
    model_config: ModelConfig,
    preprocessing: Preprocessing,
    *,
    metrics: dict[str, float] | None = None,
    epoch: int = 0,
    extra: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict that :func:`save_checkpoint` writes; ``extra`` holds resumable training state, ``init``
    what a fine-tuned model started from (``geounet train --init``)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    out = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "geounet_version": __version__,
        "model": model_config.to_dict(),
        "preprocessing": preprocessing.to_dict(),
        "metrics": dict(metrics or {}),
        "epoch": int(epoch),
        "state_dict": state,
    }
    if extra:
        out["train_state"] = extra
    if init:
        out["init"] = init
    return out


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> None:
    """Write ``ckpt`` atomically: a temporary file beside ``path``, renamed when complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_checkpoint(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read and validate a checkpoint dict (the bundled default model when ``path`` is None)."""
    path = model_path(path)
    if not path.exists():
        raise CheckpointError("checkpoint not found", path)
    if path.is_dir():
        raise CheckpointError("is a directory, not a checkpoint file", path)
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notice would precede our one-line error
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign pickles
        raise CheckpointError(f"not a readable geounet checkpoint ({first_line(exc)[:120]})", path) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError("not a geounet checkpoint (no geounet header)", path)
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {ckpt['format_version']} is newer than this geounet "
            f"({__version__}) reads; upgrade geounet",
            path,
        )
    for key in ("model", "preprocessing", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint lacks '{key}'", path)
    return ckpt


def checkpoint_info(ckpt: dict[str, Any], path: str | os.PathLike | None = None) -> CheckpointInfo:
    """The typed description stored in a checkpoint dict."""
    try:
        return CheckpointInfo(
            model=ModelConfig.from_dict(ckpt["model"]),
            preprocessing=Preprocessing.from_dict(ckpt["preprocessing"]),
            metrics=dict(ckpt.get("metrics", {})),
            geounet_version=str(ckpt.get("geounet_version", "")),
            epoch=int(ckpt.get("epoch", 0)),
            path=None if path is None else os.fspath(path),
            init=ckpt.get("init"),
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid model settings in checkpoint ({exc})", path) from None


def model_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike | None = None) -> tuple[UNet, CheckpointInfo]:
    """Rebuild the U-Net from a checkpoint dict and load its weights (train mode, CPU)."""
    info = checkpoint_info(ckpt, path)
    model = build_model(info.model)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"weights do not fit the stored model settings ({first_line(exc)[:120]})", path) from None
    return model, info


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> tuple[UNet, CheckpointInfo]:
    """Load a checkpoint (default: the bundled model; a bare name: that bundled model, see
    :func:`model_path`) and return ``(model in eval mode, info)``."""
    resolved = model_path(path)
    model, info = model_from_checkpoint(read_checkpoint(resolved), resolved)
    return model.to(device).eval(), info
