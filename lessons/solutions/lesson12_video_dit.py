"""Lesson 12 worked solutions: the windows of each attention layout, grouping tokens into windows and back, and the
windowed attention of a video DiT block (ViViT, Arnab et al. 2021; Latte, Ma et al. 2024; W.A.L.T, Gupta et al.
2023). Try the exercises in lessons/exercises/lesson12_video_dit.py first; these pass the same checks:
`pytest -m lesson12 --impl=solutions`.

Notation: the token grid (T', H', W') holds N = T' H' W' tokens, stored in (t, h, w) order: token (t, h, w) is row
(t H' + h) W' + w of the sequence. A window (t, h, w) of tokens tiles the grid into N / (t h w) boxes.
"""
from typing import Callable, List, Tuple

import torch

from minisora.models.video_dit import LAYOUTS, VideoDiTConfig

REFERENCE_MODULES = ("minisora.models.video_dit",)


def block_windows(config: VideoDiTConfig, grid: Tuple[int, int, int]) -> List[Tuple[int, int, int]]:
    """Lesson 12, exercise 1 (section 2): the attention window (t, h, w) of every block, in tokens, for config.layout
    on the token grid (T', H', W'): "spacetime" the whole grid in every block; "latte_interleaved" spatial
    (1, H', W') and temporal (T', 1, 1) blocks alternating, spatial first; "latte_late_fusion" the first depth // 2
    blocks spatial, the rest temporal; "walt_windows" spatial alternating with config.window (a ValueError if its
    sides do not divide the grid). An unknown layout raises ValueError."""
    frames, height, width = grid
    spatial = (1, height, width)  # a whole frame: the tokens of one time
    temporal = (frames, 1, 1)  # a column through time: one position in every frame
    blocks = range(config.depth)
    if config.layout == "spacetime":  # ViViT model 1, the Sora report: every token with every token
        return [tuple(grid) for _ in blocks]
    if config.layout == "latte_interleaved":  # Latte variant 1: space, time, space, time, ...
        return [spatial if index % 2 == 0 else temporal for index in blocks]
    if config.layout == "latte_late_fusion":  # Latte variant 2: all of space first, then all of time
        return [spatial if index < config.depth // 2 else temporal for index in blocks]
    if config.layout == "walt_windows":  # W.A.L.T: a frame, then a local spacetime box, alternating
        window = tuple(config.window)
        if any(size % side for size, side in zip(grid, window)):
            raise ValueError(f"window {window} does not tile the token grid {tuple(grid)}; choose a window whose "
                             f"sides divide it")
        return [spatial if index % 2 == 0 else window for index in blocks]
    raise ValueError(f"unknown layout {config.layout!r}; choose one of {LAYOUTS}")


def group_into_windows(tokens: torch.Tensor, grid: Tuple[int, int, int],
                       window: Tuple[int, int, int]) -> torch.Tensor:
    """Lesson 12, exercise 2 (section 4): (B, T H W, D) tokens in (t, h, w) order -> (B * windows, t h w, D): one
    attention sequence per window, windows ordered batch first, then by their position in time, height, width."""
    (frames, height, width), (wt, wh, ww) = grid, window
    batch, _, dim = tokens.shape
    # split each axis of the grid into (which window, where inside it): frame = window_t * wt + offset_t, and so on
    boxes = tokens.reshape(batch, frames // wt, wt, height // wh, wh, width // ww, ww, dim)
    # bring the three "which window" axes together (after the batch), then the three "inside" axes
    boxes = boxes.permute(0, 1, 3, 5, 2, 4, 6, 7)  # (B, T/wt, H/wh, W/ww, wt, wh, ww, D)
    # each window is now a contiguous block of wt wh ww tokens, in (t, h, w) order inside it
    return boxes.reshape(batch * (frames // wt) * (height // wh) * (width // ww), wt * wh * ww, dim)


def ungroup_windows(windows: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
                    batch: int) -> torch.Tensor:
    """Lesson 12, exercise 3 (section 4): the inverse of group_into_windows: (B * windows, t h w, D) ->
    (B, T H W, D)."""
    (frames, height, width), (wt, wh, ww) = grid, window
    dim = windows.shape[-1]
    # undo the last reshape: name the axes again
    boxes = windows.reshape(batch, frames // wt, height // wh, width // ww, wt, wh, ww, dim)
    # the inverse permutation puts each "inside" axis back after its "which window" axis
    boxes = boxes.permute(0, 1, 4, 2, 5, 3, 6, 7)  # (B, T/wt, wt, H/wh, wh, W/ww, ww, D)
    return boxes.reshape(batch, frames * height * width, dim)


def attend_within_windows(tokens: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
                          attend: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Lesson 12, exercise 4 (section 4): a video DiT block's self-attention step. tokens (B, T H W, D) in (t, h, w)
    order; attend is an attention over sequences, (B', n, D) -> (B', n, D), that mixes the tokens of each sequence
    and never two sequences. Return the tokens (B, T H W, D), in their order, after each token has attended to the
    t h w tokens of its own window of the grid and to no other, with `attend` called once for every window of every
    sample."""
    # attention mixes tokens within a sequence only, so making each window its own sequence is the whole trick:
    # the batch of sequences becomes B x (N / n) windows of n = t h w tokens
    sequences = group_into_windows(tokens, grid, window)  # (B N / n, n, D)
    # one call: every window of every sample side by side; the cost is (N / n) n^2 = N n pairs per sample
    attended = attend(sequences)  # (B N / n, n, D)
    # put every token back where it came from, so that the next block can choose other windows
    return ungroup_windows(attended, grid, window, tokens.shape[0])
