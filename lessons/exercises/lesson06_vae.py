"""Lesson 06 exercises: video data and the causal video VAE (latent diffusion, Rombach et al. 2022; MAGVIT-v2;
Kingma & Welling 2014). Check with `pytest -m lesson06 --impl=exercises` (one exercise: add `-k NAME`). Hints:
lessons/hints/lesson06.md; worked solutions: lessons/solutions/lesson06_vae.py.

Videos are (B, C, T, H, W) floats in [-1, 1] (one video: (C, T, H, W)). The VAE's posterior q(z | x) is a diagonal
Gaussian per latent value, given by its mean and its log-variance (log sigma^2), both shaped like the latents.
"""
from typing import Dict, List, Optional, Tuple

import torch

from minisora.models.vae import VideoVAE

REFERENCE_MODULES = ("minisora.models.vae", "minisora.data.video_io", "minisora.data.folder", "tiny_datasets.videos")


def bounce_between_walls(position: float, velocity: float, low: float, high: float) -> Tuple[float, float]:
    """Lesson 06, exercise 1 (section 2: the tiny datasets' motion).

    Move one step (position + velocity) and reflect off the walls at `low` and `high` as often as needed: a
    reflection mirrors the position in the wall it crossed and flips the velocity. A step longer than the room
    crosses a wall more than once. Return the new (position, velocity)."""
    raise NotImplementedError("Lesson 06: a moving object that bounces off the walls")


def frame_indices(start: int, num_frames: int, step: float) -> List[int]:
    """Lesson 06, exercise 2 (section 3: reading clips from video files).

    The indices of `num_frames` source frames from `start`, `step` source frames apart, each rounded to the nearest
    integer with Python's round. A fractional step (source fps / wanted fps) resamples the frame rate: below 1 it
    repeats frames, above 1 it skips some."""
    raise NotImplementedError("Lesson 06: which frames a clip takes")


def psnr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Lesson 06, exercise 3 (section 3: how close a decoded video is).

    The peak signal-to-noise ratio in dB of `estimate` against `reference`, two videos in [-1, 1] (so the peak-to-peak
    range is 2), over all their values, computed in float64; infinite when they are equal."""
    raise NotImplementedError("Lesson 06: PSNR")


def causal_time_padding(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Lesson 06, exercise 4 (section 5; MAGVIT-v2's causal convolution).

    Return the video x (B, C, T, H, W) with `frames` copies of its first frame put before it (B, C, frames + T, H, W),
    so that a convolution over time without padding of its own sees, for each output frame, only that frame and
    earlier ones."""
    raise NotImplementedError("Lesson 06: causal padding in time")


def reparameterize(mean: torch.Tensor, log_variance: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Lesson 06, exercise 5 (section 4.3; Kingma & Welling 2014, Section 2.4).

    A sample of N(mean, exp(log_variance)) element by element, made from `noise`, standard normal numbers that
    broadcast against the mean, as a differentiable function of the mean and the log-variance (so that gradients
    reach both)."""
    raise NotImplementedError("Lesson 06: the reparameterisation trick")


def gaussian_kl(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """Lesson 06, exercise 6 (section 4.2; Kingma & Welling 2014, Appendix B).

    KL(N(mean, exp(log_variance)) || N(0, 1)) element by element, in nats, in closed form (no sampling): the
    result is shaped like the mean, and it is 0 exactly where the mean is 0 and the log-variance 0."""
    raise NotImplementedError("Lesson 06: the KL term of the VAE")


def vae_loss(vae: VideoVAE, video: torch.Tensor, kl_weight: float, reconstruction: str = "l1",
             generator: Optional[torch.Generator] = None, *,
             noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Lesson 06, exercise 7 (section 6: the VAE's training loss, the beta-weighted surrogate of section 4.4).

    For a batch `video` (B, 3, T, H, W): encode it (`vae.encode(video)` gives the posterior, with `.mean` and
    `.log_variance`, each (B, z, t, h, w)), draw one latent sample per value with your `reparameterize` (its noise:
    `noise` when given, else standard normal numbers drawn with torch.randn(shape, generator=generator, dtype=...)),
    decode it (`vae.decode`), and return (loss, terms):

    - the reconstruction error: the mean over all pixel values of the absolute error ("l1") or the squared error
      ("l2"); any other `reconstruction` is a ValueError naming it;
    - the KL term: your `gaussian_kl` of the posterior summed over every latent value, divided by the number of pixel
      values of the batch (so that both terms are per pixel value);
    - loss: section 4.4's beta-weighted surrogate of the two terms (beta = kl_weight), a tensor that backpropagates to
      the VAE's weights;
    - terms = {"reconstruction": ..., "kl": ...}, the two terms as Python floats.
    """
    raise NotImplementedError("Lesson 06: the VAE's loss")
