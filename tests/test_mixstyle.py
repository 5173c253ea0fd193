"""MixStyle (``geounet train --mixstyle P``): the content of each window's features is kept and only its
per-channel statistics move towards another window's; it acts in training mode only, so validation,
checkpoints and predict are untouched."""

import torch
from click.testing import CliRunner

import geounet
from geounet.cli import cli
from geounet.config import ModelConfig
from geounet.model import build_model
from geounet.train.mixstyle import BLOCKS, MixStyleHooks, mixstyle

from test_train import train_args


def batch_of_styles() -> torch.Tensor:
    """Four windows of the same shapes, each with its own per-channel offset and contrast."""
    g = torch.Generator().manual_seed(3)
    content = torch.randn(1, 6, 16, 16, generator=g).expand(4, -1, -1, -1)
    gain = torch.tensor([0.5, 1.0, 2.0, 4.0]).view(4, 1, 1, 1)
    offset = torch.tensor([-3.0, 0.0, 1.0, 5.0]).view(4, 1, 1, 1)
    return content * gain + offset


def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dim=(2, 3)), x.var(dim=(2, 3)).add(1e-6).sqrt()


def test_mixstyle_keeps_the_content_and_mixes_only_the_statistics():
    torch.manual_seed(0)
    x = batch_of_styles()
    y = mixstyle(x)
    mx, sx = stats(x)
    my, sy = stats(y)
    # the normalised features (what a building is) are those of the input, window by window
    assert torch.allclose((y - my[..., None, None]) / sy[..., None, None],
                          (x - mx[..., None, None]) / sx[..., None, None], atol=1e-4)
    # each new mean lies between the window's own and some window's mean of the batch
    lo, hi = mx.min(dim=0).values, mx.max(dim=0).values
    assert ((my >= lo - 1e-4) & (my <= hi + 1e-4)).all()
    assert not torch.allclose(my, mx)  # with Beta(0.1, 0.1) and 4 windows, some styles moved
    assert torch.equal(mixstyle(x[:1]), x[:1])  # one window: nothing to mix


def test_mixstyle_keeps_the_dtype_under_autocast():
    x = batch_of_styles().to(torch.bfloat16)
    assert mixstyle(x).dtype == torch.bfloat16


def test_hooks_act_in_training_mode_only_and_come_off():
    torch.manual_seed(0)
    model = build_model(ModelConfig(in_channels=3, out_channels=1, width=4, depth=2, outputs=("building",)))
    x = torch.randn(4, 3, 32, 32) * torch.tensor([0.2, 1.0, 3.0, 6.0]).view(4, 1, 1, 1)
    model.eval()
    plain_eval = model(x)
    hooks = MixStyleHooks(model, p=1.0)
    assert len(hooks.handles) == BLOCKS
    assert torch.equal(model(x), plain_eval)  # eval: validation and predict see the model as it is
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    torch.manual_seed(1)
    mixed = model(x)
    model.load_state_dict(state)  # undo the BatchNorm running statistics of that pass
    hooks.remove()
    torch.manual_seed(1)
    plain_train = model(x)
    assert not torch.allclose(mixed, plain_train)
    off = MixStyleHooks(model, p=0.0)
    model.load_state_dict(state)
    torch.manual_seed(1)
    assert torch.equal(model(x), plain_train)  # p = 0 changes nothing
    off.remove()


def test_train_with_mixstyle_records_it_and_refuses_a_bad_probability(scene, tmp_path):
    tif, labels = scene
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, [str(a) for a in train_args(tif, labels, out, "--epochs", "1", "--mixstyle", "1")])
    assert res.exit_code == 0, res.output
    assert torch.load(out / "last.pt", weights_only=False)["train_state"]["config"]["mixstyle"] == 1.0
    model, _ = geounet.load_model(out / "best.pt")
    assert not any(m._forward_hooks for m in model.modules())  # the saved model carries no hook
    res = CliRunner().invoke(cli, [str(a) for a in train_args(tif, labels, tmp_path / "bad", "--mixstyle", "1.5")])
    assert res.exit_code != 0 and "--mixstyle" in res.output and "Traceback" not in res.output
