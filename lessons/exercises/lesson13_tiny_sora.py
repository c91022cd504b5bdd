"""Lesson 13 exercises: one model prompted with frames at any size and length — the given-frames denoiser and the
frames it holds through a sampler, the windows of a long video, the time shift of a bucket, SDEdit's starting
noise. Check with `pytest -m lesson13 --impl=exercises`; hints in lessons/hints/lesson13.md."""
from typing import Callable

import torch

from minisora.data.buckets import Bucket

REFERENCE_MODULES = ("minisora.diffusion.conditioning", "minisora.generate", "minisora.data.buckets")


def hold_given_frames(denoised: torch.Tensor, given: torch.Tensor, given_mask: torch.Tensor) -> torch.Tensor:
    """Lesson 13, exercise 1: videos (B, C, T, H, W) that are `given` where given_mask (B, T) is True and `denoised`
    elsewhere (in denoised's dtype): what a denoiser returns so that every sampler keeps the given frames."""
    raise NotImplementedError("Lesson 13: hold the given frames")


def given_frames_denoise(denoiser: Callable, x: torch.Tensor, sigma: torch.Tensor, given: torch.Tensor,
                         given_mask: torch.Tensor, network_sees_frames: bool = True, **cond) -> torch.Tensor:
    """Lesson 13, exercise 2: the given-frames denoiser at (x, sigma), x (B, C, T, H, W). Ask `denoiser` for its
    estimate of x_0 — passing it the given frames and their mask (as keywords `given=`, `given_mask=`) only when
    `network_sees_frames` (a network trained with them), and the other conditions in `cond` always — then return
    that estimate with the given frames held (exercise 1). A ValueError naming the shapes expected when `given` is
    not shaped like x or given_mask is not (B, T)."""
    raise NotImplementedError("Lesson 13: the given-frames denoiser")


def chunk_starts(total: int, window: int, context: int, backward: bool = False) -> list:
    """Lesson 13, exercise 3: the first frame of each `window`-frame window that covers `total` frames, each window
    sharing `context` frames with the one before, the first starting at frame 0 and the last ending on the last
    frame; [0] when total <= window. With `backward`, the same windows mirrored, listed from the end of the video."""
    raise NotImplementedError("Lesson 13: the windows of a long video")


def shift_for(bucket: Bucket, reference: Bucket, shift: float) -> float:
    """Lesson 13, exercise 4: the time shift for `bucket`'s clips when `shift` is the reference bucket's: the shift
    under which a clip of the bucket's number of values (`Bucket.values`) keeps as much of its coarse signal at each
    training time as the reference's clips keep under `shift` (section 3 derives it; Esser et al. 2024). Never below
    1: a small bucket is not shifted towards the data."""
    raise NotImplementedError("Lesson 13: the time shift of a bucket")


def edit_sigma(strength: float) -> float:
    """Lesson 13, exercise 5: SDEdit's starting noise level, as EDM's sigma, for a strength S in (0, 1]: the sigma
    whose noised clip is the linear flow path's point at time S (up to its scale), capped at 80 (sampling's
    pure-noise start); a ValueError naming S outside (0, 1]."""
    raise NotImplementedError("Lesson 13: SDEdit's starting noise")
