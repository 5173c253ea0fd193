import numpy as np

from geounet.targets import OUTPUTS_SEPARATION, derive_targets, instances_from_mask, radius_px


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
