"""Self-describing checkpoints: weights plus the typed config that rebuilds model and preprocessing.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, saved with
``torch.save`` and read back with ``torch.load(weights_only=True)``, so loading one
never executes code from the file.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import warnings
import zipfile
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
# names that still work after the model they named became another: ``multiscale`` was the all-places,
# 0.2-0.5 m recipe's model before it became the default (2026-11-30)
MODEL_ALIASES = {"multiscale": "default"}


def default_model_path() -> Path:
    """Path of the model shipped inside the package."""
    return Path(str(resources.files("geounet") / "models" / DEFAULT_MODEL))


def bundled_models() -> list[str]:
    """Names of the models shipped inside the package (``default``, ``fine-0.14m``) and their aliases."""
    files = [p.name[:-3] for p in resources.files("geounet").joinpath("models").iterdir() if p.name.endswith(".pt")]
    return sorted(set(files) | {alias for alias, name in MODEL_ALIASES.items() if name in files})


def model_path(name_or_path: str | os.PathLike | None) -> Path:
    """The checkpoint file for ``--model``: None is the default model, a bare name of a bundled
    model (``fine-0.14m``, or an alias such as ``multiscale``) is that model, anything else a path. A
    file of that name in the working folder wins over a bundled model of the same name."""
    if name_or_path is None:
        return default_model_path()
    p = Path(name_or_path)
    if not p.exists() and str(name_or_path) in bundled_models():
        name = MODEL_ALIASES.get(str(name_or_path), str(name_or_path))
        return Path(str(resources.files("geounet") / "models" / f"{name}.pt"))
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
        raise CheckpointError(_unreadable(path, exc), path) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            "not a geounet checkpoint: a PyTorch file made by another program (no geounet header; "
            "geounet train writes checkpoints)", path)
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


def _unreadable(path: Path, exc: BaseException) -> str:
    """What is wrong with a file ``torch.load(weights_only=True)`` refused, in our words (torch's text is long)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot read checkpoint ({err.strerror or err})"
    if not head:
        return "empty file, not a checkpoint"
    if head != b"PK\x03\x04" and head[0] != 0x80:  # neither torch's zip format nor its older pickle format
        return "not a checkpoint (not a file PyTorch writes)"
    if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower() and _parses(path, head):
        return ("not a geounet checkpoint: it holds Python objects, not only weights (made by another program, "
                "or crafted); reading them needs torch.load(weights_only=False), which could run code from the "
                "file, so it was not loaded")
    if head == b"PK\x03\x04":
        if not zipfile.is_zipfile(path):
            return "truncated or damaged checkpoint (its zip archive is incomplete): copy or download it again"
        return "a zip archive but not a PyTorch checkpoint"
    return "truncated or damaged checkpoint (its pickle data ends early or is corrupt): copy or download it again"


def _parses(path: Path, head: bytes) -> bool:
    """Whether the file's pickle (``data.pkl`` in torch's zip format) is whole: read opcode by opcode, never run."""
    try:
        if head == b"PK\x03\x04":
            with zipfile.ZipFile(path) as z:
                name = next(n for n in z.namelist() if n.endswith("data.pkl"))
                data = z.read(name)
        else:
            data = path.read_bytes()
        for _ in pickletools.genops(data):
            pass
    except Exception:  # noqa: BLE001 - any failure means the pickle is damaged
        return False
    return True


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
