"""Prompting a trained video model: text, and frames given with it (image-to-video, extension forward and
backward, interpolation, loops), at any size and length the model's patches divide.

Every task is one call: `sample_latents(denoiser, captions, shape, ..., given, given_mask)`. The given frames are
held by `diffusion.conditioning.GivenFramesDenoiser` through whichever sampler runs, and guidance pushes towards
the caption alone: its unconditional branch drops the caption and keeps the frames (as CogVideoX guides
image-to-video), so the frames are never extrapolated away from.
"""
import math
from typing import Optional, Sequence

import torch

from .diffusion import get_sampler
from .diffusion.conditioning import GivenFramesDenoiser, hold_given_frames
from .diffusion.guidance import GuidedDenoiser
from .diffusion.schedules import karras_sigmas
from .models.text import PAD
from .randomness import randn


@torch.no_grad()
def sample_latents(denoiser: torch.nn.Module, caption_ids: torch.Tensor, data_shape: Sequence[int], sampler: str,
                   steps: int, guidance: float, seed: int, guidance_min_sigma: float = 0.0,
                   given: Optional[torch.Tensor] = None, given_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One sample (N, C, T, H, W) of `data_shape` (C, T, H, W) per caption (N, M), on Karras noise levels, guided
    above `guidance_min_sigma`; with given_mask (N, T), the frames of `given` (N, C, T, H, W) it marks are kept and
    come back exactly as given."""
    device = next(denoiser.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    sigmas = karras_sigmas(steps).to(device)
    noise = randn((len(caption_ids), *data_shape), generator, device) * sigmas[0]
    cond = {"caption": caption_ids.to(device)}
    if given_mask is not None:
        if given is None or given.shape != noise.shape or given_mask.shape != noise.shape[:1] + noise.shape[2:3]:
            raise ValueError(f"given frames must be (N, C, T, H, W) = {tuple(noise.shape)} with a mask (N, T); got "
                             f"{None if given is None else tuple(given.shape)} and {tuple(given_mask.shape)}")
        cond.update(given=given.to(device), given_mask=given_mask.to(device))
    guided = GuidedDenoiser(GivenFramesDenoiser(denoiser.eval()), guidance, {"caption": PAD},
                            interval=(guidance_min_sigma, math.inf), kept=("given", "given_mask"))
    samples = get_sampler(sampler)(guided, noise, sigmas, cond=cond, generator=generator).cpu()
    if given_mask is not None:  # exactly, not to the sampler's last rounding
        samples = hold_given_frames(samples, given.cpu(), given_mask.cpu())
    return samples
