"""Lesson 12 checks (the windows of each attention layout, grouping tokens into windows, attention within windows),
against minisora by default, your stubs with --impl=exercises and the worked solutions with --impl=solutions.

Windowed attention is held, in float64, to attention over all N tokens at once with every pair that does not share
a window masked out: a computation over the whole (N, N) score matrix that never regroups anything."""
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


def window_cells(grid, window):
    """For each token in (t, h, w) order: which window it is in (N, 3) and its rank inside the window, in (t, h, w)
    order (N,)."""
    t, h, w = (coordinate.flatten() for coordinate in torch.meshgrid(*(torch.arange(size) for size in grid),
                                                                      indexing="ij"))
    cells = torch.stack([t // window[0], h // window[1], w // window[2]], -1)
    rank = ((t % window[0]) * window[1] + h % window[1]) * window[2] + w % window[2]
    return cells, rank


def softmax_attention(x, mask=None):
    """Single-head attention with fixed projections on (B', n, D), float64; `mask` (n, n) True where a query may
    look at a key."""
    generator = torch.Generator().manual_seed(1)
    dim = x.shape[-1]
    wq, wk, wv = (torch.randn(dim, dim, generator=generator, dtype=torch.float64) / dim ** 0.5 for _ in range(3))
    scores = (x @ wq) @ (x @ wk).transpose(-2, -1) / dim ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ (x @ wv)


LAYOUT_WINDOWS = [(1, 6, 8), (4, 1, 1), (2, 3, 4), (4, 6, 8), (1, 1, 1)]


@pytest.mark.parametrize("window", LAYOUT_WINDOWS)
def test_attention_within_windows_is_full_attention_masked_to_the_windows(impl, window):
    grid = (4, 6, 8)
    tokens = torch.randn(3, 4 * 6 * 8, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cells, _ = window_cells(grid, window)
    same_window = (cells[:, None, :] == cells[None, :, :]).all(-1)  # (N, N)
    expected = softmax_attention(tokens, same_window)  # all N tokens at once, pairs across windows masked
    got = impl.attend_within_windows(tokens, grid, window, softmax_attention)
    assert got.shape == tokens.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_attention_within_windows_keeps_the_order_inside_each_window(impl):
    """Causal attention inside each sequence depends on the tokens' order: a window must hold its tokens in (t, h, w)
    order, so that position k of the sequence is rank k of the window."""
    grid, window = (4, 6, 8), (2, 3, 4)
    tokens = torch.randn(2, 4 * 6 * 8, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cells, rank = window_cells(grid, window)
    allowed = (cells[:, None, :] == cells[None, :, :]).all(-1) & (rank[None, :] <= rank[:, None])
    expected = softmax_attention(tokens, allowed)

    def causal_attention(x):
        n = x.shape[1]
        return softmax_attention(x, torch.ones(n, n, dtype=torch.bool).tril())

    torch.testing.assert_close(impl.attend_within_windows(tokens, grid, window, causal_attention), expected,
                               rtol=1e-10, atol=1e-10)


def test_attention_is_called_once_on_every_window(impl):
    calls = []

    def attend(x):
        calls.append(tuple(x.shape))
        return 2 * x

    tokens = torch.randn(2, 4 * 6 * 8, 5)
    out = impl.attend_within_windows(tokens, (4, 6, 8), (2, 3, 4), attend)
    assert calls == [(2 * 8, 24, 5)]
    torch.testing.assert_close(out, 2 * tokens)
