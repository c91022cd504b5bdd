"""Lesson 12 checks (the windows of each attention layout, grouping tokens into windows), against minisora by
default and your stubs with --impl=exercises."""
from dataclasses import replace

import pytest
import torch

from minisora.models.video_dit import VideoDiTConfig

pytestmark = pytest.mark.lesson12

GRID_CONFIG = VideoDiTConfig(in_channels=3, patch_size=2, temporal_patch=1, depth=4, window=(2, 2, 2))
GRID = (4, 4, 4)  # the token grid of 4 frames of 8 x 8 under 1 x 2 x 2 patches


def test_windows_of_each_layout(impl):
    spatial, temporal = (1, 4, 4), (4, 1, 1)
    assert impl.block_windows(GRID_CONFIG, GRID) == [(4, 4, 4)] * 4
    assert impl.block_windows(replace(GRID_CONFIG, layout="latte_interleaved"), GRID) == [spatial, temporal] * 2
    assert impl.block_windows(replace(GRID_CONFIG, layout="latte_late_fusion", depth=6), GRID) == \
        [spatial] * 3 + [temporal] * 3
    assert impl.block_windows(replace(GRID_CONFIG, layout="walt_windows"), GRID) == [spatial, (2, 2, 2)] * 2
    with pytest.raises(ValueError):
        impl.block_windows(replace(GRID_CONFIG, layout="walt_windows", window=(3, 2, 2)), GRID)
    with pytest.raises(ValueError):
        impl.block_windows(replace(GRID_CONFIG, layout="diagonal"), GRID)


def test_windows_hold_the_right_tokens_and_ungroup_back(impl):
    grid, window = (4, 6, 8), (2, 3, 4)
    t, h, w = torch.meshgrid(torch.arange(4), torch.arange(6), torch.arange(8), indexing="ij")
    coordinates = torch.stack([t, h, w], -1).reshape(1, -1, 3).repeat(2, 1, 1).float()  # (2, 192, 3)
    coordinates[1] += 100  # the second batch item is told apart
    windows = impl.group_into_windows(coordinates, grid, window)
    assert windows.shape == (2 * 2 * 2 * 2, 24, 3)
    for index, members in enumerate(windows):
        batch, rest = divmod(index, 8)
        start = torch.tensor([rest // 4 * 2, rest // 2 % 2 * 3, rest % 2 * 4]) + 100 * batch
        offsets = members - start  # every member lies inside this window's box
        assert (offsets >= 0).all() and (offsets < torch.tensor(window)).all()
        assert len({tuple(row) for row in members.tolist()}) == 24
    assert torch.equal(impl.ungroup_windows(windows, grid, window, 2), coordinates)
