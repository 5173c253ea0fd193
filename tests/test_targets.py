import numpy as np
import pytest

from geounet.train.targets import OUTPUTS_SEPARATION, derive_targets, instances_from_mask, radius_px


def two_touching():
    inst = np.zeros((30, 50), np.int32)
    inst[5:25, 5:24] = 1
    inst[5:25, 25:45] = 2  # one pixel of background between the two buildings
    return inst


def test_building_border_and_contact_channels():
    t = derive_targets(two_touching(), OUTPUTS_SEPARATION, 0.15)
    building, border, contact = (t[..., i].astype(bool) for i in range(3))
    assert (building == (two_touching() > 0)).all()
    # Border: a band on the outline of each building, never outside it, not in the middle.
    assert (border <= building).all()
    assert border[5, 10] and border[15, 5] and not border[15, 14]
    # Contact: the gap between the buildings and the walls either side, nowhere far from both.
    assert contact[15, 24] and contact[15, 23] and contact[15, 25]
    assert not contact[15, 10] and not contact[15, 40] and not contact[0:2].any()  # radius 3 px reaches row 2


def test_radii_follow_the_pixel_size():
    assert radius_px(0.3, 0.15) == 2 and radius_px(0.3, 0.5) == 1 and radius_px(0.45, 0.05) == 9
    fine = derive_targets(two_touching(), OUTPUTS_SEPARATION, 0.05)[..., 2].sum()
    coarse = derive_targets(two_touching(), OUTPUTS_SEPARATION, 0.3)[..., 2].sum()
    assert fine > coarse


def test_isolated_building_has_no_contact():
    inst = np.zeros((30, 30), np.int32)
    inst[10:20, 10:20] = 7
    t = derive_targets(inst, OUTPUTS_SEPARATION, 0.15)
    assert t[..., 2].sum() == 0 and t[..., 1].sum() > 0


def test_instances_from_mask_tiles():
    mask = two_touching() > 0
    assert instances_from_mask(mask).max() == 2


def test_weight_map_stresses_the_gap_between_neighbours_only():
    from geounet.train.targets import WEIGHT_W0, weight_map

    w = weight_map(two_touching(), 0.14)  # sigma 0.7 m = 5 px
    assert w.dtype == np.float32 and w.min() == 1.0
    # The one-pixel gap: d1 = d2 = 1 px, so w = 1 + 10 exp(-4 / 50).
    assert w[15, 24] == pytest.approx(1 + WEIGHT_W0 * np.exp(-4 / 50), rel=1e-5)
    assert (w[two_touching() > 0] == 1).all()  # building pixels keep weight 1
    assert w[15, 24] > w[2, 24] > w[0, 24] > 1  # fades with distance from both buildings
    assert w[15, 0] == pytest.approx(1, abs=0.01)  # far from the second building
    lone = np.zeros((30, 30), np.int32)
    lone[10:20, 10:20] = 7
    assert (weight_map(lone, 0.14) == 1).all()  # no second building, no extra weight


def test_weight_map_band_is_held_in_metres():
    from geounet.train.targets import weight_map

    inst = np.zeros((60, 120), np.int32)
    inst[10:50, 10:55] = 1
    inst[10:50, 61:110] = 2  # 6 px gap
    fine = weight_map(inst, 0.1)[30, 58]  # 0.6 m gap, sigma 7 px
    coarse = weight_map(inst, 0.3)[30, 58]  # 1.8 m gap, sigma 2 px
    assert fine > 5 > coarse


def test_weighted_loss_counts_errors_in_the_gap_more():
    import torch

    from geounet.train.losses import segmentation_loss
    from geounet.train.targets import encode_weights, weight_map

    inst = two_touching()
    target = np.stack([(inst > 0).astype(np.uint8), encode_weights(weight_map(inst, 0.14))])[None]
    target = torch.from_numpy(target)
    logits = torch.where(target[:, :1] == 1, 5.0, -5.0)
    in_gap, far = logits.clone(), logits.clone()
    in_gap[0, 0, 15, 24] = 5.0  # a wrong "building" pixel in the gap
    far[0, 0, 0, 0] = 5.0  # the same mistake in open ground
    loss = segmentation_loss("bce", weighted=True)
    base = loss(logits, target)
    # The weight travels as uint8 w * 10, so 10.23 arrives as 10.2.
    assert (loss(in_gap, target) - base) / (loss(far, target) - base) == pytest.approx(10.2, rel=1e-4)
    assert segmentation_loss("bce")(in_gap, target[:, :1]) == pytest.approx(
        segmentation_loss("bce")(far, target[:, :1]).item())
