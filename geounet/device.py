"""Choosing the torch device and the mixed-precision context, shared by train and predict.

- :func:`resolve_device` turns ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a
  :class:`torch.device`, refusing CUDA when none is available (a :class:`ConfigError`,
  so the CLI prints one line instead of a CUDA traceback).
- :func:`autocast` returns a ``torch.autocast`` context: bfloat16 on CPU (on recent x86
  CPUs a width-16 U-Net runs about 3.6x faster than fp32, with identical masks), and
  on CUDA bfloat16 where the GPU supports it, else float16. fp16 training needs a
  ``GradScaler``; :func:`needs_grad_scaler` says when.
- :func:`cudnn_autotune`, :func:`torch_threads` and :func:`private_rng`: process-wide torch settings
  (cuDNN's autotuner, the number of CPU threads, the global random generator) changed only within a
  block and restored after it, so a Python caller of geounet keeps its own settings.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

__all__ = ["resolve_device", "autocast_dtype", "autocast", "needs_grad_scaler", "channels_last", "cudnn_autotune",
           "torch_threads", "private_rng"]


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; ``"cuda"`` without a GPU raises ConfigError."""
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device '{name}' (use auto, cpu or cuda)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA GPU is available to torch")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name} does not exist ({torch.cuda.device_count()} CUDA device(s))")
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device '{name}' (use auto, cpu or cuda)")
    return dev


def autocast_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 on CPU; on CUDA bfloat16 when supported, else float16."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device | str, enabled: bool = True):
    """A ``torch.autocast`` context for ``device`` (a no-op context when disabled)."""
    dev = torch.device(device)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=autocast_dtype(dev), enabled=True)


def needs_grad_scaler(device: torch.device | str, enabled: bool = True) -> bool:
    """True when autocast would train in float16 (CUDA without bf16), which needs a GradScaler."""
    return bool(enabled) and autocast_dtype(device) == torch.float16


def channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Put ``model``'s 4-D weights in channels-last memory format (faster convs on CPU and CUDA)."""
    return model.to(memory_format=torch.channels_last)


@contextlib.contextmanager
def cudnn_autotune(device: torch.device | str):
    """On CUDA, cuDNN's autotuner (``torch.backends.cudnn.benchmark``) on within the block: windows all
    have one shape, so the fastest convolution algorithms are found once. The caller's setting is
    restored after the block; elsewhere nothing is changed."""
    if torch.device(device).type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch's CPU threads (``torch.set_num_threads``) set to ``n`` within the block (None: left as they
    are); the caller's number is restored after it."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def private_rng():
    """A block after which torch's global CPU random generator is back in the caller's state, whatever
    the block drew from it or seeded it with (a new model's initial weights). geounet draws nothing
    from CUDA's generators."""
    return torch.random.fork_rng(devices=[])
