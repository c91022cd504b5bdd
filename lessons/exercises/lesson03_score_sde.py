"""Lesson 03 exercises: score SDEs (Song et al. 2021, ICLR). Check with `pytest -m lesson03 --impl=exercises`.

Hints: lessons/hints/lesson03.md. Worked solutions: lessons/solutions/lesson03_score_sde.py (try first!).
The SDE objects (`sde`) are minisora's `VPSDE` and `VESDE` (minisora/diffusion/score_sde.py): they give you
sde.drift(x, t), sde.diffusion(t), sde.alpha(t), sde.sigma(t) and sde.time_from_sigma(sigma).
"""
from typing import Callable, Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.score_sde",)


def score_from_denoiser(denoiser: Callable, sde, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[dict]):
    """Lesson 03 (section 2, Tweedie's formula): the score grad_{x_t} log p_t(x_t) of the SDE's noisy marginal at
    time t (a 0-d tensor), from a denoiser.

    x_t (B, ...) is in the SDE's own coordinates, x_t = alpha(t) x_0 + alpha(t) sigma(t) eps. The denoiser works in
    sigma space: denoiser(x, sigma, **cond) returns E[x_0 | x] for x = x_0 + sigma eps, with sigma given per sample
    (a (B,) tensor in x_t's dtype); cond may be None (no conditioning). Returns a tensor shaped like x_t."""
    raise NotImplementedError("Lesson 03: the score from a denoiser (Tweedie's formula)")


def langevin_correction(x: torch.Tensor, score: torch.Tensor, noise: torch.Tensor, snr: float) -> torch.Tensor:
    """Lesson 03 (section 6): one step of the Langevin corrector of Song et al. 2021, Algorithm 4 (the inner loop's
    body), with its step size epsilon set from the target signal-to-noise ratio `snr`.

    x, score and noise z are (B, ...); the norms ||z|| and ||score|| of the algorithm are per sample, then averaged
    over the batch (as the paper's code does), so epsilon is one number. Returns the corrected x, shaped like x."""
    raise NotImplementedError("Lesson 03: one Langevin corrector step (Song et al. 2021, Algorithm 4)")


def sample_reverse_sde(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                       generator: Optional[torch.Generator] = None, sde=None) -> torch.Tensor:
    """Lesson 03 (section 4): sample by integrating the reverse-time SDE of Song et al. 2021, Eq. 6, with the
    Euler-Maruyama method, from the noise level sigmas[0] down to sigmas[-1].

    Same interface as every minisora sampler: x (B, ...) is noise at sigmas[0] in sigma space (x = x_0 + sigma eps);
    sigmas is a decreasing 1-D tensor, usually ending in 0; return the sample at sigmas[-1], in sigma space.
    sde is a VPSDE (the default when None) or a VESDE. Inside: map each positive sigma to the SDE's time, map x to the
    SDE's coordinates x_t, take one Euler-Maruyama step per pair of consecutive times (score from your
    score_from_denoiser), and map back. A step into sigma = 0 cannot be taken in time (the score blows up): return
    the denoiser's estimate of x_0 there instead. Draw each step's noise with
    torch.randn(x.shape, generator=generator, dtype=x.dtype), one draw per step (the checks replay it)."""
    raise NotImplementedError("Lesson 03: Euler-Maruyama on the reverse-time SDE (Song et al. 2021, Eq. 6)")


def sample_probability_flow(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                            sde=None) -> torch.Tensor:
    """Lesson 03 (section 4): sample by integrating the probability-flow ODE of Song et al. 2021, Eq. 13, with
    Euler's method in the SDE's time t, from the noise level sigmas[0] down to sigmas[-1]. No randomness.

    The same interface and the same coordinates as sample_reverse_sde (x (B, ...) in sigma space at sigmas[0];
    returns x at sigmas[-1], in sigma space; sde defaults to a VPSDE; a step into sigma = 0 returns the denoiser's
    estimate of x_0)."""
    raise NotImplementedError("Lesson 03: Euler steps on the probability-flow ODE (Song et al. 2021, Eq. 13)")
