import numpy as np
import pytest
from rasterio.windows import Window

from geounet.grid import axis_offsets, block_grid, spatial_split, training_windows


@pytest.mark.parametrize("length", [1, 63, 64, 65, 100, 256, 257, 1000, 1023])
@pytest.mark.parametrize("size,stride", [(64, 64), (64, 48), (64, 1), (256, 192)])
def test_axis_offsets_cover_every_pixel_and_end_flush(length, size, stride):
    offs = axis_offsets(length, size, stride)
    covered = np.zeros(length, bool)
    for o in offs:
        covered[o : o + size] = True
    assert covered.all()
    assert offs[0] == 0
    if length >= size:
        assert offs[-1] == length - size  # last window flush with the edge, not padded off it
        assert all(0 <= o <= length - size for o in offs)
        assert all(b - a <= stride for a, b in zip(offs, offs[1:]))
    assert offs == sorted(set(offs))


def test_stride_larger_than_size_is_refused():
    with pytest.raises(ValueError):
        axis_offsets(100, 10, 11)


def test_block_grid_tiles_without_overlap():
    cover = np.zeros((1000, 700), int)
    for w in block_grid(1000, 700, 256):
        cover[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (cover == 1).all()


def test_training_windows_skip_nodata_and_stay_in_block():
    coarse = np.zeros((16, 16), bool)
    coarse[:, :8] = True  # left half valid; one coarse cell = 16 px
    block = Window(0, 0, 256, 256)
    wins = training_windows(256, 256, 64, coarse, 16.0, 16.0, within=block)
    assert wins and all(w.col_off + w.width <= 128 for w in wins)
    inner = Window(64, 64, 128, 128)
    for w in training_windows(256, 256, 64, np.ones((16, 16), bool), 16.0, 16.0, within=inner):
        assert 64 <= w.col_off and w.col_off + w.width <= 192 and 64 <= w.row_off and w.row_off + w.height <= 192


def test_spatial_split_is_disjoint_and_near_the_fraction():
    weights = [10] * 20 + [0] * 5
    tr, va = spatial_split(weights, 0.2, seed=1)
    assert not set(tr) & set(va)
    assert set(tr) | set(va) == set(range(20))  # zero-weight blocks dropped
    assert 3 <= len(va) <= 5
    assert spatial_split(weights, 0.2, seed=1) == (tr, va)
    assert spatial_split(weights, 0.2, seed=2) != (tr, va)


def test_spatial_split_keeps_one_block_for_training():
    tr, va = spatial_split([5, 5], 0.9, seed=0)
    assert len(tr) == 1 and len(va) == 1
    assert spatial_split([5], 0.5) == ([0], [])
