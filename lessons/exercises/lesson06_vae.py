"""Lesson 06 exercises: video data and the causal video VAE (latent diffusion, Rombach et al. 2022; MAGVIT-v2).
Check with `pytest -m lesson06 --impl=exercises`."""
from typing import List, Tuple

import torch

REFERENCE_MODULES = ("minisora.models.vae", "minisora.data.video_io", "minisora.data.folder", "tiny_datasets.videos")


def bounce_between_walls(position: float, velocity: float, low: float, high: float) -> Tuple[float, float]:
    """Lesson 06, the tiny datasets: move one step (position + velocity) and reflect off the walls at `low` and
    `high` as often as needed (a reflection mirrors the position in the wall and flips the velocity); return the new
    (position, velocity)."""
    raise NotImplementedError("Lesson 06: a moving object that bounces off the walls")


def frame_indices(start: int, num_frames: int, step: float) -> List[int]:
    """Lesson 06: indices of `num_frames` frames from `start`, `step` source frames apart, each rounded to the
    nearest integer (a fractional step = source fps / wanted fps resamples the frame rate)."""
    raise NotImplementedError("Lesson 06: which frames a clip takes")


def psnr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Lesson 06: peak signal-to-noise ratio in dB of two videos in [-1, 1] (peak-to-peak 2):
    10 log10(2^2 / MSE), computed in float64; infinite when they are equal."""
    raise NotImplementedError("Lesson 06: PSNR")


def causal_time_padding(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Lesson 06, MAGVIT-v2: prepend `frames` copies of the first frame to a video (B, C, T, H, W), so that a
    convolution over time sees nothing after the frame it computes."""
    raise NotImplementedError("Lesson 06: causal padding in time")


def reparameterize(mean: torch.Tensor, log_variance: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Lesson 06, Kingma & Welling 2014 Section 2.4: z = mu + sigma * eps with sigma = exp(log_variance / 2)."""
    raise NotImplementedError("Lesson 06: the reparameterisation trick")


def gaussian_kl(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """Lesson 06, Kingma & Welling 2014 Appendix B: KL(N(mu, sigma^2) || N(0, 1)) element by element,
    1/2 (mu^2 + sigma^2 - 1 - log sigma^2)."""
    raise NotImplementedError("Lesson 06: the KL term of the VAE")
