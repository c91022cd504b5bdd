"""Lesson 03 exercises: score SDEs (Song et al. 2021, ICLR). Check with `pytest -m lesson03 --impl=exercises`."""
from typing import Callable, Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.score_sde",)


def score_from_denoiser(denoiser: Callable, sde, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[dict]):
    """Lesson 03: grad log p_t(x_t) = (alpha D(x_t / alpha, sigma) - x_t) / (alpha sigma)^2, with alpha = sde.alpha(t),
    sigma = sde.sigma(t), and D called as denoiser(x, sigma_per_sample, **cond) (Tweedie's formula)."""
    raise NotImplementedError("Lesson 03: the score from a denoiser (Tweedie's formula)")


def langevin_correction(x: torch.Tensor, score: torch.Tensor, noise: torch.Tensor, snr: float) -> torch.Tensor:
    """Lesson 03, Song et al. Algorithm 4: epsilon = 2 (snr ||z|| / ||score||)^2 (per-sample norms, batch-averaged),
    then x + epsilon score + sqrt(2 epsilon) z."""
    raise NotImplementedError("Lesson 03: one Langevin corrector step (Song et al. 2021, Algorithm 4)")
