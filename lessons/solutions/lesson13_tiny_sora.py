"""Lesson 13 worked solutions: given frames (Ho et al. 2022's replacement method, MCVD's and Open-Sora's training
with the frames), long videos window by window, the time shift of a bucket (Esser et al. 2024), SDEdit's start
(Meng et al. 2022). Try the exercises in lessons/exercises/lesson13_tiny_sora.py first; these pass the same checks:
`pytest -m lesson13 --impl=solutions`.

Notation: a video x (B, C, T, H, W); the mask m (B, T), True at a given frame; D(x, sigma, ...) a denoiser, the
network's estimate of the clean video x_0.
"""
import math
from typing import Callable

import torch

from minisora.data.buckets import Bucket

REFERENCE_MODULES = ("minisora.diffusion.conditioning", "minisora.generate", "minisora.data.buckets")


def hold_given_frames(denoised: torch.Tensor, given: torch.Tensor, given_mask: torch.Tensor) -> torch.Tensor:
    """Lesson 13, exercise 1 (section 2): videos (B, C, T, H, W) that are `given` where given_mask (B, T) is True
    and `denoised` elsewhere (in denoised's dtype)."""
    # The mask is per frame, (B, T); the videos are (B, C, T, H, W). Give it size-1 axes for C, H and W so that it
    # broadcasts over every value of a frame:
    per_frame = given_mask.bool()[:, None, :, None, None]  # (B, 1, T, 1, 1)
    # x_0 estimate = m * given + (1 - m) * denoised, written as a choice rather than arithmetic: where() copies the
    # given values exactly, where m * given + (1 - m) * denoised could round
    return torch.where(per_frame, given.to(denoised.dtype), denoised)


def given_frames_denoise(denoiser: Callable, x: torch.Tensor, sigma: torch.Tensor, given: torch.Tensor,
                         given_mask: torch.Tensor, network_sees_frames: bool = True, **cond) -> torch.Tensor:
    """Lesson 13, exercise 2 (section 2): the given-frames denoiser
    D'(x, sigma) = m * given + (1 - m) * D(x, sigma, [given, m], **cond)."""
    batch, frames = x.shape[0], x.shape[2]
    # Check first, with the shapes the caller should have passed: a mask of the wrong length would otherwise
    # broadcast or fail deep inside the network.
    if given is None or given.shape != x.shape or given_mask.shape != (batch, frames):
        raise ValueError(f"given frames need `given` shaped like x {tuple(x.shape)} and `given_mask` (B, T) = "
                         f"{(batch, frames)}; got {None if given is None else tuple(given.shape)} and "
                         f"{tuple(given_mask.shape)}")
    # A network trained with given frames (the mask as an input) estimates x_0 from the clean frames: E[x_0 | x, a].
    # A network trained on text alone sees only the noisy state: E[x_0 | x], whose given frames are noisy copies
    # (the replacement method; section 2 shows what that costs).
    frames_for_the_network = {"given": given, "given_mask": given_mask} if network_sees_frames else {}
    denoised = denoiser(x, sigma, **frames_for_the_network, **cond)
    # Either way the given frames' x_0 is known: hold it, so that every sampler (which moves x towards the
    # denoiser's x_0) ends on them.
    return hold_given_frames(denoised, given, given_mask)


def chunk_starts(total: int, window: int, context: int, backward: bool = False) -> list:
    """Lesson 13, exercise 3 (section 5): where each `window`-frame window starts, neighbours sharing `context`
    frames, the last ending on the last frame; mirrored with `backward`."""
    if total <= window:
        return [0]  # one window holds the whole video
    step = window - context  # each window moves on by the frames it does not share
    # 0, step, 2 step, ... while a window still ends before the last frame, then one window ending exactly on it
    # (it may share more than `context` frames with the one before: that only gives it more to go on)
    starts = list(range(0, total - window, step)) + [total - window]
    if backward:
        # a window starting at s, mirrored (frame f -> total - 1 - f), covers total - 1 - (s + window - 1) onwards
        return [total - window - start for start in starts]
    return starts


def shift_for(bucket: Bucket, reference: Bucket, shift: float) -> float:
    """Lesson 13, exercise 4 (section 3; Esser et al. 2024, Section 5.3.2): the time shift for `bucket` given
    `shift` for `reference`."""
    # n values carrying the same coarse content average the noise down by sqrt(n): at noise sigma the content is seen
    # through noise sigma / sqrt(n). Keeping that equal across sizes scales sigma by sqrt(n / n_ref), and the time
    # shift t -> a t / (1 + (a - 1) t) is sigma -> a sigma, so shifts multiply: a = shift * sqrt(n / n_ref).
    scaled = shift * math.sqrt(bucket.values / reference.values)
    return max(1.0, scaled)  # a bucket smaller than the reference is trained on the unshifted times, not below them


def edit_sigma(strength: float) -> float:
    """Lesson 13, exercise 5 (section 5; Meng et al. 2022): SDEdit's starting sigma for strength S in (0, 1]."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1] (0 keeps the video as it is, 1 draws it anew), got {strength}")
    sigma_max = 80.0  # where sampling from pure noise starts (Karras et al. 2022)
    # The flow path's point (1 - S) x_0 + S eps, divided by 1 - S, is x_0 + S / (1 - S) eps: EDM's x at
    # sigma = S / (1 - S). Past sigma_max (S >= 80 / 81, and S = 1, where it is infinite) start from pure noise.
    if strength >= sigma_max / (1 + sigma_max):
        return sigma_max
    return strength / (1 - strength)
