"""Lesson 13 exercises: one model prompted with frames at any size and length — holding given frames through a
sampler, the windows of a long video, the time shift of a bucket, SDEdit's starting noise. Check with
`pytest -m lesson13 --impl=exercises`."""
import torch

from minisora.data.buckets import Bucket

REFERENCE_MODULES = ("minisora.diffusion.conditioning", "minisora.generate", "minisora.data.buckets")


def hold_given_frames(denoised: torch.Tensor, given: torch.Tensor, given_mask: torch.Tensor) -> torch.Tensor:
    """Lesson 13: videos (B, C, T, H, W) that are `given` where given_mask (B, T) is True and `denoised` elsewhere
    (in denoised's dtype): what a denoiser returns so that every sampler keeps the given frames."""
    raise NotImplementedError("Lesson 13: hold the given frames")


def chunk_starts(total: int, window: int, context: int, backward: bool = False) -> list:
    """Lesson 13: the first frame of each `window`-frame window that covers `total` frames, neighbours sharing
    `context` frames: 0, window - context, 2 (window - context), ..., and last total - window (so the last window ends
    on the last frame); [0] when total <= window. With `backward`, the same windows mirrored: starting at the end,
    total - window - s for each forward start s."""
    raise NotImplementedError("Lesson 13: the windows of a long video")


def shift_for(bucket: Bucket, reference: Bucket, shift: float) -> float:
    """Lesson 13: the time shift for a bucket given `shift` for the reference: shift * sqrt(bucket.values /
    reference.values) (Esser et al. 2024), never below 1."""
    raise NotImplementedError("Lesson 13: the time shift of a bucket")


def edit_sigma(strength: float) -> float:
    """Lesson 13: SDEdit's starting noise level (EDM's sigma) for a strength S in (0, 1]: S / (1 - S), capped at 80
    (the pure-noise start); a ValueError for S outside (0, 1]."""
    raise NotImplementedError("Lesson 13: SDEdit's starting noise")
