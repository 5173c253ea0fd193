import torch
from torch import nn

from geounet.config import ModelConfig
from geounet.model import UNet
from geounet.model.tta import DihedralTTA


class Asymmetric(nn.Module):
    """Logit = a left-to-right ramp times the first band: not invariant to flips or rotations."""

    def forward(self, x):
        ramp = torch.linspace(-2, 2, x.shape[-1]).expand(x.shape[-2], -1)
        return (x[:, :1] * ramp).float()


def test_averages_the_eight_views():
    x = torch.rand(1, 3, 8, 8)
    out = torch.sigmoid(DihedralTTA(Asymmetric())(x))
    views = []
    for k in range(4):
        for flip in (False, True):
            v = torch.flip(x, (-1,)) if flip else x
            p = torch.sigmoid(Asymmetric()(torch.rot90(v, k, (-2, -1))))
            p = torch.rot90(p, -k, (-2, -1))
            views.append(torch.flip(p, (-1,)) if flip else p)
    assert torch.allclose(out, torch.stack(views).mean(0), atol=1e-5)


def test_invariant_output_for_a_symmetric_input():
    m = UNet(ModelConfig(width=4, depth=2, out_channels=3, outputs=("building", "border", "contact"))).eval()
    x = torch.ones(2, 3, 16, 16)
    x[:, :, 4:12, 4:12] = 3.0  # symmetric under every flip and rotation
    with torch.no_grad():
        out = DihedralTTA(m)(x)
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out, torch.rot90(out, 1, (-2, -1)), atol=1e-4)
    assert torch.allclose(out, torch.flip(out, (-1,)), atol=1e-4)


def test_predict_cli_tta(tmp_path):
    import rasterio
    from click.testing import CliRunner

    from geounet.cli import cli
    from helpers_predict import prep, save_unet, scene, write_raster

    torch.manual_seed(1)
    model = UNet(ModelConfig(width=4, depth=2)).eval()
    ckpt = save_unet(tmp_path / "m.pt", model, prep(tile=64))
    tif = write_raster(tmp_path / "s.tif", scene((128, 128), rects=((20, 20, 60, 90),)))
    probs = {}
    for tta in (False, True):
        out = tmp_path / f"b{tta}.geojson"
        p = tmp_path / f"p{tta}.tif"
        args = ["predict", str(tif), "-o", str(out), "--model", str(ckpt), "--probs", str(p), "--min-area", "0"]
        res = CliRunner().invoke(cli, args + (["--tta"] if tta else []))
        assert res.exit_code == 0, res.output
        assert ("8 views" in res.stderr) == tta
        with rasterio.open(p) as src:
            probs[tta] = src.read(1).astype(int)
    assert (probs[True] != probs[False]).any()
