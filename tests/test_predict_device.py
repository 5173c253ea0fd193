"""geounet.device: device resolution and the autocast context (shared by train and predict)."""

import pytest
import torch

from geounet.device import autocast, autocast_dtype, needs_grad_scaler, resolve_device
from geounet.errors import ConfigError


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected


def test_cuda_is_refused_without_a_gpu():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")


def test_unknown_device_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")


def test_cpu_autocast_is_bf16_and_can_be_disabled():
    a = torch.ones(4, 4)
    with autocast("cpu"):
        assert torch.mm(a, a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), enabled=False):
        assert torch.mm(a, a).dtype == torch.float32
    assert autocast_dtype("cpu") == torch.bfloat16
    assert not needs_grad_scaler("cpu")
