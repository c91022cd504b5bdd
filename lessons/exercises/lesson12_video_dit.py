"""Lesson 12 exercises: which tokens a video transformer lets attend to which — the windows of each layout, cutting
a token sequence into those windows and back, and the windowed attention every block of the video DiT runs
(ViViT; Latte; W.A.L.T). Check with `pytest -m lesson12 --impl=exercises`; hints in lessons/hints/lesson12.md,
worked solutions in lessons/solutions/lesson12_video_dit.py."""
from typing import Callable, List, Tuple

import torch

from minisora.models.video_dit import VideoDiTConfig

REFERENCE_MODULES = ("minisora.models.video_dit",)


def block_windows(config: VideoDiTConfig, grid: Tuple[int, int, int]) -> List[Tuple[int, int, int]]:
    """Lesson 12: the attention window (t, h, w) of every block, in tokens, for config.layout on the token grid
    (T', H', W'): "spacetime" the whole grid in every block; "latte_interleaved" spatial (1, H', W') and temporal
    (T', 1, 1) blocks alternating, spatial first; "latte_late_fusion" the first depth // 2 blocks spatial, the rest
    temporal; "walt_windows" spatial alternating with config.window (a ValueError if its sides do not divide the
    grid). An unknown layout raises ValueError."""
    raise NotImplementedError("Lesson 12: the windows of each layout")


def group_into_windows(tokens: torch.Tensor, grid: Tuple[int, int, int],
                       window: Tuple[int, int, int]) -> torch.Tensor:
    """Lesson 12: (B, T H W, D) tokens in (t, h, w) order -> (B * windows, t h w, D): one attention sequence per
    window, windows ordered batch first, then by their position in time, height, width."""
    raise NotImplementedError("Lesson 12: tokens into windows")


def ungroup_windows(windows: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
                    batch: int) -> torch.Tensor:
    """Lesson 12: the inverse of group_into_windows: (B * windows, t h w, D) -> (B, T H W, D)."""
    raise NotImplementedError("Lesson 12: windows back into tokens")


def attend_within_windows(tokens: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
                          attend: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Lesson 12: a video DiT block's self-attention step. tokens (B, T H W, D) in (t, h, w) order; attend is an
    attention over sequences, (B', n, D) -> (B', n, D), that mixes the tokens of each sequence and never two
    sequences. Return the tokens (B, T H W, D), in their order, after each token has attended to the t h w tokens
    of its own window of the grid and to no other, with `attend` called once for every window of every sample."""
    raise NotImplementedError("Lesson 12: attention within windows")
