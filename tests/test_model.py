import pytest
import torch

from geounet.config import ModelConfig
from geounet.model import UNet


@pytest.mark.parametrize("width,depth,bands", [(4, 1, 3), (8, 2, 4), (16, 4, 3), (4, 5, 1)])
def test_output_shape_matches_input(width, depth, bands):
    m = UNet(ModelConfig(in_channels=bands, width=width, depth=depth)).eval()
    side = 2**depth * 3
    x = torch.randn(2, bands, side, 2 * side)
    assert m(x).shape == (2, 1, side, 2 * side)


def test_returns_logits_not_probabilities():
    m = UNet(ModelConfig(width=4, depth=2)).eval()
    with torch.no_grad():
        m.head.bias.fill_(5.0)
        m.head.weight.zero_()
        out = m(torch.randn(1, 3, 16, 16))
    assert torch.allclose(out, torch.full_like(out, 5.0))


def test_rejects_sides_not_multiple_of_2_pow_depth():
    m = UNet(ModelConfig(width=4, depth=3))
    with pytest.raises(ValueError, match="multiples of 8"):
        m(torch.randn(1, 3, 20, 24))


def test_seed_architecture_blocks():
    m = UNet(ModelConfig(width=64, depth=4))
    # Seed article: 64-128-256-512 encoder, 1024 bottleneck, transposed 2x2 convs halving channels.
    assert [d.conv[0].out_channels for d in m.downs] == [64, 128, 256, 512]
    assert m.bottleneck[0].out_channels == 1024
    ups = [(u.up.in_channels, u.up.out_channels, u.up.kernel_size) for u in m.ups]
    assert ups == [(1024, 512, (2, 2)), (512, 256, (2, 2)), (256, 128, (2, 2)), (128, 64, (2, 2))]
    assert m.head.kernel_size == (1, 1)


def test_width_scales_parameters():
    n16 = sum(p.numel() for p in UNet(ModelConfig(width=16)).parameters())
    n32 = sum(p.numel() for p in UNet(ModelConfig(width=32)).parameters())
    assert 3.5 < n32 / n16 < 4.5
